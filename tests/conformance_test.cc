// Runs `grail-algo eval` on the shared public conformance cases and compares every output of
// the functions the project implements so far with |got - want| <= 1e-5 + 1e-4 |want|
// (shared/conformance/FORMAT.md).

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

using nlohmann::json;

// Functions computed today; the others must be reported as errors, not guessed.
const std::set<std::string> kSupported = {"gae",         "grpo",         "rloo",  "reinforce_pp", "gfpo",
                                          "group_filter", "overlong_penalty", "policy_loss", "value_loss",
                                          "kl",          "dpo",          "simpo", "orpo",        "kto",
                                          "bt_reward"};

void Compare(const json& got, const json& want, const std::string& where, int* compared) {
  if (want.is_array()) {
    ASSERT_TRUE(got.is_array()) << where;
    ASSERT_EQ(got.size(), want.size()) << where;
    for (size_t i = 0; i < want.size(); ++i) Compare(got[i], want[i], where + "[" + std::to_string(i) + "]", compared);
    return;
  }
  ASSERT_TRUE(got.is_number()) << where;
  const double g = got.get<double>(), w = want.get<double>();
  EXPECT_LE(std::fabs(g - w), 1e-5 + 1e-4 * std::fabs(w)) << where << ": got " << g << ", want " << w;
  ++*compared;
}

// The cases are part of the repository (tests/conformance, a copy of the shared reference
// vectors), so the test is hermetic: missing cases are a failure, never a skip.
void CheckCases(const std::filesystem::path& cases) {
  ASSERT_TRUE(std::filesystem::exists(cases)) << "conformance cases missing: " << cases;

  CommandResult r = RunCommand(BinDir() + "/grail-algo eval " + cases.string() + " 2>/dev/null");
  std::ifstream in(cases);
  std::istringstream out(r.output);
  std::string case_line, out_line;
  int cases_checked = 0, values = 0, unsupported = 0;
  while (std::getline(in, case_line)) {
    if (case_line.find_first_not_of(" \t\r") == std::string::npos) continue;
    ASSERT_TRUE(std::getline(out, out_line)) << "missing output for " << case_line.substr(0, 60);
    const json c = json::parse(case_line);
    const json o = json::parse(out_line);
    ASSERT_EQ(o["id"], c["id"]);
    const std::string fn = c["fn"];
    if (!kSupported.count(fn)) {
      EXPECT_TRUE(o.contains("error")) << c["id"];
      ++unsupported;
      continue;
    }
    ASSERT_TRUE(o.contains("outputs")) << c["id"] << ": " << o.dump();
    for (auto it = c["expected"].begin(); it != c["expected"].end(); ++it) {
      ASSERT_TRUE(o["outputs"].contains(it.key())) << c["id"] << " lacks " << it.key();
      Compare(o["outputs"][it.key()], it.value(), c["id"].get<std::string>() + "." + it.key(), &values);
    }
    ++cases_checked;
  }
  EXPECT_GT(cases_checked, 0);
  EXPECT_EQ(r.exit_code, unsupported > 0 ? 1 : 0);  // non-zero exactly when a case failed
  std::cout << "conformance " << cases.filename() << ": " << cases_checked << " cases (" << values
            << " values) checked, " << unsupported << " reported unsupported" << std::endl;
}

TEST(ConformanceTest, PublicCases) { CheckCases(std::string(GRAIL_CONFORMANCE_DIR) + "/public_cases.jsonl"); }

// The preference objectives (DPO family, SimPO, ORPO, KTO, Bradley-Terry), including the
// extreme margins where a naive log σ overflows.
TEST(ConformanceTest, PreferenceCases) {
  CheckCases(std::string(GRAIL_CONFORMANCE_DIR) + "/preference_cases.jsonl");
}

}  // namespace
}  // namespace grail::testing
