#include "coordinator/run_service_impl.h"

#include "common/grpc_status.h"

namespace grail::coordinator {

grpc::Status RunServiceImpl::SubmitRun(grpc::ServerContext*, const grail::v1::SubmitRunRequest* request,
                                       grail::v1::SubmitRunResponse* response) {
  auto id = runs_->Submit(request->spec());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_run_id(*id);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::GetRun(grpc::ServerContext*, const grail::v1::GetRunRequest* request,
                                    grail::v1::Run* response) {
  auto run = runs_->Get(request->run_id());
  if (!run.ok()) return ToGrpcStatus(run.status());
  *response = std::move(*run);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::ListRuns(grpc::ServerContext*, const grail::v1::ListRunsRequest*,
                                      grail::v1::ListRunsResponse* response) {
  for (auto& run : runs_->List()) *response->add_runs() = std::move(run);
  return grpc::Status::OK;
}

grpc::Status RunServiceImpl::WatchRun(grpc::ServerContext* context,
                                      const grail::v1::WatchRunRequest* request,
                                      grpc::ServerWriter<grail::v1::StepReport>* writer) {
  return ToGrpcStatus(runs_->Watch(
      request->run_id(), [&](const grail::v1::StepReport& r) { return writer->Write(r); },
      [&] { return !context->IsCancelled(); }));
}

grpc::Status RunServiceImpl::CancelRun(grpc::ServerContext*, const grail::v1::CancelRunRequest* request,
                                       grail::v1::CancelRunResponse*) {
  return ToGrpcStatus(runs_->Cancel(request->run_id()));
}

}  // namespace grail::coordinator
