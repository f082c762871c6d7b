#ifndef GRAIL_LEARNER_PREFERENCE_STEP_H_
#define GRAIL_LEARNER_PREFERENCE_STEP_H_

// A PreferenceStep request's tensors, validated, and the run's preference objective over the
// policy's summed completion log-probs (learner/preference_losses).

#include <torch/torch.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "model/transformer.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

struct PreferenceBatch {
  int64_t pairs = 0;      // B
  torch::Tensor margins;  // [B] reward_model (optional)
  torch::Tensor lengths;  // [2B] completion tokens, each >= 1
  torch::Tensor ref;      // [2B] summed reference log-probs (dpo, kto); else undefined
  torch::Tensor labels;   // [B] kto: 1 desirable, 0 undesirable
};

// `ids` [2B, T] and `mask` [2B, T] are already validated; checks the rest against them,
// naming the field. An evaluation (eval_only) is always B pairs, chosen rows then rejected,
// whatever the objective; reference log-probs are optional there.
absl::StatusOr<PreferenceBatch> DecodePreferenceBatch(const grail::v1::PreferenceStepRequest& request,
                                                      grail::v1::PreferenceObjective objective,
                                                      const torch::Tensor& ids, const torch::Tensor& mask);

// A value-head model's score at each row's last completion token [2B].
torch::Tensor LastTokenScores(model::CausalLm& model, const torch::Tensor& ids, const torch::Tensor& mask);

struct PreferenceObjectiveResult {
  torch::Tensor loss;                      // differentiable in `seq`; undefined when not computed
  std::map<std::string, double> metrics;   // means over the pairs (rows for kto)
};

// The objective of `spec` on `seq` [2B] (summed completion log-probs: chosen rows, then
// rejected, or kto's rows then its mismatched rows). On pairs it reports the policy's own
// ranking, preference_accuracy = mean(logp chosen > logp rejected), and the objective's
// implicit-reward ranking, reward_accuracy (kto: its reward's sign agrees with the label).
// `evaluation`: pairs whatever the objective; the objective's loss and rewards only where
// its inputs are there (kto and a dpo batch without reference log-probs report the
// ranking alone).
absl::StatusOr<PreferenceObjectiveResult> PreferenceObjective(const grail::v1::PreferenceSpec& spec,
                                                             const torch::Tensor& seq, const PreferenceBatch& batch,
                                                             bool evaluation);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_PREFERENCE_STEP_H_
