#ifndef GRAIL_LEARNER_EXPERIENCE_TENSORS_H_
#define GRAIL_LEARNER_EXPERIENCE_TENSORS_H_

// Wire tensors validated into LibTorch tensors, and the model passes the trainer aligns
// with input_ids.

#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/transformer.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

// Per-token log-probs aligned with input_ids: column t is log p(ids[:, t] | ids[:, :t]);
// column 0 is 0. Right padding needs no attention mask under causal attention.
// `temperature` (> 0) scales the logits as the actors' sampler does, so that RL log-probs
// are taken under the same distribution as the behaviour log-probs. With `entropy`, also
// the per-position entropy, aligned the same way; with `max_log_probs`, the log-prob of
// each position's most likely token. Both carry no gradient unless `entropy_grad` (an
// entropy bonus) asks for the entropy's.
// The log-probs come from the output projection taken over chunks of token rows, so the
// full [B, T, vocab] logits are never materialised or kept for backward (backward
// recomputes a chunk's logits); with `entropy_grad`, or an NF4 output projection, from the
// full logits.
//
// Packed rows (`segment_ids`, as SupervisedStepRequest.segment_ids): each segment is its
// own sequence (model::CausalLm::Hidden), and column t is 0 at each segment's first token.
torch::Tensor AlignedLogProbs(model::CausalLm& model, const torch::Tensor& ids, torch::Tensor* entropy = nullptr,
                              double temperature = 1.0, torch::Tensor* max_log_probs = nullptr,
                              bool entropy_grad = false, const torch::Tensor& segment_ids = {});

// Values aligned with input_ids: column t is the value head at position t-1; column 0 is 0.
torch::Tensor AlignedValues(model::CausalLm& critic, const torch::Tensor& ids);

// [B, T] int64 token ids with B >= 1, 2 <= T <= context and every id in [0, vocab);
// INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<torch::Tensor> TokenIds(const grail::v1::Tensor& t, const std::string& field, int64_t vocab,
                                       int64_t context);

// A finite float32 matrix shaped like `like`; INVALID_ARGUMENT naming `field` otherwise.
absl::StatusOr<torch::Tensor> FloatMatrixLike(const grail::v1::Tensor& t, const std::string& field,
                                              const torch::Tensor& like);

// Packed rows' segment ids: an int64 matrix shaped like `like`; INVALID_ARGUMENT naming
// `field` otherwise.
absl::StatusOr<torch::Tensor> SegmentIds(const grail::v1::Tensor& t, const std::string& field,
                                         const torch::Tensor& like);

// A TrainStep request's experience, validated against the policy's vocabulary and context.
struct ExperienceTensors {
  torch::Tensor ids, mask, old_log_probs, advantages;
  torch::Tensor ref_log_probs;       // undefined when not sent
  torch::Tensor returns, old_values;  // undefined without a critic
};
absl::StatusOr<ExperienceTensors> DecodeExperience(const grail::v1::Experience& e, int64_t vocab, int64_t context);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_EXPERIENCE_TENSORS_H_
