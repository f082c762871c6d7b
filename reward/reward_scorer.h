#ifndef GRAIL_REWARD_REWARD_SCORER_H_
#define GRAIL_REWARD_REWARD_SCORER_H_

#include <memory>

#include "absl/status/statusor.h"
#include "proto/grail/v1/reward.pb.h"

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
  static absl::StatusOr<std::unique_ptr<RewardScorer>> Create(const RewardScorerOptions& options);

  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) const;

 private:
  explicit RewardScorer(const RewardScorerOptions& options) : options_(options) {}
  RewardScorerOptions options_;
};

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_SCORER_H_
