#include "coordinator/run_service_impl.h"

#include "common/grpc_status.h"
#include "common/security.h"
#include "coordinator/probe_report.h"

namespace grail::coordinator {

grpc::Status RunServiceImpl::SubmitRun(grpc::ServerContext* context, const grail::v1::SubmitRunRequest* request,
                                       grail::v1::SubmitRunResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto id = runs_->Submit(request->spec());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_run_id(*id);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::GetRun(grpc::ServerContext* context, const grail::v1::GetRunRequest* request,
                                    grail::v1::Run* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto run = runs_->Get(request->run_id());
  if (!run.ok()) return ToGrpcStatus(run.status());
  *response = std::move(*run);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::ListRuns(grpc::ServerContext* context, const grail::v1::ListRunsRequest*,
                                      grail::v1::ListRunsResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  for (auto& run : runs_->List()) *response->add_runs() = std::move(run);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::WatchRun(grpc::ServerContext* context,
                                      const grail::v1::WatchRunRequest* request,
                                      grpc::ServerWriter<grail::v1::StepReport>* writer) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(runs_->Watch(
      request->run_id(), [&](const grail::v1::StepReport& r) { return writer->Write(r); },
      [&] { return !context->IsCancelled(); }));
}

grpc::Status RunServiceImpl::CancelRun(grpc::ServerContext* context, const grail::v1::CancelRunRequest* request,
                                       grail::v1::CancelRunResponse*) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(runs_->Cancel(request->run_id()));
}

grpc::Status RunServiceImpl::GetProbes(grpc::ServerContext* context, const grail::v1::GetProbesRequest* request,
                                       grail::v1::GetProbesResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  if (request->offset() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("offset: must be >= 0, got ", request->offset())));
  }
  auto probes = runs_->Probes(request->run_id());
  if (!probes.ok()) return ToGrpcStatus(probes.status());
  ProbesPage(std::move(*probes), request->offset(), kProbesPageBytes, response);
  return grpc::Status::OK;
}

}  // namespace grail::coordinator
