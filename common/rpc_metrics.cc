#include "common/rpc_metrics.h"

#include <chrono>

#include <grpcpp/support/interceptor.h>

#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace grail {
namespace {

using grpc::experimental::InterceptionHookPoints;

struct RpcMetricFamilies {
  prometheus::Family<prometheus::Histogram>* duration;
  prometheus::Family<prometheus::Gauge>* in_flight;
  std::shared_ptr<std::atomic<int>> active_calls;  // may be null
};

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return *kBuckets;
}

class RpcMetricsInterceptor : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(const RpcMetricFamilies& families, std::string method)
      : families_(families),
        method_(std::move(method)),
        start_(std::chrono::steady_clock::now()),
        in_flight_(families.in_flight->Add({{"method", method_}})),
        counted_(families.active_calls != nullptr && method_.rfind("/grpc.health.v1.Health/", 0) != 0) {
    in_flight_.Increment();
    if (counted_) ++*families_.active_calls;
  }
  ~RpcMetricsInterceptor() override {
    in_flight_.Decrement();
    if (counted_) --*families_.active_calls;
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const int code = methods->GetSendStatus().error_code();
      families_.duration->Add({{"method", method_}, {"code", StatusCodeName(code)}},
                              LatencyBuckets())
          .Observe(seconds);
    }
    methods->Proceed();
  }

 private:
  RpcMetricFamilies families_;
  std::string method_;
  std::chrono::steady_clock::time_point start_;
  prometheus::Gauge& in_flight_;
  const bool counted_;
};

class RpcMetricsInterceptorFactory
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsInterceptorFactory(const RpcMetricFamilies& families) : families_(families) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(families_, info->method() ? info->method() : "unknown");
  }

 private:
  RpcMetricFamilies families_;
};

}  // namespace

const char* StatusCodeName(int code) {
  static const char* const kNames[] = {
      "OK",        "CANCELLED",          "UNKNOWN",          "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",   "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",      "DATA_LOSS",
      "UNAUTHENTICATED"};
  if (code < 0 || code > 16) return "UNKNOWN";
  return kNames[code];
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeRpcMetricsInterceptor(
    const std::string& component, prometheus::Registry& registry, std::shared_ptr<std::atomic<int>> active_calls) {
  RpcMetricFamilies families;
  families.active_calls = std::move(active_calls);
  families.duration = &prometheus::BuildHistogram()
                           .Name(absl::StrCat("grail_", component, "_rpc_duration_seconds"))
                           .Help("Server-side RPC latency by method and status code.")
                           .Register(registry);
  families.in_flight = &prometheus::BuildGauge()
                            .Name(absl::StrCat("grail_", component, "_rpc_in_flight"))
                            .Help("RPCs being served now, by method.")
                            .Register(registry);
  return std::make_unique<RpcMetricsInterceptorFactory>(families);
}

}  // namespace grail
