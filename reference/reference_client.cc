#include "reference/reference_client.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"
#include "proto/grail/v1/reference.grpc.pb.h"

namespace grail::reference {
namespace {

class GrpcReferenceClient : public ReferenceClient {
 public:
  explicit GrpcReferenceClient(const ClientOptions& options)
      : options_(options), stub_(grail::v1::ReferenceService::NewStub(MakeChannel(options))) {}

  absl::StatusOr<grail::v1::LogProbsResponse> ComputeLogProbs(
      const grail::v1::LogProbsRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::LogProbsResponse response;
    absl::Status status = FromGrpcStatus(stub_->ComputeLogProbs(&context, request, &response), "reference", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob,
                                                             int64_t version) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::LoadWeightsResponse response;
    auto writer = stub_->LoadWeights(&context, &response);
    absl::Status status = NamePeer(UploadWeights(writer.get(), blob, version), "reference", options_.target);
    if (!status.ok()) return status;
    return response;
  }

 private:
  ClientOptions options_;
  std::unique_ptr<grail::v1::ReferenceService::Stub> stub_;
};

}  // namespace

std::unique_ptr<ReferenceClient> NewGrpcReferenceClient(const ClientOptions& options) {
  return std::make_unique<GrpcReferenceClient>(options);
}

}  // namespace grail::reference
