#include "common/server_runner.h"

#include <algorithm>

#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/net_address.h"
#include "common/process_metrics.h"
#include "common/rpc_metrics.h"
#include "common/security.h"
#include "common/status_macros.h"

namespace grail {

absl::StatusOr<std::unique_ptr<ServerRunner>> ServerRunner::Start(
    const ServerOptions& options, const std::vector<grpc::Service*>& services,
    std::shared_ptr<prometheus::Registry> registry) {
  ASSIGN_OR_RETURN(HostPort grpc_hp, ParseHostPort(options.listen, "listen"));
  ASSIGN_OR_RETURN(HostPort metrics_hp, ParseHostPort(options.metrics_listen, "metrics_listen"));

  std::unique_ptr<ServerRunner> self(new ServerRunner());
  self->options_ = options;

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int selected_port = 0;
  builder.AddListeningPort(FormatHostPort(grpc_hp.host, grpc_hp.port),
                           MakeServerCredentials(options.security), &selected_port);
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  for (grpc::Service* service : services) builder.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(MakeRpcMetricsInterceptor(options.component, *registry, self->active_calls_));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  self->server_ = builder.BuildAndStart();
  if (self->server_ == nullptr || selected_port == 0) {
    return absl::UnavailableError(absl::StrCat("listen: cannot serve gRPC on ", options.listen));
  }
  self->grpc_address_ = FormatHostPort(grpc_hp.host, selected_port);

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables = {
      registry, std::make_shared<ProcessMetricsCollector>()};
  ASSIGN_OR_RETURN(self->metrics_, MetricsHttpServer::Start(metrics_hp.host, metrics_hp.port,
                                                            std::move(collectables)));
  self->metrics_address_ = FormatHostPort(metrics_hp.host, self->metrics_->port());

  self->server_->GetHealthCheckService()->SetServingStatus(true);
  return self;
}

void ServerRunner::SetNotServing() { server_->GetHealthCheckService()->SetServingStatus(false); }

void ServerRunner::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  SetNotServing();
  // Drain while still fully serving: once gRPC's own shutdown starts, a long response stream
  // can stall at its flow-control window and be cut. Calls that arrive meanwhile are
  // served too (clients and probes see NOT_SERVING and stop sending).
  const absl::Time deadline = absl::Now() + options_.grace_period;
  while (active_calls_->load() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  // In-flight calls (none, unless the grace period ran out) are cancelled at the deadline.
  server_->Shutdown(absl::ToChronoTime(std::max(deadline, absl::Now())));
  server_->Wait();
  metrics_->Stop();
}

ServerRunner::~ServerRunner() { Shutdown(); }

}  // namespace grail
