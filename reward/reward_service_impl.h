#ifndef GRAIL_REWARD_REWARD_SERVICE_IMPL_H_
#define GRAIL_REWARD_REWARD_SERVICE_IMPL_H_

#include <functional>

#include "proto/grail/v1/reward.grpc.pb.h"
#include "reward/reward_scorer.h"
#include "common/security.h"

namespace grail::reward {

// gRPC adapter over a RewardScorer. Stateless; the scorer must outlive it.
class RewardServiceImpl final : public grail::v1::RewardService::Service {
 public:
  // Called after each successful Score.
  using ScoreObserver = std::function<void(const grail::v1::ScoreRequest&, const grail::v1::ScoreResponse&)>;

  // `auth` checks every call first; it and the scorer outlive the service.
  RewardServiceImpl(const Authenticator* auth, RewardScorer* scorer, ScoreObserver on_scored = nullptr)
      : auth_(auth), scorer_(scorer), on_scored_(std::move(on_scored)) {}

  grpc::Status Score(grpc::ServerContext* context, const grail::v1::ScoreRequest* request,
                     grail::v1::ScoreResponse* response) override;
  grpc::Status LoadRewardModel(grpc::ServerContext* context,
                               grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                               grail::v1::LoadWeightsResponse* response) override;

 private:
  const Authenticator* auth_;
  RewardScorer* scorer_;
  ScoreObserver on_scored_;
};

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_SERVICE_IMPL_H_
