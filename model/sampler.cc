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
  const int64_t V = logits.size(-1);
  const bool truncated = (o.top_k > 0 && o.top_k < V) || (o.top_p > 0 && o.top_p < 1);
  auto scaled = o.temperature == 1.0f ? logits : logits / o.temperature;
  if (!truncated) {
    // Plain temperature sampling in one pass over the vocabulary: the normaliser, one
    // uniform draw per row and the inverse-CDF search (no V random draws, no softmax copy).
    auto max = std::get<0>(scaled.max(-1, /*keepdim=*/true));
    auto e = (scaled - max).exp_();
    auto cdf = e.cumsum(-1);
    auto total = cdf.narrow(-1, V - 1, 1);
    auto u = torch::rand({scaled.size(0), 1}, generator, scaled.scalar_type());
    auto tokens = torch::searchsorted(cdf, u * total, /*out_int32=*/false, /*right=*/true).clamp_max_(V - 1).squeeze(-1);
    auto lp = (scaled.gather(-1, tokens.unsqueeze(-1)) - max - total.log()).squeeze(-1);
    return {tokens, lp};
  }
  auto log_probs = torch::log_softmax(scaled, -1);
  // `filtered` may be changed in place: it is `logits` itself only at temperature 1.
  auto filtered = o.temperature == 1.0f ? logits.clone() : scaled;
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
  return GenerateGroups(model, prompts, 1, o);
}

