// Starts every service binary as a real process and checks the contract each one keeps:
// the ready line, health SERVING, a /metrics page that promtool accepts, and a clean exit
// on SIGTERM.

#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include <httplib.h>

#include "common/grpc_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

using ::testing::HasSubstr;

struct Service {
  const char* binary;
  const char* component;
};

class ServiceBinaryTest : public ::testing::TestWithParam<Service> {};

TEST_P(ServiceBinaryTest, ServesHealthAndMetricsAndStopsCleanly) {
  auto proc = ServiceProcess::Start(GetParam().binary);
  ASSERT_TRUE(proc.ok()) << proc.status();

  ClientOptions options;
  options.target = (*proc)->grpc_address();
  auto channel = MakeChannel(options);
  auto serving = CheckServing(channel.get(), absl::Seconds(10));
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);

  httplib::Client http("127.0.0.1", (*proc)->metrics_port());
  auto res = http.Get("/metrics");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const std::string& body = res->body;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_open_fds", "process_start_time_seconds"}) {
    EXPECT_THAT(body, HasSubstr(name));
  }
  // The health check above went through the RPC metrics interceptor.
  EXPECT_THAT(body, HasSubstr(std::string("grail_") + GetParam().component +
                              "_rpc_duration_seconds_bucket{code=\"OK\",method=\"/grpc.health.v1.Health/Check\""));

  const std::string path = ::testing::TempDir() + GetParam().binary + ".metrics";
  std::ofstream(path) << body;
  CommandResult check = RunCommand("promtool check metrics < " + path);
  EXPECT_EQ(check.exit_code, 0) << check.output;

  auto status = (*proc)->SignalAndWait(SIGTERM, absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);

  auto after = CheckServing(channel.get(), absl::Seconds(2));
  EXPECT_FALSE(after.ok() && *after) << "still SERVING after SIGTERM";
}

INSTANTIATE_TEST_SUITE_P(All, ServiceBinaryTest,
                         ::testing::Values(Service{"grail-coordinator", "coordinator"},
                                           Service{"grail-actor", "actor"},
                                           Service{"grail-reward", "reward"},
                                           Service{"grail-reference", "reference"},
                                           Service{"grail-learner", "learner"}),
                         [](const auto& info) {
                           std::string name = info.param.component;
                           return name;
                         });

class HelpTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HelpTest, AnswersHelpWithExitZero) {
  CommandResult r = RunCommand(BinDir() + "/" + GetParam() + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(std::string(GetParam()) + ":"));
  EXPECT_THAT(r.output, HasSubstr("Usage:"));
}

INSTANTIATE_TEST_SUITE_P(All, HelpTest,
                         ::testing::Values("grail-coordinator", "grail-actor", "grail-reward",
                                           "grail-reference", "grail-learner", "grailctl",
                                           "grail-algo"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) if (c == '-') c = '_';
                           return s;
                         });

TEST(ServiceFlagsTest, BadListenAddressFailsNamingTheFlag) {
  CommandResult r = RunCommand(BinDir() + "/grail-reward --listen=nonsense");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("listen"));
}

}  // namespace
}  // namespace grail::testing
