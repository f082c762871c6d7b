#ifndef GRAIL_LEARNER_PREFERENCE_STEP_H_
#define GRAIL_LEARNER_PREFERENCE_STEP_H_

// A PreferenceStep request's tensors, validated, and the run's preference objective over the
// policy's summed completion log-probs (learner/preference_losses).

#include <torch/torch.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

struct PreferenceBatch {
  int64_t pairs = 0;      // B
  torch::Tensor lengths;  // [2B] completion tokens, each >= 1
  torch::Tensor ref;      // [2B] summed reference log-probs (dpo, kto); else undefined
  torch::Tensor labels;   // [B] kto: 1 desirable, 0 undesirable
};

// `ids` [2B, T] and `mask` [2B, T] are already validated; checks the rest against them,
// naming the field.
absl::StatusOr<PreferenceBatch> DecodePreferenceBatch(const grail::v1::PreferenceStepRequest& request,
                                                      grail::v1::PreferenceObjective objective,
                                                      const torch::Tensor& ids, const torch::Tensor& mask);

struct PreferenceObjectiveResult {
  torch::Tensor loss;                      // differentiable in `seq`
  std::map<std::string, double> metrics;   // means over the pairs (rows for kto)
};

// The objective of `spec` on `seq` [2B] (summed completion log-probs: chosen rows, then
// rejected, or kto's rows then its mismatched rows).
absl::StatusOr<PreferenceObjectiveResult> PreferenceObjective(const grail::v1::PreferenceSpec& spec,
                                                             const torch::Tensor& seq, const PreferenceBatch& batch);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_PREFERENCE_STEP_H_
