#ifndef GRAIL_COORDINATOR_RUN_MANAGER_H_
#define GRAIL_COORDINATOR_RUN_MANAGER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/grail/v1/coordinator.pb.h"

namespace grail::coordinator {

// Keeps the runs this coordinator knows and their states. Thread-safe.
// The RL loop that executes a run is not part of this version: Submit validates the spec
// and answers UNIMPLEMENTED for a valid one.
class RunManager {
 public:
  absl::StatusOr<std::string> Submit(const grail::v1::RunSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<grail::v1::Run> Get(const std::string& run_id) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<grail::v1::Run> List() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Cancel(const std::string& run_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, grail::v1::Run> runs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_MANAGER_H_
