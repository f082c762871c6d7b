#include "common/service_main.h"

#include <signal.h>

#include <cstdio>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/security.h"
#include "common/security_flags.h"
#include "common/server_runner.h"
#include "common/signals.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC listen address HOST:PORT (port 0 = any free)");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:0",
          "Prometheus /metrics listen address HOST:PORT (port 0 = any free)");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(10),
          "How long in-flight calls may finish after SIGTERM");

namespace grail {

int ServiceMain(int argc, char** argv, const ServiceMainSpec& spec) {
  BlockTerminationSignals();
  ParseCommandLineOrExit(argc, argv, spec.usage);

  absl::StatusOr<SecurityOptions> security = SecurityFromFlags();
  if (!security.ok()) {
    std::cerr << spec.binary << ": " << security.status() << std::endl;
    return 1;
  }
  ServerOptions options;
  options.component = spec.component;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.grace_period = absl::GetFlag(FLAGS_grace_period);
  options.security = *security;

  auto registry = std::make_shared<prometheus::Registry>();
  const Authenticator auth(security->bearer_token, spec.component, *registry);
  absl::StatusOr<ServiceBundle> bundle = spec.make_services(*registry, ServiceEnv{*security, &auth});
  if (!bundle.ok()) {
    std::cerr << spec.binary << ": " << bundle.status() << std::endl;
    return 1;
  }
  std::vector<grpc::Service*> services;
  for (auto& s : bundle->services) services.push_back(s.get());

  absl::StatusOr<std::unique_ptr<ServerRunner>> runner =
      ServerRunner::Start(options, services, registry);
  if (!runner.ok()) {
    std::cerr << spec.binary << ": " << runner.status() << std::endl;
    return 1;
  }
  if (bundle->on_started) {
    bundle->on_started([r = runner->get()] { r->SetNotServing(); });
  }
  std::cout << spec.binary << ": serving grpc=" << (*runner)->grpc_address()
            << " metrics=" << (*runner)->metrics_address() << std::endl;

  const int sig = WaitForTerminationSignal();
  std::cerr << spec.binary << ": " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ", draining in-flight calls" << std::endl;
  (*runner)->SetNotServing();
  if (bundle->on_shutdown) bundle->on_shutdown();
  (*runner)->Shutdown();
  runner->reset();
  std::cerr << spec.binary << ": stopped" << std::endl;
  return 0;
}

}  // namespace grail
