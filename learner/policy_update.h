#ifndef GRAIL_LEARNER_POLICY_UPDATE_H_
#define GRAIL_LEARNER_POLICY_UPDATE_H_

#include <utility>
#include <vector>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "learner/group_step.h"
#include "learner/train_settings.h"
#include "model/transformer.h"

namespace grail::learner {

struct TisStats {
  double weight = 0;  // token-weighted share of this rank's mean IS weight
  double capped = 0;  // ... and of the fraction of capped tokens
};

// Truncated importance sampling: `current` are the current policy's log-probs. Weights each
// token's advantage by min(exp(current - behaviour), tis_cap) and makes `current` the
// ratio's reference.
TisStats ApplyTis(double tis_cap, const torch::Tensor& current, const torch::Tensor& mask, const ShardWeights& shard,
                  torch::Tensor* old_lp, torch::Tensor* adv);

// One rank's share of an RL step's batch.
struct PolicyBatch {
  torch::Tensor ids, mask, old_log_probs, advantages;
  torch::Tensor ref_log_probs;  // undefined: no KL to the reference
  // Per mini-batch: this rank's slice weights and the slice's row count over the whole
  // group (0 = the mini-batch is empty everywhere and is skipped).
  std::vector<std::pair<ShardWeights, double>> slices;
};

// The policy update of RL step `rl_step` (1-based, for the learning-rate schedule):
// ppo_epochs passes over the mini-batches with the run's objective, gradients all-reduced
// over the group. With `first_pass_tis` (one mini-batch only), truncated importance sampling
// uses the first forward pass and its statistics land there. Returns loss, pg_clipfrac(_lower),
// ppo_kl, entropy, grad_norm, learning_rate and (with reference log-probs) kl.
absl::StatusOr<std::map<std::string, double>> UpdatePolicy(model::CausalLm& model, torch::optim::AdamW& optimizer,
                                                           const TrainSettings& settings, int64_t rl_step,
                                                           GroupStep& group, int64_t bucket_bytes, PolicyBatch batch,
                                                           double* allreduce_seconds, TisStats* first_pass_tis);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_POLICY_UPDATE_H_