absl::StatusOr<std::vector<GenerationResult>> GenerateGroups(
    CausalLm& model, const std::vector<std::vector<int>>& prompts, int group_size,
    const SamplingOptions& o, int max_batch_rows, GenerationStats* stats) {
  absl::Status valid = ValidateSamplingOptions(o);
  if (!valid.ok()) return valid;
  if (group_size < 1) return absl::InvalidArgumentError("group_size: must be >= 1");
  if (max_batch_rows < 1) return absl::InvalidArgumentError("max_batch_rows: must be >= 1");
  const int64_t P = static_cast<int64_t>(prompts.size());
  const int64_t context = model->config().max_position_embeddings;
  const int64_t vocab = model->config().vocab_size;
  // Prompt tuning: the prompt embeddings fill the first n cache entries (and positions) of
  // every row, ahead of its prompt; the context bounds the real tokens.
  const int64_t virtual_tokens = model->config().num_virtual_tokens;
  int64_t capacity = 0;
  for (int64_t i = 0; i < P; ++i) {
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
    capacity = std::max(capacity, virtual_tokens + len + std::min<int64_t>(o.max_new_tokens, context - len));
  }
  const int64_t rows = P * group_size;
  std::vector<GenerationResult> results(rows);
  if (rows == 0) return results;

  torch::NoGradGuard no_grad;
  const int64_t S = std::min<int64_t>(max_batch_rows, rows);
  const int64_t layers = model->config().num_hidden_layers;
  KVCache cache = model->NewCache(S, capacity);
  std::unordered_set<int> stops(o.stop_token_ids.begin(), o.stop_token_ids.end());
  at::Generator gen = at::detail::createCPUGenerator(o.seed);

  // A prompt's prefill: its keys/values per layer [KV, len, D] and the logits of its last
  // position. Kept until every sample of the prompt has a slot.
  //
  // On the CPU decoding path the prompt's keys and values are shared, not copied: they go to
  // an entry of the cache's prefix store once, and every sample's slot references that entry
  // (KVCache::prefix_of) until the last of them finishes. A live entry has an active slot,
  // or is about to (admission follows each prefill), so S entries suffice.
  struct Prefix {
    std::vector<torch::Tensor> keys, values;  // copying mode only
    torch::Tensor logits;
    int pending = 0;     // samples not yet admitted
    int live = 0;        // samples admitted and not finished (sharing mode)
    int64_t entry = -1;  // its prefix store entry (sharing mode)
  };
  std::vector<Prefix> prefixes(P);
  const bool share_prefixes = o.share_prefixes && cache.keys.front().is_cpu() &&
                              cache.keys.front().scalar_type() == torch::kFloat32;
  std::vector<int64_t> free_entries;
  if (share_prefixes) {
    int64_t longest = 0;
    for (const auto& prompt : prompts) longest = std::max<int64_t>(longest, prompt.size());
    const int64_t entries = std::min(P, S);
    for (int64_t l = 0; l < layers; ++l) {
      const auto& k = cache.keys[l];
      cache.prefix_keys.push_back(torch::empty({entries, k.size(1), virtual_tokens + longest, k.size(3)}, k.options()));
      cache.prefix_values.push_back(torch::empty_like(cache.prefix_keys.back()));
    }
    cache.prefix_of.assign(S, -1);
    cache.prefix_length.assign(S, 0);
    for (int64_t e = entries - 1; e >= 0; --e) free_entries.push_back(e);
  }
  // Prefills, together, the prompts of rows [first, first + count) that have no prefix yet:
  // sorted by length and cut into batches of at most kPrefillTokens padded tokens, each row
  // right-padded (padding is masked out, so every prompt computes as it would alone).
  constexpr int64_t kPrefillTokens = 4096;
  auto prefill_rows = [&](int64_t first, int64_t count) {
    std::vector<int64_t> need;
    for (int64_t r = first; r < first + count; ++r) {
      const int64_t p = r / group_size;
      if (prefixes[p].pending == 0 && (need.empty() || need.back() != p)) need.push_back(p);
    }
    std::stable_sort(need.begin(), need.end(),
                     [&](int64_t a, int64_t b) { return prompts[a].size() < prompts[b].size(); });
    for (size_t begin = 0; begin < need.size();) {
      size_t end = begin + 1;
      while (end < need.size() &&
             static_cast<int64_t>((end - begin + 1) * prompts[need[end]].size()) <= kPrefillTokens) {
        ++end;
      }
      const int64_t n = static_cast<int64_t>(end - begin);
      const int64_t width = static_cast<int64_t>(prompts[need[end - 1]].size());
      auto ids = torch::zeros({n, width}, torch::kInt64);
      auto valid = torch::zeros({n, width}, torch::kBool);
      std::vector<int64_t> last(n);
      for (int64_t i = 0; i < n; ++i) {
        const auto& prompt = prompts[need[begin + i]];
        const int64_t len = static_cast<int64_t>(prompt.size());
        auto row = ids[i].narrow(0, 0, len);
        row.copy_(torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end())));
        valid[i].narrow(0, 0, len).fill_(true);
        last[i] = len - 1;
      }
      KVCache tmp = model->NewCache(n, virtual_tokens + width);
      auto h = model->Hidden(ids, PositionsFromValid(valid), valid, &tmp);
      auto logits = model->Logits(h.index({torch::arange(n), torch::tensor(last)}));
      for (int64_t i = 0; i < n; ++i) {
        Prefix& pre = prefixes[need[begin + i]];
        const int64_t entries = virtual_tokens + last[i] + 1;
        if (share_prefixes) {
          TORCH_CHECK(!free_entries.empty(), "sampler: no free prefix store entry");
          pre.entry = free_entries.back();
          free_entries.pop_back();
        }
        for (int64_t l = 0; l < layers; ++l) {
          auto keys = tmp.keys[l][i].narrow(1, 0, entries), values = tmp.values[l][i].narrow(1, 0, entries);
          if (share_prefixes) {
            cache.prefix_keys[l][pre.entry].narrow(1, 0, entries).copy_(keys);
            cache.prefix_values[l][pre.entry].narrow(1, 0, entries).copy_(values);
          } else {
            pre.keys.push_back(keys);
            pre.values.push_back(values);
          }
        }
        pre.logits = logits[i];
        pre.pending = group_size;
      }
      begin = end;
    }
  };

  // Slot state. A free slot has row -1.
  std::vector<int64_t> slot_row(S, -1), slot_len(S, 0), slot_limit(S, 0);
  auto next_logits = torch::zeros({S, vocab});
  int64_t next_row = 0, active = 0;
  auto admit = [&](int64_t s) {
    const int64_t r = next_row++, p = r / group_size;
    const int64_t len = virtual_tokens + static_cast<int64_t>(prompts[p].size());  // cache entries
    Prefix& pre = prefixes[p];
    if (share_prefixes) {
      cache.prefix_of[s] = pre.entry;
      cache.prefix_length[s] = len;
      ++pre.live;
    } else {
      for (int64_t l = 0; l < layers; ++l) {
        cache.keys[l][s].narrow(1, 0, len).copy_(pre.keys[l]);
        cache.values[l][s].narrow(1, 0, len).copy_(pre.values[l]);
      }
    }
    cache.key_valid[s].fill_(false);
    cache.key_valid[s].narrow(0, 0, len).fill_(true);
    next_logits[s].copy_(pre.logits);
    // Last sample admitted: free the prefix (its store entry once the last one finishes).
    if (--pre.pending == 0 && !share_prefixes) pre = Prefix();
    slot_row[s] = r;
    slot_len[s] = len;
    slot_limit[s] = std::min<int64_t>(o.max_new_tokens, context - (len - virtual_tokens));
    ++active;
  };

  while (true) {
    const int64_t free_slots = S - active;
    if (free_slots > 0 && next_row < rows) prefill_rows(next_row, std::min(free_slots, rows - next_row));
    for (int64_t s = 0; s < S && next_row < rows; ++s) {
      if (slot_row[s] < 0) admit(s);
    }
    if (active == 0) break;
    // Sample the next token of every active slot.
    std::vector<int64_t> live;
    for (int64_t s = 0; s < S; ++s) {
      if (slot_row[s] >= 0) live.push_back(s);
    }
    if (stats != nullptr) {
      ++stats->decode_steps;
      stats->slot_steps += static_cast<int64_t>(live.size());
      stats->slots = S;
      stats->prefills = P;
    }
    auto live_idx = torch::tensor(live);
    auto [tokens, lps] = SampleTokens(next_logits.index_select(0, live_idx), o, gen);
    auto tok_a = tokens.accessor<int64_t, 1>();
    auto lp_a = lps.accessor<float, 1>();
    std::vector<int64_t> feed_tokens(S, 0), feed_pos(S, 0), write_at(S, 0);
    std::vector<int64_t> decoding;
    for (size_t i = 0; i < live.size(); ++i) {
      const int64_t s = live[i];
      GenerationResult& res = results[slot_row[s]];
      const int tok = static_cast<int>(tok_a[i]);
      res.tokens.push_back(tok);
      res.log_probs.push_back(lp_a[i]);
      const bool stopped = stops.count(tok) > 0;
      if (stopped || static_cast<int64_t>(res.tokens.size()) >= slot_limit[s]) {
        res.finish = stopped ? FinishReason::kEos : FinishReason::kLength;
        if (share_prefixes) {
          Prefix& pre = prefixes[slot_row[s] / group_size];
          cache.prefix_of[s] = -1;
          cache.prefix_length[s] = 0;
          if (--pre.live == 0 && pre.pending == 0) {
            free_entries.push_back(pre.entry);
            pre = Prefix();
          }
        }
        slot_row[s] = -1;  // free the slot for a waiting row
        --active;
        continue;
      }
      feed_tokens[s] = tok;
      feed_pos[s] = slot_len[s];
      write_at[s] = slot_len[s];
      decoding.push_back(s);
    }
    if (decoding.empty()) continue;
    // Every slot runs the step; free slots write into their own (unused) first entry.
    auto hidden = model->DecodeHidden(torch::tensor(feed_tokens), torch::tensor(feed_pos),
                                      torch::tensor(write_at), &cache);
    auto logits = model->Logits(hidden);
    auto decoding_idx = torch::tensor(decoding);
    next_logits.index_copy_(0, decoding_idx, logits.index_select(0, decoding_idx));
    for (int64_t s : decoding) ++slot_len[s];
  }
  return results;
}

}  // namespace grail::model
