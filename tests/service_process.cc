#include "tests/service_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <regex>
#include <thread>

#include "absl/strings/str_cat.h"

namespace grail::testing {

std::string BinDir() {
  const char* dir = std::getenv("GRAIL_BIN_DIR");
  return dir != nullptr ? dir : "build/bin";
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::Start(
    const std::string& binary, const std::vector<std::string>& extra_args, absl::Duration timeout) {
  int out[2];
  // Close-on-exec, so that a child started concurrently by another thread does not inherit
  // this pipe (dup2 below clears the flag on the child's stdout).
  if (pipe2(out, O_CLOEXEC) != 0) return absl::InternalError("pipe failed");
  std::vector<std::string> args = {BinDir() + "/" + binary, "--listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  std::unique_ptr<ServiceProcess> self(new ServiceProcess());
  self->pid_ = pid;
  self->stdout_fd_ = out[0];
  self->binary_ = binary;
  self->extra_args_ = extra_args;
  const absl::Time deadline = absl::Now() + timeout;
  std::string buffer;
  while (buffer.find('\n') == std::string::npos) {
    const int wait_ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (wait_ms <= 0) return absl::DeadlineExceededError(absl::StrCat(binary, ": no ready line"));
    pollfd p{self->stdout_fd_, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) continue;
    char chunk[512];
    const ssize_t n = read(self->stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) return absl::UnavailableError(absl::StrCat(binary, ": exited before its ready line"));
    buffer.append(chunk, n);
  }
  self->ready_line_ = buffer.substr(0, buffer.find('\n'));
  std::smatch m;
  static const std::regex kReady(R"(^(\S+): serving grpc=(\S+) metrics=(\S+)$)");
  if (!std::regex_match(self->ready_line_, m, kReady) || m[1] != binary) {
    return absl::InternalError(absl::StrCat("unexpected ready line: '", self->ready_line_, "'"));
  }
  self->grpc_address_ = m[2];
  self->metrics_address_ = m[3];
  return self;
}

void ServiceProcess::Signal(int signal) const {
  if (pid_ > 0) kill(pid_, signal);
}

absl::StatusOr<std::unique_ptr<ServiceProcess>> ServiceProcess::StartAgain(absl::Duration timeout) const {
  std::vector<std::string> args = extra_args_;
  args.push_back("--listen=" + grpc_address_);  // the last flag wins
  // The port may take a moment to be free again after the kill.
  absl::StatusOr<std::unique_ptr<ServiceProcess>> started = absl::UnknownError("not started");
  for (int attempt = 0; attempt < 20; ++attempt) {
    started = Start(binary_, args, timeout);
    if (started.ok()) return started;
    absl::SleepFor(absl::Milliseconds(250));
  }
  return started;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

absl::StatusOr<std::vector<std::unique_ptr<ServiceProcess>>> StartLearnerGroup(
    int world_size, const std::vector<std::string>& extra_args, int master_port,
    const std::vector<std::string>& listen) {
  if (master_port == 0) master_port = FreePort();
  std::vector<absl::StatusOr<std::unique_ptr<ServiceProcess>>> started;
  for (int r = 0; r < world_size; ++r) started.emplace_back(absl::UnknownError("not started"));
  std::vector<std::thread> threads;
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      std::vector<std::string> args = {absl::StrCat("--rank=", r), absl::StrCat("--world_size=", world_size),
                                       "--master_addr=127.0.0.1", absl::StrCat("--master_port=", master_port)};
      args.insert(args.end(), extra_args.begin(), extra_args.end());
      if (r < static_cast<int>(listen.size())) args.push_back("--listen=" + listen[r]);  // the last flag wins
      started[r] = ServiceProcess::Start("grail-learner", args, absl::Seconds(120));
    });
  }
  for (auto& t : threads) t.join();
  std::vector<std::unique_ptr<ServiceProcess>> ranks;
  for (auto& s : started) {
    if (!s.ok()) return s.status();
    ranks.push_back(std::move(*s));
  }
  return ranks;
}

int ServiceProcess::metrics_port() const {
  return std::atoi(metrics_address_.substr(metrics_address_.rfind(':') + 1).c_str());
}

absl::StatusOr<int> ServiceProcess::SignalAndWait(int signal, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, signal);
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("process did not exit in time");
}

ServiceProcess::~ServiceProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace grail::testing
