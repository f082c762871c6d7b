// The observability path end to end: deploy/local/cluster.sh --prometheus starts the cluster
// and a real Prometheus with deploy/prometheus's config and rules; after a short run every
// service is scraped, every series the Grafana dashboard and the alert rules use exists, and
// `promtool check metrics` is clean on every endpoint.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/service_process.h"
#include "tests/tiny_spec.h"

namespace grail::testing {
namespace {

std::string SourceDir() { return getenv("GRAIL_SOURCE_DIR"); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Metric names (grail_...) referenced by a dashboard or rules file.
std::set<std::string> ReferencedMetrics(const std::string& text) {
  std::set<std::string> names;
  std::regex re("grail_[a-z0-9_]*[a-z0-9]");
  for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) {
    const size_t after = it->position() + it->length();
    if (after < text.size() && text[after] == '.') continue;  // a regex such as grail_.+_x
    names.insert(it->str());
  }
  return names;
}

class PrometheusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "grail_prom_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    state_ = tmpl;
    port_ = FreePort();
    CommandResult r = RunCommand("cd " + SourceDir() + " && deploy/local/cluster.sh start " + state_ +
                                 " --bin=" + BinDir() + " --prometheus=" + std::to_string(port_) + " 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::ifstream env(state_ + "/cluster.env");
    for (std::string line; std::getline(env, line);) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  void TearDown() override {
    RunCommand("cd " + SourceDir() + " && deploy/local/cluster.sh stop " + state_);
    RunCommand("rm -rf " + state_);
  }

  nlohmann::json Query(const std::string& promql) {
    CommandResult r = RunCommand("curl -sf http://127.0.0.1:" + std::to_string(port_) +
                                 "/api/v1/query --data-urlencode 'query=" + promql + "'");
    EXPECT_EQ(r.exit_code, 0) << promql;
    auto j = nlohmann::json::parse(r.output, nullptr, false);
    if (j.is_discarded() || j["status"] != "success") {
      ADD_FAILURE() << promql << ": " << r.output;
      return nlohmann::json::array();
    }
    return j["data"]["result"];
  }

  std::string state_;
  int port_ = 0;
  std::map<std::string, std::string> env_;
};

TEST_F(PrometheusTest, EveryServiceIsScrapedAndEveryDashboardSeriesExists) {
  const std::string spec = state_ + "/job.yaml";
  TinySpecOptions o;
  o.name = "prometheus-job";
  o.heads = 2;
  o.kv_heads = 2;
  o.total_steps = 3;
  std::ofstream(spec) << TinySpecYaml(o);
  const std::string ctl = BinDir() + "/grailctl --coordinator=" + env_["COORDINATOR"];
  CommandResult submitted = RunCommand(ctl + " submit " + spec);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  std::string id = submitted.output;
  id.erase(id.find_last_not_of(" \n") + 1);
  ASSERT_EQ(RunCommand(ctl + " watch " + id).exit_code, 0);

  // Wait for a scrape of every target after the run (interval 2 s).
  for (int i = 0; i < 60; ++i) {
    if (!Query("grail_coordinator_step == 3").empty() && Query("up{job=\"grail\"} == 1").size() == 6) break;
    sleep(1);
  }
  auto up = Query("up{job=\"grail\"}");
  ASSERT_EQ(up.size(), 6u) << up.dump();  // 2 actors, reward, reference, learner, coordinator
  for (const auto& s : up) EXPECT_EQ(s["value"][1], "1") << s.dump();

  std::set<std::string> services;
  for (const auto& s : Query("count by (service) ({__name__=~\"grail_.+\"})")) {
    services.insert(s["metric"]["service"].get<std::string>());
  }
  EXPECT_EQ(services, (std::set<std::string>{"actor", "reward", "reference", "learner", "coordinator"}));

  // Every series the dashboard and the alert rules name is exported by some service.
  std::set<std::string> names = ReferencedMetrics(ReadFile(SourceDir() + "/deploy/grafana/dashboards/grail.json"));
  auto rules = ReferencedMetrics(ReadFile(SourceDir() + "/deploy/prometheus/rules/grail.rules.yml"));
  names.insert(rules.begin(), rules.end());
  ASSERT_GT(names.size(), 20u);
  for (const std::string& name : names) {
    EXPECT_FALSE(Query("count({__name__=\"" + name + "\"})").empty()) << name << " has no series";
  }
  EXPECT_EQ(Query("grail_actor_tokens_generated_total > 0").size(), 2u);
  EXPECT_FALSE(Query("grail_reward_scores_total{verifier=\"math\"} > 0").empty());
  EXPECT_FALSE(Query("grail_learner_steps_total{kind=\"rl\"} == 3").empty());
  EXPECT_FALSE(Query("grail_coordinator_version_lag_count > 0").empty());

  // The rules loaded, and none is firing on a healthy cluster.
  CommandResult alerts = RunCommand("curl -sf http://127.0.0.1:" + std::to_string(port_) + "/api/v1/rules");
  EXPECT_THAT(alerts.output, ::testing::HasSubstr("GrailServiceDown"));
  EXPECT_TRUE(Query("ALERTS{alertstate=\"firing\"}").empty());

  for (const auto& [key, addr] : env_) {
    if (key.size() < 8 || key.substr(key.size() - 8) != "_METRICS") continue;
    CommandResult check = RunCommand("curl -sf http://" + addr + "/metrics | promtool check metrics 2>&1");
    EXPECT_EQ(check.exit_code, 0) << key << ": " << check.output;
  }
}

}  // namespace
}  // namespace grail::testing
