#ifndef GRAIL_REWARD_REWARD_SCORER_H_
#define GRAIL_REWARD_REWARD_SCORER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "proto/grail/v1/reward.pb.h"
#include "reward/reward_model.h"

namespace grail::reward {

struct RewardScorerOptions {
  // Most items in one Score call.
  int max_items_per_request = 65536;
};

// Scores responses with verifiers (math, format, ifeval) plus optional overlong shaping.
// Stateless and thread-safe. Malformed requests are INVALID_ARGUMENT naming the item and
// field; an item that cannot be scored is marked failed, never given a zero reward.
class RewardScorer {
 public:
  // `reward_model` (may be null: "rm" items are then reported as failed) must outlive the
  // scorer.
  static absl::StatusOr<std::unique_ptr<RewardScorer>> Create(const RewardScorerOptions& options,
                                                              RewardModel* reward_model = nullptr);

  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) const;

  // Loads the reward model used by "rm" items. FAILED_PRECONDITION without one.
  absl::Status LoadRewardModel(std::string blob, int64_t version);

 private:
  RewardScorer(const RewardScorerOptions& options, RewardModel* reward_model)
      : options_(options), reward_model_(reward_model) {}
  RewardScorerOptions options_;
  RewardModel* reward_model_;
};

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_SCORER_H_
