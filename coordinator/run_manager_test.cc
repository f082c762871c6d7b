#include "coordinator/run_manager.h"

#include <unistd.h>

#include <filesystem>
#include <set>

#include "common/config.h"
#include "coordinator/testing/fake_clients.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

constexpr char kSpec[] = R"(
name: t
seed: 3
model: {config: {vocab_size: 98, hidden_size: 64, num_attention_heads: 4}, tokenizer: char}
dataset: {builtin: arithmetic, heldout_size: 20}
sampling: {temperature: 1.0, max_new_tokens: 4}
algorithm: {advantage_estimator: grpo, group_size: 4}
trainer: {total_steps: 4, prompts_per_step: 6, checkpoint_every: 1}
)";

class RunManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "grail_manager_XXXXXX";
    dir_ = mkdtemp(tmpl.data());
    for (int i = 0; i < 2; ++i) clients_.actors.push_back(std::make_shared<testing::FakeActorClient>());
    clients_.reward = std::make_shared<testing::FakeRewardClient>();
    clients_.reference = std::make_shared<testing::FakeReferenceClient>();
    learner_ = std::make_shared<testing::FakeLearnerClient>();
    clients_.learner = learner_;
    ASSERT_TRUE(ParseConfig(kSpec, ConfigFormat::kYaml, &spec_).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<RunManager> NewManager() {
    RunManagerOptions o;
    o.data_root = dir_;
    auto store = RunStore::Open(dir_ + "/runs.sqlite");
    EXPECT_TRUE(store.ok()) << store.status();
    o.store = std::move(*store);
    auto m = RunManager::Create(o, clients_, &metrics_);
    EXPECT_TRUE(m.ok()) << m.status();
    return std::move(*m);
  }

  static grail::v1::Run WaitForEnd(RunManager* m, const std::string& id) {
    EXPECT_TRUE(m->Watch(id, [](const grail::v1::StepReport&) { return true; }, [] { return true; }).ok());
    return *m->Get(id);
  }

  static std::vector<int> RlSteps(const grail::v1::Run& run, RunManager* m) {
    std::vector<int> steps;
    (void)m->Watch(run.run_id(), [&](const grail::v1::StepReport& r) {
      if (r.phase() == "rl") steps.push_back(r.step());
      return true;
    }, [] { return true; });
    return steps;
  }

  std::string dir_;
  prometheus::Registry registry_;
  CoordinatorMetrics metrics_{registry_};
  ServiceClients clients_;
  std::shared_ptr<testing::FakeLearnerClient> learner_;
  grail::v1::RunSpec spec_;
};

TEST_F(RunManagerTest, ARestartedCoordinatorListsRunsAndNeverReusesIds) {
  std::string first;
  {
    auto m = NewManager();
    auto id = m->Submit(spec_);
    ASSERT_TRUE(id.ok()) << id.status();
    first = *id;
    EXPECT_EQ(WaitForEnd(m.get(), first).state(), grail::v1::RUN_STATE_SUCCEEDED);
  }
  auto m = NewManager();
  EXPECT_TRUE(m->Recover().empty());  // nothing was active
  auto run = m->Get(first);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->state(), grail::v1::RUN_STATE_SUCCEEDED);
  EXPECT_EQ(run->last_checkpoint(), first + "/step-000004");
  EXPECT_EQ(RlSteps(*run, m.get()), (std::vector<int>{1, 2, 3, 4}));
  auto second = m->Submit(spec_);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(*second, first);
  WaitForEnd(m.get(), *second);
}

// A coordinator that died after step 2's checkpoint (step 3 already reported): the next one
// resumes the run from that checkpoint under the same id; step 3 is trained again and
// reported once.
TEST_F(RunManagerTest, AnActiveRunIsResumedFromItsLastCheckpointAfterARestart) {
  std::string id;
  {
    auto m = NewManager();
    id = *m->Submit(spec_);
    WaitForEnd(m.get(), id);
  }
  {
    // Rewrite the store as a coordinator killed during step 4 would have left it.
    auto store = RunStore::Open(dir_ + "/runs.sqlite");
    auto all = (*store)->LoadAll();
    auto& stored = (*all)[0];
    size_t cut = 0;
    for (size_t i = 0; i < stored.reports.size(); ++i) {
      if (stored.reports[i].phase() == "rl" && stored.reports[i].step() == 3) cut = i + 1;
    }
    ASSERT_GT(cut, 0u);
    ASSERT_TRUE((*store)->TruncateReports(id, cut).ok());
    grail::v1::Run run = stored.run;
    run.set_state(grail::v1::RUN_STATE_RUNNING);
    run.set_last_checkpoint(id + "/step-000002");
    run.clear_summary();
    ASSERT_TRUE((*store)->PutRun(run).ok());
  }
  const size_t trained_before = learner_->steps().size();
  auto m = NewManager();
  EXPECT_EQ(m->Recover(), std::vector<std::string>{id});
  grail::v1::Run run = WaitForEnd(m.get(), id);
  EXPECT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(run.recoveries(), 1);
  EXPECT_EQ(RlSteps(run, m.get()), (std::vector<int>{1, 2, 3, 4}));  // nothing counted twice
  EXPECT_EQ(learner_->steps().size() - trained_before, 2u);            // steps 3 and 4 again
  EXPECT_TRUE(learner_->init_requests().back().spec().trainer().resume());
}

TEST_F(RunManagerTest, AnActiveRunWithoutACheckpointIsFailedWithTheReason) {
  {
    auto store = RunStore::Open(dir_ + "/runs.sqlite");
    grail::v1::Run run;
    run.set_run_id(*(*store)->NextRunId());
    *run.mutable_spec() = spec_;
    run.set_state(grail::v1::RUN_STATE_RUNNING);
    ASSERT_TRUE((*store)->PutRun(run).ok());
  }
  auto m = NewManager();
  EXPECT_TRUE(m->Recover().empty());
  auto runs = m->List();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state(), grail::v1::RUN_STATE_FAILED);
  EXPECT_THAT(runs[0].error(), ::testing::HasSubstr("no committed checkpoint"));
  EXPECT_EQ(*m->Submit(spec_), "run-000002");
}

// A learner killed mid-run that a supervisor restarts: the run waits for it, resumes from
// the last checkpoint and ends as if nothing happened.
TEST_F(RunManagerTest, AKilledLearnerIsReinitialisedAndTheRunContinues) {
  learner_->fail_at_step = 3;
  auto m = NewManager();
  auto id = m->Submit(spec_);
  ASSERT_TRUE(id.ok());
  grail::v1::Run run = WaitForEnd(m.get(), *id);
  EXPECT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(run.recoveries(), 1);
  EXPECT_EQ(learner_->waits.load(), 1);
  EXPECT_EQ(RlSteps(run, m.get()), (std::vector<int>{1, 2, 3, 4}));
  std::set<int64_t> trained;
  for (const auto& s : learner_->steps()) EXPECT_TRUE(trained.insert(s.step()).second) << s.step();
}

}  // namespace
}  // namespace grail::coordinator
