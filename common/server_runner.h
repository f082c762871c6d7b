#ifndef GRAIL_COMMON_SERVER_RUNNER_H_
#define GRAIL_COMMON_SERVER_RUNNER_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/server.h>
#include <grpcpp/support/server_interceptor.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics_http_server.h"
#include "common/security.h"
#include "prometheus/registry.h"

namespace grail {

struct ServerOptions {
  // Component name used in metric names: grail_<component>_... ("actor", "learner", ...).
  std::string component;
  // gRPC listen address; port 0 picks a free port.
  std::string listen = "127.0.0.1:0";
  // /metrics listen address; port 0 picks a free port.
  std::string metrics_listen = "127.0.0.1:0";
  // How long in-flight RPCs may run after shutdown starts before they are cancelled.
  absl::Duration grace_period = absl::Seconds(10);
  // Largest accepted or sent gRPC message.
  int max_message_bytes = 256 << 20;
  // TLS (tls_cert_pem set: served over TLS; with require_client_cert, mutual TLS).
  SecurityOptions security;
};

// Owns a gRPC server with the standard health service and RPC metrics, plus the /metrics
// HTTP endpoint. Health is SERVING once Start() returns. Services and registry must outlive
// the runner. Thread-safe.
class ServerRunner {
 public:
  static absl::StatusOr<std::unique_ptr<ServerRunner>> Start(
      const ServerOptions& options, const std::vector<grpc::Service*>& services,
      std::shared_ptr<prometheus::Registry> registry);
  ~ServerRunner();

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }

  // Reports NOT_SERVING on the health service; calls keep being served.
  void SetNotServing();

  // Health NOT_SERVING, then waits up to grace_period for in-flight calls (health checks
  // aside) to finish, then stops accepting calls, cancels what is left, and stops the
  // metrics endpoint. Idempotent.
  void Shutdown();

 private:
  ServerRunner() = default;

  ServerOptions options_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<MetricsHttpServer> metrics_;
  std::string grpc_address_;
  std::string metrics_address_;
  bool shut_down_ = false;
  // Calls in progress other than health checks (counted by the RPC metrics interceptor).
  std::shared_ptr<std::atomic<int>> active_calls_ = std::make_shared<std::atomic<int>>(0);
};

}  // namespace grail

#endif  // GRAIL_COMMON_SERVER_RUNNER_H_
