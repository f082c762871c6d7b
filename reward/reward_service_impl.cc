#include "reward/reward_service_impl.h"

#include "common/grpc_status.h"

namespace grail::reward {

grpc::Status RewardServiceImpl::Score(grpc::ServerContext*, const grail::v1::ScoreRequest* request,
                                      grail::v1::ScoreResponse* response) {
  absl::StatusOr<grail::v1::ScoreResponse> result = scorer_->Score(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

}  // namespace grail::reward
