#ifndef GRAIL_COMMON_RPC_METRICS_H_
#define GRAIL_COMMON_RPC_METRICS_H_

#include <atomic>
#include <memory>
#include <string>

#include <grpcpp/support/server_interceptor.h>

#include "prometheus/registry.h"

namespace grail {

// A server interceptor factory that records, for every RPC of a server:
//   grail_<component>_rpc_duration_seconds{method,code}  (histogram)
//   grail_<component>_rpc_in_flight{method}              (gauge)
// `method` is the full gRPC method name (bounded by the service definitions).
// The registry must outlive the server. With `active_calls`, it also counts the calls in
// progress other than health checks (which Kubernetes probes may hold open), so that a
// draining server knows when its work is done.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor(
    const std::string& component, prometheus::Registry& registry,
    std::shared_ptr<std::atomic<int>> active_calls = nullptr);

// Canonical upper-case name of a gRPC status code ("OK", "INVALID_ARGUMENT", ...).
const char* StatusCodeName(int code);

}  // namespace grail

#endif  // GRAIL_COMMON_RPC_METRICS_H_
