#include "reward/reward_service_impl.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"

namespace grail::reward {

grpc::Status RewardServiceImpl::Score(grpc::ServerContext*, const grail::v1::ScoreRequest* request,
                                      grail::v1::ScoreResponse* response) {
  absl::StatusOr<grail::v1::ScoreResponse> result = scorer_->Score(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status RewardServiceImpl::LoadRewardModel(grpc::ServerContext*,
                                                grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                                grail::v1::LoadWeightsResponse* response) {
  absl::StatusOr<ReceivedWeights> weights = ReadWeightsStream(reader);
  if (!weights.ok()) return ToGrpcStatus(weights.status());
  const int64_t bytes = static_cast<int64_t>(weights->blob.size());
  absl::Status status = scorer_->LoadRewardModel(std::move(weights->blob), weights->version);
  if (!status.ok()) return ToGrpcStatus(status);
  response->set_version(weights->version);
  response->set_bytes_received(bytes);
  return grpc::Status::OK;
}

}  // namespace grail::reward
