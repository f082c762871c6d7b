#include "reward/reward_service_impl.h"

#include "common/grpc_status.h"
#include "common/security.h"
#include "common/weights_stream.h"

namespace grail::reward {

grpc::Status RewardServiceImpl::Score(grpc::ServerContext* context, const grail::v1::ScoreRequest* request,
                                      grail::v1::ScoreResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  absl::StatusOr<grail::v1::ScoreResponse> result = scorer_->Score(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  if (on_scored_) on_scored_(*request, *response);
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::LoadRewardModel(grpc::ServerContext* context,
                                                grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                                grail::v1::LoadWeightsResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(ServeWeightsUpload(
      reader, [this](std::string blob, int64_t version) { return scorer_->LoadRewardModel(std::move(blob), version); },
      response));
}

}  // namespace grail::reward
