#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "absl/strings/str_cat.h"

namespace grail::model {

absl::Status ValidateSamplingOptions(const SamplingOptions& o) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.temperature: must be >= 0, got ", o.temperature));
  }
  if (!(o.top_p >= 0 && o.top_p <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_p: must be in [0, 1], got ", o.top_p));
  }
  if (o.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrCat("sampling.top_k: must be >= 0, got ", o.top_k));
  }
  if (o.max_new_tokens <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.max_new_tokens: must be > 0, got ", o.max_new_tokens));
  }
  return absl::OkStatus();
}

std::pair<torch::Tensor, torch::Tensor> SampleTokens(const torch::Tensor& logits,
                                                     const SamplingOptions& o,
                                                     at::Generator& generator) {
  if (o.temperature == 0) {
    auto tokens = logits.argmax(-1);
    auto lp = torch::log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
    return {tokens, lp};
  }
  auto scaled = logits / o.temperature;
  auto log_probs = torch::log_softmax(scaled, -1);
  auto filtered = scaled.clone();
  const int64_t V = logits.size(-1);
  if (o.top_k > 0 && o.top_k < V) {
    auto kth = std::get<0>(filtered.topk(o.top_k, -1)).narrow(-1, o.top_k - 1, 1);
    filtered.masked_fill_(filtered < kth, -std::numeric_limits<float>::infinity());
  }
  if (o.top_p > 0 && o.top_p < 1) {
    auto sorted = filtered.sort(-1, /*descending=*/true);
    auto sorted_logits = std::get<0>(sorted), sorted_idx = std::get<1>(sorted);
    auto probs = torch::softmax(sorted_logits, -1);
    // Drop a token when the mass before it already reaches top_p (the top token always stays).
    auto drop = (probs.cumsum(-1) - probs) >= o.top_p;
    auto drop_unsorted = torch::zeros_like(drop).scatter(-1, sorted_idx, drop);
    filtered.masked_fill_(drop_unsorted, -std::numeric_limits<float>::infinity());
  }
  auto tokens = torch::multinomial(torch::softmax(filtered, -1), 1, false, generator).squeeze(-1);
  auto lp = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1);
  return {tokens, lp};
}

absl::StatusOr<std::vector<GenerationResult>> Generate(CausalLm& model,
                                                       const std::vector<std::vector<int>>& prompts,
                                                       const SamplingOptions& o) {
  absl::Status valid = ValidateSamplingOptions(o);
  if (!valid.ok()) return valid;
  const int64_t B = static_cast<int64_t>(prompts.size());
  if (B == 0) return std::vector<GenerationResult>();
  const int64_t context = model->config().max_position_embeddings;
  const int64_t vocab = model->config().vocab_size;
  int64_t P = 0;
  for (int64_t i = 0; i < B; ++i) {
    const int64_t len = static_cast<int64_t>(prompts[i].size());
    if (len == 0) return absl::InvalidArgumentError(absl::StrCat("prompts[", i, "]: empty"));
    if (len >= context) {
      return absl::InvalidArgumentError(absl::StrCat("prompts[", i, "]: length ", len,
                                                     " leaves no room in the model context of ", context));
    }
    for (int id : prompts[i]) {
      if (id < 0 || id >= vocab) {
        return absl::InvalidArgumentError(absl::StrCat("prompts[", i, "]: token id ", id,
                                                       " outside the vocabulary of ", vocab));
      }
    }
    P = std::max(P, len);
  }
  const int64_t steps = std::min<int64_t>(o.max_new_tokens, context - P);

  torch::NoGradGuard no_grad;
  auto ids = torch::zeros({B, P}, torch::kInt64);
  auto valid_mask = torch::zeros({B, P}, torch::kBool);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto valid_a = valid_mask.accessor<bool, 2>();
  std::vector<int64_t> next_pos(B);
  for (int64_t i = 0; i < B; ++i) {
    const int64_t len = static_cast<int64_t>(prompts[i].size());
    for (int64_t t = 0; t < len; ++t) {
      ids_a[i][P - len + t] = prompts[i][t];
      valid_a[i][P - len + t] = true;
    }
    next_pos[i] = len;
  }
  std::unordered_set<int> stops(o.stop_token_ids.begin(), o.stop_token_ids.end());
  std::vector<GenerationResult> results(B);
  std::vector<bool> done(B, false);
  at::Generator gen = at::detail::createCPUGenerator(o.seed);

  KVCache cache = model->NewCache(B, P + steps);
  auto hidden = model->Hidden(ids, PositionsFromValid(valid_mask), valid_mask, &cache);
  auto logits = model->Logits(hidden.select(1, P - 1));
  int64_t active = B;
  for (int64_t step = 0; step < steps && active > 0; ++step) {
    auto [tokens, lps] = SampleTokens(logits, o, gen);
    auto tok_a = tokens.accessor<int64_t, 1>();
    auto lp_a = lps.accessor<float, 1>();
    auto step_valid = torch::zeros({B, 1}, torch::kBool);
    auto positions = torch::zeros({B, 1}, torch::kInt64);
    for (int64_t i = 0; i < B; ++i) {
      positions[i][0] = next_pos[i];
      if (done[i]) continue;
      const int tok = static_cast<int>(tok_a[i]);
      results[i].tokens.push_back(tok);
      results[i].log_probs.push_back(lp_a[i]);
      step_valid[i][0] = true;
      ++next_pos[i];
      if (stops.count(tok)) {
        results[i].finish = FinishReason::kEos;
        done[i] = true;
        --active;
      }
    }
    if (active == 0 || step + 1 == steps) break;
    hidden = model->Hidden(tokens.unsqueeze(1), positions, step_valid, &cache);
    logits = model->Logits(hidden.select(1, 0));
  }
  return results;
}

}  // namespace grail::model
