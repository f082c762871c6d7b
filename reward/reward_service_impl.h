#ifndef GRAIL_REWARD_REWARD_SERVICE_IMPL_H_
#define GRAIL_REWARD_REWARD_SERVICE_IMPL_H_

#include "proto/grail/v1/reward.grpc.pb.h"
#include "reward/reward_scorer.h"

namespace grail::reward {

// gRPC adapter over a RewardScorer. Stateless; the scorer must outlive it.
class RewardServiceImpl final : public grail::v1::RewardService::Service {
 public:
  explicit RewardServiceImpl(RewardScorer* scorer) : scorer_(scorer) {}

  grpc::Status Score(grpc::ServerContext* context, const grail::v1::ScoreRequest* request,
                     grail::v1::ScoreResponse* response) override;
  grpc::Status LoadRewardModel(grpc::ServerContext* context,
                               grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                               grail::v1::LoadWeightsResponse* response) override;

 private:
  RewardScorer* scorer_;
};

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_SERVICE_IMPL_H_
