#include "coordinator/probes.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace grail::coordinator {

absl::StatusOr<std::vector<ProbeRow>> ArithmeticProbes(const Dataset& train, const std::vector<PreferenceRow>& pairs,
                                                       const tokenizer::Tokenizer& tok, int size) {
  const size_t n = std::min({static_cast<size_t>(std::max(size, 0)), train.size(), pairs.size()});
  auto completion = [&](const std::string& text) -> absl::StatusOr<std::vector<int>> {
    ASSIGN_OR_RETURN(std::vector<int> ids, tok.Encode(text));
    if (tok.eos_id() >= 0) ids.push_back(tok.eos_id());
    return ids;
  };
  std::vector<ProbeRow> out;
  for (size_t i = 0; i < n; ++i) {
    const Problem& p = train.Get(i);
    ProbeRow r;
    r.prompt = pairs[i].prompt;
    r.chosen = pairs[i].chosen;
    r.rejected = pairs[i].rejected;
    std::vector<int> wrong_ids = pairs[i].rejected;
    if (tok.eos_id() >= 0 && !wrong_ids.empty() && wrong_ids.back() == tok.eos_id()) wrong_ids.pop_back();
    const std::string wrong = tok.Decode(wrong_ids);
    for (auto [text, to] : {std::pair<std::string, std::vector<std::vector<int>>*>{p.answer, &r.chosen_paraphrases},
                            {wrong, &r.rejected_paraphrases}}) {
      ASSIGN_OR_RETURN(std::vector<int> zero, completion(absl::StrCat("0", text)));
      ASSIGN_OR_RETURN(std::vector<int> space, completion(absl::StrCat(text, " ")));
      to->push_back(std::move(zero));
      to->push_back(std::move(space));
    }
    // Another problem's answer, different from both responses.
    for (size_t k = 1; k < train.size(); ++k) {
      const std::string& other = train.Get((i + k) % train.size()).answer;
      if (other != p.answer && other != wrong) {
        ASSIGN_OR_RETURN(r.unrelated, completion(other));
        break;
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

ProbeSequences BuildProbeSequences(const std::vector<ProbeRow>& probes, const std::vector<std::vector<int>>& greedy) {
  ProbeSequences out;
  auto add = [&](int probe, const std::vector<int>& prompt, const std::vector<int>& response, const char* type,
                 int variant) {
    if (response.empty()) return;
    grail::v1::Sample s;
    s.mutable_prompt_token_ids()->Add(prompt.begin(), prompt.end());
    s.mutable_token_ids()->Add(response.begin(), response.end());
    out.rows.push_back(std::move(s));
    out.labels.push_back({probe, type, variant});
  };
  for (size_t i = 0; i < probes.size(); ++i) {
    const ProbeRow& p = probes[i];
    const int id = static_cast<int>(i);
    add(id, p.prompt, p.chosen, "chosen", 0);
    add(id, p.prompt, p.rejected, "rejected", 0);
    for (size_t v = 0; v < p.chosen_paraphrases.size(); ++v) {
      add(id, p.prompt, p.chosen_paraphrases[v], "chosen_paraphrase", static_cast<int>(v));
    }
    for (size_t v = 0; v < p.rejected_paraphrases.size(); ++v) {
      add(id, p.prompt, p.rejected_paraphrases[v], "rejected_paraphrase", static_cast<int>(v));
    }
    add(id, p.prompt, p.unrelated, "unrelated", 0);
    if (i < greedy.size()) add(id, p.prompt, greedy[i], "greedy", 0);
  }
  return out;
}

namespace {

SamplePtrs Rows(const ProbeSequences& seqs, size_t begin, size_t end) {
  SamplePtrs out;
  for (size_t i = begin; i < end; ++i) out.push_back(&seqs.rows[i]);
  return out;
}

}  // namespace

grail::v1::ScoreSequencesRequest ScoreSequencesRequest(const ProbeSequences& seqs, size_t begin, size_t end,
                                                       int pad_id) {
  const Packed packed = PackSequences(Rows(seqs, begin, end), pad_id);
  grail::v1::ScoreSequencesRequest request;
  *request.mutable_input_ids() =
      Int64Matrix(static_cast<int64_t>(end - begin), static_cast<int64_t>(packed.width), packed.ids);
  return request;
}

absl::Status AppendProbeRecords(const ProbeSequences& seqs, size_t begin, size_t end,
                                const grail::v1::ScoreSequencesResponse& response, int64_t step,
                                std::vector<grail::v1::ProbeRecord>* out) {
  const SamplePtrs rows = Rows(seqs, begin, end);
  size_t width = 0;
  for (const auto* s : rows) width = std::max<size_t>(width, s->prompt_token_ids_size() + s->token_ids_size());
  const size_t B = rows.size();
  for (const auto* t : {&response.log_probs(), &response.max_log_probs()}) {
    if (t->dtype() != grail::v1::DTYPE_FLOAT32 || t->shape_size() != 2 || t->shape(0) != static_cast<int64_t>(B) ||
        t->shape(1) != static_cast<int64_t>(width) || t->data().size() != B * width * sizeof(float)) {
      return absl::InternalError("learner: probe log-probs have the wrong shape");
    }
  }
  const float* lp = reinterpret_cast<const float*>(response.log_probs().data().data());
  const float* top = reinterpret_cast<const float*>(response.max_log_probs().data().data());
  for (size_t b = 0; b < B; ++b) {
    const auto& label = seqs.labels[begin + b];
    grail::v1::ProbeRecord r;
    r.set_step(step);
    r.set_probe(label.probe);
    r.set_response_type(label.type);
    r.set_variant(label.variant);
    const size_t first = rows[b]->prompt_token_ids_size();
    const size_t last = first + rows[b]->token_ids_size();
    double sum = 0;
    for (size_t t = first; t < last; ++t) {
      sum += lp[b * width + t];
      r.add_token_log_probs(lp[b * width + t]);
      r.add_argmax_probs(std::exp(top[b * width + t]));
    }
    r.set_log_prob(sum);
    out->push_back(std::move(r));
  }
  return absl::OkStatus();
}

std::map<std::string, double> ProbeMeans(const std::vector<grail::v1::ProbeRecord>& records) {
  std::map<std::string, std::pair<double, double>> log_prob, argmax;  // sum, count
  for (const auto& r : records) {
    auto& l = log_prob[r.response_type()];
    l.first += r.log_prob();
    l.second += 1;
    double mean = 0;
    for (float p : r.argmax_probs()) mean += p;
    auto& a = argmax[r.response_type()];
    a.first += r.argmax_probs_size() > 0 ? mean / r.argmax_probs_size() : 0;
    a.second += 1;
  }
  std::map<std::string, double> out;
  for (const auto& [type, v] : log_prob) out[absl::StrCat("probe_", type, "_log_prob")] = v.first / v.second;
  for (const auto& [type, v] : argmax) out[absl::StrCat("probe_", type, "_argmax_prob")] = v.first / v.second;
  return out;
}

}  // namespace grail::coordinator
