#ifndef GRAIL_COMMON_METRICS_HTTP_SERVER_H_
#define GRAIL_COMMON_METRICS_HTTP_SERVER_H_

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/collectable.h"

namespace httplib {
class Server;
}

namespace grail {

// Serves Prometheus text format on GET /metrics from a set of collectables.
//
// Uses cpp-httplib rather than prometheus-cpp's civetweb Exposer: civetweb starts threads
// with a ~100 KiB stack, too small for the static TLS of a LibTorch + OpenBLAS process
// (see ENVIRONMENT.md). Thread-safe; Stop() is idempotent and also run by the destructor.
class MetricsHttpServer {
 public:
  // Binds `host:port` (port 0 picks a free port) and starts serving on a background thread.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port,
      std::vector<std::shared_ptr<prometheus::Collectable>> collectables);
  ~MetricsHttpServer();

  int port() const { return port_; }
  void Stop();

 private:
  MetricsHttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::thread thread_;
  int port_ = 0;
};

// Renders collectables in the Prometheus text exposition format.
std::string RenderMetricsText(const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables);

}  // namespace grail

#endif  // GRAIL_COMMON_METRICS_HTTP_SERVER_H_
