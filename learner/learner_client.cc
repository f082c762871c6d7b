#include "learner/learner_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/weights_stream.h"
#include "proto/grail/v1/learner.grpc.pb.h"

namespace grail::learner {
namespace {

class GrpcLearnerClient : public LearnerClient {
 public:
  explicit GrpcLearnerClient(const ClientOptions& options)
      : options_(options), channel_(MakeChannel(options)), stub_(grail::v1::LearnerService::NewStub(channel_)) {}

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

  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(
      const grail::v1::PreferenceStepRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::TrainStepResponse response;
    absl::Status status = FromGrpcStatus(stub_->PreferenceStep(&context, request, &response), "learner", options_.target);
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

  absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(
      const grail::v1::ScoreSequencesRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::ScoreSequencesResponse response;
    absl::Status status = FromGrpcStatus(stub_->ScoreSequences(&context, request, &response), "learner", options_.target);
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

  absl::Status WaitUntilServing(absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    absl::Status last = absl::UnavailableError("not asked");
    while (true) {
      auto serving = CheckServing(channel_.get(), absl::Seconds(2));
      if (serving.ok() && *serving) return absl::OkStatus();
      last = serving.ok() ? absl::UnavailableError("NOT_SERVING") : serving.status();
      if (absl::Now() + absl::Seconds(1) >= deadline) break;
      absl::SleepFor(absl::Seconds(1));
    }
    return absl::UnavailableError(absl::StrCat("learner ", options_.target, ": not serving after ",
                                               absl::FormatDuration(timeout), " (", last.message(), ")"));
  }

  using LearnerClient::GetWeights;
  absl::StatusOr<Weights> GetWeights(int64_t min_version, grail::v1::WeightsPart part) override {
    return StreamWeights(min_version, part, nullptr);
  }

  absl::StatusOr<Weights> StreamWeights(int64_t min_version, grail::v1::WeightsPart part,
                                        const ChunkSink& sink) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::GetWeightsRequest request;
    request.set_min_version(min_version);
    request.set_part(part);
    auto reader = stub_->GetWeights(&context, request);
    absl::StatusOr<ReceivedWeights> received =
        ReadWeightsStream(reader.get(), sink, sink ? DigestCheck::kLeaveToReceivers : DigestCheck::kVerify);
    absl::Status status = FromGrpcStatus(reader->Finish(), "learner", options_.target);
    // The server's own error explains an empty or short stream better than ours does.
    if (!status.ok()) return status;
    if (!received.ok()) return NamePeer(received.status(), "learner", options_.target);
    return Weights{std::move(received->blob), received->version, std::move(received->digest)};
  }

 private:
  ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<grail::v1::LearnerService::Stub> stub_;
};

}  // namespace

absl::StatusOr<LearnerClient::Weights> LearnerClient::StreamWeights(int64_t min_version, grail::v1::WeightsPart part,
                                                                    const ChunkSink& sink) {
  absl::StatusOr<Weights> weights = GetWeights(min_version, part);
  if (!weights.ok() || !sink) return weights;
  for (auto& chunk : ChunkWeights(weights->blob, weights->version)) sink(std::move(chunk));
  return weights;
}

std::unique_ptr<LearnerClient> NewGrpcLearnerClient(const ClientOptions& options) {
  return std::make_unique<GrpcLearnerClient>(options);
}

}  // namespace grail::learner
