#include "actor/actor_client.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/weights_stream.h"
#include "proto/grail/v1/actor.grpc.pb.h"

namespace grail::actor {
namespace {

class GrpcWeightsUpload : public WeightsUpload {
 public:
  GrpcWeightsUpload(grail::v1::ActorService::Stub* stub, const ClientOptions& options) : target_(options.target) {
    SetTimeout(&context_, options.timeout);
    writer_ = stub->LoadWeights(&context_, &response_);
  }
  ~GrpcWeightsUpload() override {
    if (!finished_) context_.TryCancel();
  }

  bool Write(const grail::v1::WeightsChunk& chunk) override {
    if (broken_) return false;
    broken_ = !writer_->Write(chunk);
    return !broken_;
  }

  absl::StatusOr<grail::v1::LoadWeightsResponse> Finish() override {
    finished_ = true;
    writer_->WritesDone();
    // The actor's own error (a short stream, a digest mismatch) explains a broken stream.
    absl::Status status = FromGrpcStatus(writer_->Finish(), "actor", target_);
    if (!status.ok()) return status;
    if (broken_) return absl::UnavailableError(absl::StrCat("actor ", target_, ": weights stream broken"));
    return response_;
  }

 private:
  const std::string target_;
  grpc::ClientContext context_;
  grail::v1::LoadWeightsResponse response_;
  std::unique_ptr<grpc::ClientWriter<grail::v1::WeightsChunk>> writer_;
  bool broken_ = false;
  bool finished_ = false;
};

class GrpcActorClient : public ActorClient {
 public:
  explicit GrpcActorClient(const ClientOptions& options)
      : options_(options), stub_(grail::v1::ActorService::NewStub(MakeChannel(options))) {}

  absl::Status Generate(const grail::v1::GenerateRequest& request,
                        const std::function<void(grail::v1::Sample)>& on_sample) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    StallWatchdog watchdog(&context, options_.stall_timeout);
    auto reader = stub_->Generate(&context, request);
    grail::v1::Sample sample;
    while (reader->Read(&sample)) {
      watchdog.Progress();
      on_sample(std::move(sample));
    }
    grpc::Status status = reader->Finish();
    if (watchdog.stalled()) {
      return absl::DeadlineExceededError(absl::StrCat("actor ", options_.target, ": stalled: no sample for ",
                                                      absl::FormatDuration(options_.stall_timeout)));
    }
    return FromGrpcStatus(status, "actor", options_.target);
  }

  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob,
                                                             int64_t version) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::LoadWeightsResponse response;
    auto writer = stub_->LoadWeights(&context, &response);
    absl::Status status = NamePeer(UploadWeights(writer.get(), blob, version), "actor", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  std::unique_ptr<WeightsUpload> StartWeightsUpload() override {
    return std::make_unique<GrpcWeightsUpload>(stub_.get(), options_);
  }

  absl::StatusOr<grail::v1::ActorInfo> GetInfo() override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::ActorInfo info;
    absl::Status status = FromGrpcStatus(stub_->GetInfo(&context, {}, &info), "actor", options_.target);
    if (!status.ok()) return status;
    return info;
  }

 private:
  ClientOptions options_;
  std::unique_ptr<grail::v1::ActorService::Stub> stub_;
};

}  // namespace

std::unique_ptr<ActorClient> NewGrpcActorClient(const ClientOptions& options) {
  return std::make_unique<GrpcActorClient>(options);
}

}  // namespace grail::actor
