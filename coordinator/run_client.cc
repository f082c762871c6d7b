#include "coordinator/run_client.h"

#include "common/grpc_status.h"
#include "proto/grail/v1/coordinator.grpc.pb.h"

namespace grail::coordinator {
namespace {

class GrpcRunClient : public RunClient {
 public:
  explicit GrpcRunClient(const ClientOptions& options)
      : options_(options), stub_(grail::v1::RunService::NewStub(MakeChannel(options))) {}

  absl::StatusOr<std::string> Submit(const grail::v1::RunSpec& spec) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::SubmitRunRequest request;
    *request.mutable_spec() = spec;
    grail::v1::SubmitRunResponse response;
    absl::Status status = FromGrpcStatus(stub_->SubmitRun(&context, request, &response));
    if (!status.ok()) return status;
    return response.run_id();
  }

  absl::StatusOr<grail::v1::Run> Get(const std::string& run_id) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::GetRunRequest request;
    request.set_run_id(run_id);
    grail::v1::Run run;
    absl::Status status = FromGrpcStatus(stub_->GetRun(&context, request, &run));
    if (!status.ok()) return status;
    return run;
  }

  absl::StatusOr<std::vector<grail::v1::Run>> List() override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::ListRunsResponse response;
    absl::Status status = FromGrpcStatus(stub_->ListRuns(&context, {}, &response));
    if (!status.ok()) return status;
    return std::vector<grail::v1::Run>(response.runs().begin(), response.runs().end());
  }

  absl::Status Cancel(const std::string& run_id) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::CancelRunRequest request;
    request.set_run_id(run_id);
    grail::v1::CancelRunResponse response;
    return FromGrpcStatus(stub_->CancelRun(&context, request, &response));
  }

  absl::StatusOr<std::vector<grail::v1::ProbeRecord>> Probes(const std::string& run_id) override {
    std::vector<grail::v1::ProbeRecord> out;
    grail::v1::GetProbesRequest request;
    request.set_run_id(run_id);
    for (;;) {  // page by page (RunService.GetProbes)
      grpc::ClientContext context;
      SetTimeout(&context, options_.timeout);
      grail::v1::GetProbesResponse response;
      absl::Status status = FromGrpcStatus(stub_->GetProbes(&context, request, &response));
      if (!status.ok()) return status;
      for (auto& p : *response.mutable_probes()) out.push_back(std::move(p));
      if (response.done() || response.next_offset() <= request.offset()) return out;
      request.set_offset(response.next_offset());
    }
  }

  absl::Status Watch(const std::string& run_id,
                     const std::function<void(const grail::v1::StepReport&)>& on_report) override {
    grpc::ClientContext context;  // no deadline: a run may take hours
    grail::v1::WatchRunRequest request;
    request.set_run_id(run_id);
    auto reader = stub_->WatchRun(&context, request);
    grail::v1::StepReport report;
    while (reader->Read(&report)) on_report(report);
    return FromGrpcStatus(reader->Finish());
  }

 private:
  ClientOptions options_;
  std::unique_ptr<grail::v1::RunService::Stub> stub_;
};

}  // namespace

std::unique_ptr<RunClient> NewGrpcRunClient(const ClientOptions& options) {
  return std::make_unique<GrpcRunClient>(options);
}

}  // namespace grail::coordinator
