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
  return ToGrpcStatus(ServeWeightsUpload(
      reader, [this](std::string blob, int64_t version) { return scorer_->LoadWeights(std::move(blob), version); },
      response));
}

}  // namespace grail::reference
