#include "coordinator/preference_batch.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "algo/run_spec.h"

namespace grail::coordinator {

absl::StatusOr<std::vector<PreferenceRow>> ArithmeticPairs(const Dataset& problems, const tokenizer::Tokenizer& tok,
                                                           uint64_t seed, PairStyle style) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> offset(1, 9), sign(0, 1), digit(0, 9), kind(0, 3);
  // A malformed or unrelated wrong answer, never the answer itself.
  auto malformed = [&](const std::string& answer) {
    for (;;) {
      std::string wrong;
      switch (kind(rng)) {
        case 0: wrong = absl::StrCat(answer, digit(rng)); break;
        case 1: wrong = answer.size() > 1 ? answer.substr(0, answer.size() - 1) : absl::StrCat(digit(rng), answer); break;
        case 2: wrong = std::string(answer.rbegin(), answer.rend()); break;
        default: wrong = absl::StrCat(std::uniform_int_distribution<int>(0, 999)(rng)); break;
      }
      if (wrong != answer) return wrong;
    }
  };
  std::vector<PreferenceRow> out;
  out.reserve(problems.size());
  auto completion = [&](const std::string& text) -> absl::StatusOr<std::vector<int>> {
    auto ids = tok.Encode(text);
    if (!ids.ok()) return ids.status();
    if (tok.eos_id() >= 0) ids->push_back(tok.eos_id());
    return ids;
  };
  for (const Problem& p : problems.problems()) {
    const int64_t answer = std::stoll(p.answer);
    int64_t near = answer + (sign(rng) ? 1 : -1) * offset(rng);
    if (near < 0) near = answer + offset(rng);
    std::vector<std::string> wrongs = {absl::StrCat(near)};
    if (style == PairStyle::kVaried) {
      wrongs.push_back(malformed(p.answer));
      // A slip in the tens (off by 10 or 20, the units right): a policy's most common
      // mistake, which the near misses above (they all change the units) never show.
      int64_t slip = answer + (sign(rng) ? 10 : -10) * std::uniform_int_distribution<int>(1, 2)(rng);
      if (slip < 0) slip = answer + 10;
      wrongs.push_back(absl::StrCat(slip));
      // Another problem's answer: well-formed and plausible, right for some prompt but not
      // this one, so that a score must depend on the prompt (none when a few draws find only
      // the same answer).
      std::uniform_int_distribution<size_t> pick(0, problems.size() - 1);
      for (int tries = 0; tries < 16; ++tries) {
        const std::string& other = problems.problems()[pick(rng)].answer;
        if (other != p.answer) {
          wrongs.push_back(other);
          break;
        }
      }
    }
    PreferenceRow row;
    auto prompt = tok.Encode(p.prompt);
    if (!prompt.ok()) return prompt.status();
    if (tok.bos_id() >= 0) row.prompt.push_back(tok.bos_id());
    row.prompt.insert(row.prompt.end(), prompt->begin(), prompt->end());
    auto chosen = completion(p.answer);
    if (!chosen.ok()) return chosen.status();
    row.chosen = std::move(*chosen);
    for (const std::string& wrong : wrongs) {
      auto rejected = completion(wrong);
      if (!rejected.ok()) return rejected.status();
      row.rejected = std::move(*rejected);
      out.push_back(row);
    }
  }
  return out;
}

absl::Status SplitPairs(std::vector<PreferenceRow> all, uint64_t seed, int heldout, Splits* splits) {
  if (heldout == 0) heldout = static_cast<int>(algo::DefaultHeldoutSize(static_cast<int64_t>(all.size())));
  if (heldout >= static_cast<int>(all.size())) {
    return absl::InvalidArgumentError(absl::StrCat("dataset.heldout_size: ", heldout, " leaves no training pairs of ",
                                                   all.size()));
  }
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  splits->heldout_pairs.assign(all.begin(), all.begin() + heldout);
  splits->pairs.assign(all.begin() + heldout, all.end());
  return absl::OkStatus();
}

SamplePtrs PreferenceSequences::Ptrs() const {
  SamplePtrs out;
  for (const auto& r : rows) out.push_back(&r);
  return out;
}

PreferenceSequences BuildPreferenceSequences(const std::vector<const PreferenceRow*>& pairs, bool kto) {
  PreferenceSequences out;
  auto add = [&](const std::vector<int>& prompt, const std::vector<int>& completion) {
    grail::v1::Sample s;
    s.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    s.mutable_token_ids()->Add(completion.begin(), completion.end());
    out.rows.push_back(std::move(s));
  };
  const size_t B = pairs.size();
  if (!kto) {
    for (const auto* p : pairs) add(p->prompt, p->chosen);
    for (const auto* p : pairs) add(p->prompt, p->rejected);
    for (const auto* p : pairs) out.margins.push_back(static_cast<float>(p->margin));
    return out;
  }
  for (const auto* p : pairs) {
    add(p->prompt, p->chosen);
    out.labels.push_back(1);
    add(p->prompt, p->rejected);
    out.labels.push_back(0);
  }
  for (size_t i = 0; i < B; ++i) {
    const auto* next = pairs[(i + 1) % B];
    add(pairs[i]->prompt, next->chosen);
    add(pairs[i]->prompt, next->rejected);
  }
  return out;
}

std::vector<float> SummedCompletionLogProbs(const PreferenceSequences& seqs,
                                            const std::vector<std::vector<float>>& aligned) {
  std::vector<float> out;
  for (size_t r = 0; r < seqs.rows.size(); ++r) {
    const size_t begin = seqs.rows[r].prompt_token_ids_size();
    const size_t end = begin + seqs.rows[r].token_ids_size();
    double sum = 0;
    for (size_t t = begin; t < end && t < aligned[r].size(); ++t) sum += aligned[r][t];
    out.push_back(static_cast<float>(sum));
  }
  return out;
}

grail::v1::PreferenceStepRequest PreferenceStepRequest(int64_t step, const PreferenceSequences& seqs,
                                                       const std::vector<float>& ref_summed, bool eval_only,
                                                       int pad_id) {
  const Packed packed = PackSequences(seqs.Ptrs(), pad_id);
  const size_t rows = seqs.rows.size();
  std::vector<float> mask(rows * packed.width, 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    const size_t begin = seqs.rows[r].prompt_token_ids_size();
    const size_t end = begin + seqs.rows[r].token_ids_size();
    for (size_t t = begin; t < end; ++t) mask[r * packed.width + t] = 1.0f;
  }
  grail::v1::PreferenceStepRequest req;
  req.set_step(step);
  req.set_eval_only(eval_only);
  *req.mutable_input_ids() = Int64Matrix(rows, packed.width, packed.ids);
  *req.mutable_completion_mask() = FloatMatrix(rows, packed.width, mask);
  if (!ref_summed.empty()) *req.mutable_ref_log_probs() = FloatMatrix(rows, 1, ref_summed);
  if (!seqs.labels.empty()) *req.mutable_labels() = FloatMatrix(seqs.labels.size(), 1, seqs.labels);
  if (std::any_of(seqs.margins.begin(), seqs.margins.end(), [](float m) { return m != 0; })) {
    *req.mutable_margins() = FloatMatrix(seqs.margins.size(), 1, seqs.margins);
  }
  return req;
}

}  // namespace grail::coordinator
