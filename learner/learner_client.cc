#include "learner/learner_client.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"
#include "proto/grail/v1/learner.grpc.pb.h"

namespace grail::learner {
namespace {

class GrpcLearnerClient : public LearnerClient {
 public:
  explicit GrpcLearnerClient(const ClientOptions& options)
      : options_(options), stub_(grail::v1::LearnerService::NewStub(MakeChannel(options))) {}

  using LearnerClient::InitModel;
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    // A run's first call waits for a connecting channel instead of failing at once: ranks
    // that were just restarted are reachable a moment later, and an InitModel that reaches
    // only some ranks of a group leaves the others waiting in a collective. Later calls fail
    // fast, so that a dead rank is noticed at once.
    context.set_wait_for_ready(true);
    grail::v1::InitModelResponse response;
    absl::Status status = FromGrpcStatus(stub_->InitModel(&context, request, &response), "learner", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::TrainStepResponse response;
    absl::Status status = FromGrpcStatus(stub_->SupervisedStep(&context, request, &response), "learner", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(
      const grail::v1::TrainStepRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::TrainStepResponse response;
    absl::Status status = FromGrpcStatus(stub_->TrainStep(&context, request, &response), "learner", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::ComputeValuesResponse response;
    absl::Status status = FromGrpcStatus(stub_->ComputeValues(&context, request, &response), "learner", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::SaveCheckpointRequest request;
    request.set_dir(dir);
    request.set_run_state(run_state);
    grail::v1::SaveCheckpointResponse response;
    absl::Status status = FromGrpcStatus(stub_->SaveCheckpoint(&context, request, &response), "learner", options_.target);
    if (!status.ok()) return status;
    return response.path();
  }

  absl::StatusOr<Weights> GetWeights(int64_t min_version) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::GetWeightsRequest request;
    request.set_min_version(min_version);
    auto reader = stub_->GetWeights(&context, request);
    absl::StatusOr<ReceivedWeights> received = ReadWeightsStream(reader.get());
    absl::Status status = FromGrpcStatus(reader->Finish(), "learner", options_.target);
    // The server's own error explains an empty or short stream better than ours does.
    if (!status.ok()) return status;
    if (!received.ok()) return received.status();
    return Weights{std::move(received->blob), received->version};
  }

 private:
  ClientOptions options_;
  std::unique_ptr<grail::v1::LearnerService::Stub> stub_;
};

}  // namespace

std::unique_ptr<LearnerClient> NewGrpcLearnerClient(const ClientOptions& options) {
  return std::make_unique<GrpcLearnerClient>(options);
}

}  // namespace grail::learner
