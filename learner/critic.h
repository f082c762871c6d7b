#ifndef GRAIL_LEARNER_CRITIC_H_
#define GRAIL_LEARNER_CRITIC_H_

#include <memory>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "learner/group_step.h"
#include "learner/train_settings.h"
#include "model/transformer.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

// The value model of a gae run: the policy's decoder plus a scalar value head, with its own
// AdamW. Not thread-safe: the trainer calls it under its own lock.
class Critic {
 public:
  // The decoder is copied from `policy` (critic.init: policy) or freshly initialised with
  // settings.critic_seed.
  static absl::StatusOr<std::unique_ptr<Critic>> Create(model::CausalLm& policy, const TrainSettings& settings);

  model::CausalLm& model() { return *model_; }

  // Values aligned with input_ids (AlignedValues), without gradients.
  torch::Tensor Values(const torch::Tensor& ids);

  // One clipped value-loss step on this rank's shard, gradients all-reduced over the group.
  // Adds value_loss, vf_clipfrac and explained_variance to `response`.
  absl::Status Step(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& returns,
                    const torch::Tensor& old_values, const ShardWeights& shard, GroupStep& group,
                    int64_t bucket_bytes, double* allreduce_seconds, grail::v1::TrainStepResponse* response);

 private:
  Critic(std::shared_ptr<model::CausalLm> model, const TrainSettings& settings);
  std::shared_ptr<model::CausalLm> model_;
  const TrainSettings settings_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
};

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_CRITIC_H_
