#ifndef GRAIL_COMMON_SERVICE_MAIN_H_
#define GRAIL_COMMON_SERVICE_MAIN_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/impl/codegen/service_type.h>

#include "absl/status/statusor.h"
#include "common/security.h"
#include "prometheus/registry.h"

namespace grail {

// What a service binary serves: its gRPC services and whatever they need kept alive.
struct ServiceBundle {
  std::vector<std::unique_ptr<grpc::Service>> services;
  // Domain objects the services point to; destroyed after the server has stopped.
  std::vector<std::shared_ptr<void>> keep_alive;
  // Run after health turns NOT_SERVING and before in-flight calls are drained.
  std::function<void()> on_shutdown;
  // Run once the server is serving, with a function that turns health NOT_SERVING for good:
  // for a service that can no longer do its work (a learner rank whose group broke) and
  // stays up to say so, so that an orchestrator's health probe restarts it.
  std::function<void(std::function<void()> set_not_serving)> on_started;
};

// What ServiceMain hands make_services: the process's security (for clients the service
// makes) and the authenticator every handler checks first (GRAIL_AUTHORIZE).
struct ServiceEnv {
  SecurityOptions security;
  const Authenticator* auth = nullptr;  // lives until the process exits
};

struct ServiceMainSpec {
  std::string binary;     // "grail-actor": the ready line starts with it
  std::string component;  // "actor": metric names grail_<component>_...
  std::string usage;      // one paragraph for --help
  // Builds the services after flags are parsed; a failure exits the process with code 1.
  std::function<absl::StatusOr<ServiceBundle>(prometheus::Registry& registry, const ServiceEnv& env)> make_services;
};

// The body of every service's main(): parses the shared flags (--listen, --metrics_listen,
// --grace_period), builds the services, serves, prints
//   "<binary>: serving grpc=HOST:PORT metrics=HOST:PORT"
// once ready, and on SIGTERM/SIGINT turns health NOT_SERVING, drains in-flight calls within
// the grace period and returns 0.
int ServiceMain(int argc, char** argv, const ServiceMainSpec& spec);

}  // namespace grail

#endif  // GRAIL_COMMON_SERVICE_MAIN_H_
