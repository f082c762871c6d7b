#ifndef GRAIL_MODEL_SAMPLER_H_
#define GRAIL_MODEL_SAMPLER_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "model/transformer.h"

namespace grail::model {

struct SamplingOptions {
  // Softmax temperature; 0 = greedy (argmax).
  float temperature = 1.0f;
  // Nucleus sampling: keep the smallest set of tokens with cumulative probability >= top_p.
  // 0 or 1 = off.
  float top_p = 1.0f;
  // Keep only the k most likely tokens; 0 = off.
  int top_k = 0;
  // Upper bound on generated tokens per sequence (the model context bounds it too).
  int max_new_tokens = 32;
  // Generation of a row stops after it samples one of these (the token is kept).
  std::vector<int> stop_token_ids;
  // Seed of the sampling generator: the same seed, model and prompts give the same output.
  uint64_t seed = 0;
  // On the CPU (float32), the samples of a prompt reference one copy of its keys and values
  // (KVCache::prefix_of) instead of each slot copying them: the same results, one prompt's
  // cache reads per group instead of one per sample. false: each slot copies its prompt's
  // keys and values (for comparison; other devices always copy).
  bool share_prefixes = true;
};

enum class FinishReason { kEos, kLength };

struct GenerationResult {
  std::vector<int> tokens;       // response tokens only
  std::vector<float> log_probs;  // log p(token) under the temperature-scaled distribution
                                 // before top-k/top-p truncation (raw logits when greedy)
  FinishReason finish = FinishReason::kLength;
};

// INVALID_ARGUMENT naming the field for out-of-range options.
absl::Status ValidateSamplingOptions(const SamplingOptions& options);

// What one GenerateGroups call did, for metrics.
struct GenerationStats {
  int64_t decode_steps = 0;  // batched sampling steps
  int64_t slot_steps = 0;    // sum over steps of the sequences decoding in that step
  int64_t slots = 0;         // KV-cache slots (min(rows, max_batch_rows))
  int64_t prefills = 0;      // prompts prefilled (once each, shared by their samples)
};

// Generates `group_size` responses per prompt with continuous batching: at most
// `max_batch_rows` sequences decode together, each in its own KV-cache slot, and a finished
// sequence frees its slot for the next waiting one. Each prompt is prefilled once and its KV
// cache copied into the slots of its samples (prefix sharing); the prompts whose rows get
// slots together are prefilled together, sorted by length and right-padded, at most 4096
// padded tokens a batch. Decoding attends over the filled part of the cache only. With
// temperature > 0 and no top-k/top-p, a token is drawn by one uniform per row against the
// cumulative distribution (SampleTokens). Results are ordered
// prompt-major: result[p * group_size + g]. A prompt that is empty or does not fit the model
// context is INVALID_ARGUMENT naming prompts[i].
absl::StatusOr<std::vector<GenerationResult>> GenerateGroups(
    CausalLm& model, const std::vector<std::vector<int>>& prompts, int group_size,
    const SamplingOptions& options, int max_batch_rows = 256, GenerationStats* stats = nullptr);

// GenerateGroups with one sample per prompt.
absl::StatusOr<std::vector<GenerationResult>> Generate(CausalLm& model,
                                                       const std::vector<std::vector<int>>& prompts,
                                                       const SamplingOptions& options);

// Samples one token per row from logits [B,V]; returns (tokens [B], log_probs [B]).
std::pair<torch::Tensor, torch::Tensor> SampleTokens(const torch::Tensor& logits,
                                                     const SamplingOptions& options,
                                                     at::Generator& generator);

}  // namespace grail::model

#endif  // GRAIL_MODEL_SAMPLER_H_
