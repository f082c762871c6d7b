#include <httplib.h>

#include "common/metrics_http_server.h"
#include "common/process_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace grail {
namespace {

using ::testing::HasSubstr;

TEST(ProcessMetricsTest, ReportsPlausibleValues) {
  auto families = ProcessMetricsCollector().Collect();
  std::map<std::string, double> values;
  for (const auto& f : families) {
    values[f.name] = f.type == prometheus::MetricType::Counter ? f.metric[0].counter.value
                                                               : f.metric[0].gauge.value;
  }
  ASSERT_EQ(values.size(), 5u);
  EXPECT_GT(values["process_resident_memory_bytes"], 1 << 20);
  EXPECT_GE(values["process_open_fds"], 3);
  EXPECT_GT(values["process_start_time_seconds"], 1.6e9);
  EXPECT_GE(values["process_cpu_seconds_total"], 0);
}

TEST(MetricsHttpServerTest, ServesRegistryAndProcessMetrics) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter().Name("grail_test_things_total").Help("Things.").Register(*registry)
      .Add({{"kind", "a"}}).Increment(3);
  auto server = MetricsHttpServer::Start(
      "127.0.0.1", 0, {registry, std::make_shared<ProcessMetricsCollector>()});
  ASSERT_TRUE(server.ok()) << server.status();
  httplib::Client client("127.0.0.1", (*server)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->body, HasSubstr("grail_test_things_total{kind=\"a\"} 3"));
  EXPECT_THAT(res->body, HasSubstr("process_resident_memory_bytes"));
  (*server)->Stop();
  (*server)->Stop();  // idempotent
}

}  // namespace
}  // namespace grail
