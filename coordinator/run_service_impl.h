#ifndef GRAIL_COORDINATOR_RUN_SERVICE_IMPL_H_
#define GRAIL_COORDINATOR_RUN_SERVICE_IMPL_H_

#include "coordinator/run_manager.h"
#include "proto/grail/v1/coordinator.grpc.pb.h"
#include "common/security.h"

namespace grail::coordinator {

// gRPC adapter over a RunManager. Stateless; the manager must outlive it.
class RunServiceImpl final : public grail::v1::RunService::Service {
 public:
  // `auth` checks every call first; it and the manager outlive the service.
  RunServiceImpl(const Authenticator* auth, RunManager* runs) : auth_(auth), runs_(runs) {}

  grpc::Status SubmitRun(grpc::ServerContext* context, const grail::v1::SubmitRunRequest* request,
                         grail::v1::SubmitRunResponse* response) override;
  grpc::Status GetRun(grpc::ServerContext* context, const grail::v1::GetRunRequest* request,
                      grail::v1::Run* response) override;
  grpc::Status ListRuns(grpc::ServerContext* context, const grail::v1::ListRunsRequest* request,
                        grail::v1::ListRunsResponse* response) override;
  grpc::Status WatchRun(grpc::ServerContext* context, const grail::v1::WatchRunRequest* request,
                        grpc::ServerWriter<grail::v1::StepReport>* writer) override;
  grpc::Status CancelRun(grpc::ServerContext* context, const grail::v1::CancelRunRequest* request,
                         grail::v1::CancelRunResponse* response) override;
  grpc::Status GetProbes(grpc::ServerContext* context, const grail::v1::GetProbesRequest* request,
                         grail::v1::GetProbesResponse* response) override;

 private:
  const Authenticator* auth_;
  RunManager* runs_;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_SERVICE_IMPL_H_
