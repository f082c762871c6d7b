#include "reference/reference_service_impl.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"

namespace grail::reference {

grpc::Status ReferenceServiceImpl::ComputeLogProbs(grpc::ServerContext*,
                                                   const grail::v1::LogProbsRequest* request,
                                                   grail::v1::LogProbsResponse* response) {
  absl::StatusOr<grail::v1::LogProbsResponse> result = scorer_->ComputeLogProbs(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status ReferenceServiceImpl::LoadWeights(grpc::ServerContext*,
                                               grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                               grail::v1::LoadWeightsResponse* response) {
  absl::StatusOr<ReceivedWeights> weights = ReadWeightsStream(reader);
  if (!weights.ok()) return ToGrpcStatus(weights.status());
  const int64_t bytes = static_cast<int64_t>(weights->blob.size());
  absl::Status status = scorer_->LoadWeights(std::move(weights->blob), weights->version);
  if (!status.ok()) return ToGrpcStatus(status);
  response->set_version(weights->version);
  response->set_bytes_received(bytes);
  return grpc::Status::OK;
}

}  // namespace grail::reference
