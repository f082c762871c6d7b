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

// `grailctl validate` runs the coordinator's submit-time checks locally: a valid spec passes,
// and a bad field or a stage naming no earlier stage fails with the field named.
TEST(GrailctlValidateTest, RunsTheSubmitChecksNamingTheField) {
  const std::string base = R"(model:
  tokenizer: char
  config: {vocab_size: 98, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
           num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 16}
dataset: {builtin: arithmetic}
sampling: {max_new_tokens: 5}
algorithm: {group_size: 4}
trainer: {total_steps: 2, prompts_per_step: 4, sft_steps: 10}
)";
  auto validate = [&](const std::string& name, const std::string& extra) {
    const std::string path = ::testing::TempDir() + name + ".yaml";
    std::ofstream(path) << "name: " << name << "\n" << base << extra;
    return RunCommand(BinDir() + "/grailctl validate " + path + " 2>&1");
  };
  CommandResult ok = validate("valid", "stages:\n  - {name: a, kind: sft}\n  - {name: b, kind: rl, from: a}\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_THAT(ok.output, HasSubstr(".yaml: valid"));
  CommandResult holds = validate("holds", "stages:\n  - {name: a, kind: sft, trainer: {sft_target_holds: -1}}\n");
  EXPECT_NE(holds.exit_code, 0);
  EXPECT_THAT(holds.output, HasSubstr("sft_target_holds"));
  CommandResult stage = validate("stage", "stages:\n  - {name: a, kind: sft}\n  - {name: b, kind: rl, from: nope}\n");
  EXPECT_NE(stage.exit_code, 0);
  EXPECT_THAT(stage.output, HasSubstr("stages[1].from"));
}

}  // namespace
}  // namespace grail::testing
