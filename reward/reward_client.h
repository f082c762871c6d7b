#ifndef GRAIL_REWARD_REWARD_CLIENT_H_
#define GRAIL_REWARD_REWARD_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/reward.pb.h"

namespace grail::reward {

// Talks to the reward scorer. Implementations are thread-safe.
class RewardClient {
 public:
  virtual ~RewardClient() = default;
  virtual absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) = 0;
  // Streams a reward model's weights blob (a value-head model's safetensors, as the learner
  // serves it) to the scorer's `rm` verifier.
  virtual absl::StatusOr<grail::v1::LoadWeightsResponse> LoadRewardModel(const std::string& blob,
                                                                        int64_t version) = 0;
};

std::unique_ptr<RewardClient> NewGrpcRewardClient(const ClientOptions& options);

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_CLIENT_H_
