#include "common/metrics_http_server.h"

#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace grail {

std::string RenderMetricsText(
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& c : collectables) {
    auto part = c->Collect();
    families.insert(families.end(), std::make_move_iterator(part.begin()),
                    std::make_move_iterator(part.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& host, int port,
    std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  std::unique_ptr<MetricsHttpServer> self(new MetricsHttpServer());
  self->collectables_ = std::move(collectables);
  self->server_ = std::make_unique<httplib::Server>();
  self->server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  // Stop() waits for idle keep-alive connections to time out; keep that short.
  self->server_->set_keep_alive_timeout(1);
  MetricsHttpServer* raw = self.get();
  self->server_->Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    res.set_content(RenderMetricsText(raw->collectables_), "text/plain; version=0.0.4");
  });
  self->server_->Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("grail metrics: see /metrics\n", "text/plain");
  });
  if (port == 0) {
    self->port_ = self->server_->bind_to_any_port(host);
    if (self->port_ <= 0) {
      return absl::UnavailableError(absl::StrCat("metrics_listen: cannot bind ", host, ":0"));
    }
  } else {
    if (!self->server_->bind_to_port(host, port)) {
      return absl::UnavailableError(absl::StrCat("metrics_listen: cannot bind ", host, ":", port));
    }
    self->port_ = port;
  }
  self->thread_ = std::thread([raw] { raw->server_->listen_after_bind(); });
  return self;
}

void MetricsHttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

}  // namespace grail
