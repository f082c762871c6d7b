#ifndef GRAIL_TESTS_LOCAL_CLUSTER_H_
#define GRAIL_TESTS_LOCAL_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/run_client.h"
#include "tests/service_process.h"

namespace grail::testing {

struct LocalClusterOptions {
  int actors = 2;
  int learner_threads = 2;
  // Data-parallel learner ranks (grail-learner --world_size), started together.
  int learner_ranks = 1;
  // Coordinator and learner --data_root; empty = a fresh directory under the test temp dir,
  // removed with the cluster.
  std::string data_root;
  std::vector<std::string> extra_service_args;   // passed to every service (e.g. TLS flags)
  std::vector<std::string> extra_coordinator_args;
  std::vector<std::string> extra_learner_args;
};

// The six services of one grail cluster as child processes on 127.0.0.1: actors, reward,
// reference, learner rank(s) and a coordinator pointed at them. Stopped (SIGKILL) on destruction.
class LocalCluster {
 public:
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);

  std::vector<std::unique_ptr<ServiceProcess>>& actors() { return actors_; }
  ServiceProcess& reward() { return *reward_; }
  ServiceProcess& reference() { return *reference_; }
  ServiceProcess& learner() { return *learners_[0]; }  // rank 0
  std::vector<std::unique_ptr<ServiceProcess>>& learners() { return learners_; }
  ServiceProcess& coordinator() { return *coordinator_; }
  // Every process, actors first and the coordinator last.
  std::vector<ServiceProcess*> all();

  const std::string& data_root() const { return data_root_; }

  // A RunService client for the coordinator.
  std::unique_ptr<coordinator::RunClient> NewRunClient() const;

 private:
  LocalCluster() = default;
 public:
  ~LocalCluster();

 private:
  std::string data_root_;
  bool owns_data_root_ = false;

  std::vector<std::unique_ptr<ServiceProcess>> actors_;
  std::vector<std::unique_ptr<ServiceProcess>> learners_;
  std::unique_ptr<ServiceProcess> reward_, reference_, coordinator_;
};

}  // namespace grail::testing

#endif  // GRAIL_TESTS_LOCAL_CLUSTER_H_
