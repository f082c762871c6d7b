#ifndef GRAIL_TESTS_SERVICE_PROCESS_H_
#define GRAIL_TESTS_SERVICE_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grail::testing {

// Directory holding the built binaries (GRAIL_BIN_DIR, set by ctest).
std::string BinDir();

// A grail service binary started as a child process on 127.0.0.1 with free ports. The
// destructor kills it if it is still running. Not thread-safe.
class ServiceProcess {
 public:
  // Starts `binary` with --listen/--metrics_listen on port 0 plus `extra_args`, and waits
  // (up to `timeout`) for its ready line.
  static absl::StatusOr<std::unique_ptr<ServiceProcess>> Start(
      const std::string& binary, const std::vector<std::string>& extra_args = {},
      absl::Duration timeout = absl::Seconds(60));
  ~ServiceProcess();

  const std::string& ready_line() const { return ready_line_; }
  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  int metrics_port() const;
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits up to `timeout` for the exit; returns the wait status.
  absl::StatusOr<int> SignalAndWait(int signal, absl::Duration timeout);
  // Sends `signal` without waiting (SIGSTOP / SIGCONT).
  void Signal(int signal) const;

  // The same binary with the same arguments, serving on this process's gRPC address (as a
  // supervisor restarts a service on its stable name). Call after this one has exited.
  absl::StatusOr<std::unique_ptr<ServiceProcess>> StartAgain(absl::Duration timeout = absl::Seconds(60)) const;

 private:
  ServiceProcess() = default;

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string binary_;
  std::vector<std::string> extra_args_;
  std::string ready_line_;
  std::string grpc_address_;
  std::string metrics_address_;
};

// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
int FreePort();

// Starts `world_size` grail-learner ranks at once (they rendezvous before serving), rank 0
// first in the result, with `extra_args` for each; master_port 0 picks a free one. With
// `listen`, rank r serves on listen[r] (a restarted group keeps its addresses).
absl::StatusOr<std::vector<std::unique_ptr<ServiceProcess>>> StartLearnerGroup(
    int world_size, const std::vector<std::string>& extra_args = {}, int master_port = 0,
    const std::vector<std::string>& listen = {});

// Runs a shell command; returns its exit code and combined output.
struct CommandResult {
  int exit_code = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

}  // namespace grail::testing

#endif  // GRAIL_TESTS_SERVICE_PROCESS_H_
