#ifndef GRAIL_COORDINATOR_RUN_CLIENT_H_
#define GRAIL_COORDINATOR_RUN_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/coordinator.pb.h"

namespace grail::coordinator {

// Talks to a coordinator's RunService (used by grailctl). Implementations are thread-safe.
class RunClient {
 public:
  virtual ~RunClient() = default;
  virtual absl::StatusOr<std::string> Submit(const grail::v1::RunSpec& spec) = 0;
  virtual absl::StatusOr<grail::v1::Run> Get(const std::string& run_id) = 0;
  virtual absl::StatusOr<std::vector<grail::v1::Run>> List() = 0;
  virtual absl::Status Cancel(const std::string& run_id) = 0;
  // The run's learning-dynamics probe records, in recording order.
  virtual absl::StatusOr<std::vector<grail::v1::ProbeRecord>> Probes(const std::string& run_id) = 0;
  // Calls on_report for each step report until the run ends or the stream fails.
  virtual absl::Status Watch(const std::string& run_id,
                             const std::function<void(const grail::v1::StepReport&)>& on_report) = 0;
};

std::unique_ptr<RunClient> NewGrpcRunClient(const ClientOptions& options);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_CLIENT_H_
