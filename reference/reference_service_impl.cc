#include "reference/reference_service_impl.h"

#include "common/grpc_status.h"
#include "common/security.h"
#include "common/weights_stream.h"

namespace grail::reference {

grpc::Status ReferenceServiceImpl::ComputeLogProbs(grpc::ServerContext* context,
                                                   const grail::v1::LogProbsRequest* request,
                                                   grail::v1::LogProbsResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  absl::StatusOr<grail::v1::LogProbsResponse> result = scorer_->ComputeLogProbs(*request);
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status ReferenceServiceImpl::LoadWeights(grpc::ServerContext* context,
                                               grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                               grail::v1::LoadWeightsResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(ServeWeightsUpload(
      reader, [this](std::string blob, int64_t version) { return scorer_->LoadWeights(std::move(blob), version); },
      response));
}

}  // namespace grail::reference
