#include "coordinator/run_manager.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "algo/run_spec.h"
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

// kSpec's fields as the defaults of three stages: sft, then dpo, then rl.
constexpr char kStages[] = R"(
stages:
  - {name: sft, kind: sft, trainer: {sft_steps: 3, sft_batch_size: 4}}
  - {name: dpo, kind: preference, preference: {objective: dpo}, trainer: {total_steps: 3, prompts_per_step: 4}}
  - {name: rl, kind: rl, trainer: {total_steps: 2}}
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

std::vector<std::string> StagesInOrder(RunManager* m, const std::string& id) {
  std::vector<std::string> stages;
  (void)m->Watch(id, [&](const grail::v1::StepReport& r) {
    if (r.phase() != "done" && (stages.empty() || stages.back() != r.stage())) stages.push_back(r.stage());
    return true;
  }, [] { return true; });
  return stages;
}

int PreferenceTrainingSteps(testing::FakeLearnerClient& learner) {
  int n = 0;
  for (const auto& r : learner.preference_requests()) n += r.eval_only() ? 0 : 1;
  return n;
}

// Each stage starts from the final checkpoint of the one before it, checkpoints under its
// own directory, and reports under its name; the run's summary keeps every stage's.
TEST_F(RunManagerTest, AStagedRunRunsItsStagesInOrderEachFromThePreviousOnesCheckpoint) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + kStages, ConfigFormat::kYaml, &spec_).ok());
  auto m = NewManager();
  auto id = m->Submit(spec_);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::Run run = WaitForEnd(m.get(), *id);
  ASSERT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(StagesInOrder(m.get(), *id), (std::vector<std::string>{"sft", "dpo", "rl"}));
  const std::map<std::string, std::string> finals(run.stage_checkpoints().begin(), run.stage_checkpoints().end());
  EXPECT_EQ(finals, (std::map<std::string, std::string>{{"sft", *id + "/sft/step-000000"},
                                                        {"dpo", *id + "/dpo/step-000003"},
                                                        {"rl", *id + "/rl/step-000002"}}));
  EXPECT_EQ(learner_->supervised_requests().size(), 3u);
  EXPECT_EQ(PreferenceTrainingSteps(*learner_), 3);
  EXPECT_EQ(learner_->steps().size(), 2u);
  std::vector<std::string> starts;
  for (const auto& r : learner_->init_requests()) starts.push_back(r.spec().model().path());
  EXPECT_THAT(starts, ::testing::ElementsAre("", *id + "/sft/step-000000", *id + "/dpo/step-000003"));
  EXPECT_EQ(learner_->init_requests()[1].spec().preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_DPO);
  EXPECT_EQ(learner_->init_requests()[2].spec().preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED);
  EXPECT_EQ(learner_->init_requests()[1].spec().trainer().sft_steps(), 0);
  EXPECT_TRUE(run.summary().count("sft.heldout_accuracy_after"));
  EXPECT_TRUE(run.summary().count("dpo.heldout_preference_accuracy_after"));
  EXPECT_TRUE(run.summary().count("rl.heldout_accuracy_after"));
}

// trainer.sft_epochs: an sft stage of two passes over the training rows at batch 64 takes
// ceil(2 * rows / 64) steps, and the learner sees them as sft_steps.
TEST_F(RunManagerTest, SftEpochsBecomeTheStepsThosePassesTake) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + R"(
dataset: {builtin: arithmetic, heldout_size: 20, train_size: 100}
stages:
  - {name: sft, kind: sft, trainer: {sft_epochs: 2, sft_batch_size: 64}}
)", ConfigFormat::kYaml, &spec_).ok());
  auto m = NewManager();
  auto id = m->Submit(spec_);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::Run run = WaitForEnd(m.get(), *id);
  ASSERT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(learner_->supervised_requests().size(), 4u);  // ceil(2 * 100 / 64)
  ASSERT_FALSE(learner_->init_requests().empty());
  EXPECT_EQ(learner_->init_requests()[0].spec().trainer().sft_steps(), 4);
  EXPECT_EQ(learner_->init_requests()[0].spec().trainer().sft_epochs(), 0);
}

// A coordinator that died in the dpo stage after its step-2 checkpoint: the next one skips
// the finished sft stage, resumes dpo from that checkpoint (step 3 trained once more) and
// runs rl from dpo's final checkpoint.
TEST_F(RunManagerTest, AStagedRunResumesAtTheStageAndStepItReached) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + kStages, ConfigFormat::kYaml, &spec_).ok());
  std::string id;
  {
    auto m = NewManager();
    id = *m->Submit(spec_);
    ASSERT_EQ(WaitForEnd(m.get(), id).state(), grail::v1::RUN_STATE_SUCCEEDED);
  }
  {
    auto store = RunStore::Open(dir_ + "/runs.sqlite");
    auto all = (*store)->LoadAll();
    auto& stored = (*all)[0];
    size_t cut = 0;
    for (size_t i = 0; i < stored.reports.size(); ++i) {
      const auto& r = stored.reports[i];
      if (r.stage() == "dpo" && r.phase() == "preference" && r.step() == 3) cut = i + 1;
    }
    ASSERT_GT(cut, 0u);
    ASSERT_TRUE((*store)->TruncateReports(id, cut).ok());
    grail::v1::Run run = stored.run;
    run.set_state(grail::v1::RUN_STATE_RUNNING);
    run.set_stage("dpo");
    run.set_last_checkpoint(id + "/dpo/step-000002");
    run.set_last_checkpoint_stage("dpo");
    run.mutable_stage_checkpoints()->erase("dpo");
    run.mutable_stage_checkpoints()->erase("rl");
    run.clear_summary();
    ASSERT_TRUE((*store)->PutRun(run).ok());
  }
  const size_t supervised_before = learner_->supervised_requests().size();
  const int preference_before = PreferenceTrainingSteps(*learner_);
  const size_t init_before = learner_->init_requests().size();
  auto m = NewManager();
  EXPECT_EQ(m->Recover(), std::vector<std::string>{id});
  grail::v1::Run run = WaitForEnd(m.get(), id);
  ASSERT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(run.recoveries(), 1);
  EXPECT_EQ(learner_->supervised_requests().size(), supervised_before);  // sft is not run again
  EXPECT_EQ(PreferenceTrainingSteps(*learner_) - preference_before, 1);  // dpo step 3 only
  std::vector<int> dpo_steps;
  (void)m->Watch(id, [&](const grail::v1::StepReport& r) {
    if (r.stage() == "dpo" && r.phase() == "preference") dpo_steps.push_back(r.step());
    return true;
  }, [] { return true; });
  EXPECT_EQ(dpo_steps, (std::vector<int>{1, 2, 3}));  // each reported once
  auto inits = learner_->init_requests();
  ASSERT_GT(inits.size(), init_before);
  // The resumed dpo stage (the checkpoint, its reference from the stage's step-0 checkpoint,
  // the checkpoint again), then rl.
  ASSERT_GE(inits.size(), init_before + 4);
  EXPECT_EQ(inits[init_before].spec().model().path(), id + "/dpo/step-000002");
  EXPECT_TRUE(inits[init_before].spec().trainer().resume());
  EXPECT_EQ(inits[init_before + 1].spec().model().path(), id + "/dpo/step-000000");
  EXPECT_EQ(inits[init_before + 2].spec().model().path(), id + "/dpo/step-000002");
  EXPECT_EQ(inits.back().spec().model().path(), id + "/dpo/step-000003");
  EXPECT_EQ(run.stage_checkpoints().at("rl"), id + "/rl/step-000002");
}

// A staged run whose coordinator died before any checkpoint starts again from its first
// stage (a run of one stage without checkpoints is failed, as above).
TEST_F(RunManagerTest, AStagedRunWithoutACheckpointStartsAgain) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + kStages, ConfigFormat::kYaml, &spec_).ok());
  {
    auto store = RunStore::Open(dir_ + "/runs.sqlite");
    grail::v1::Run run;
    run.set_run_id(*(*store)->NextRunId());
    grail::v1::RunSpec resolved = spec_;
    algo::ResolveDefaults(&resolved);
    *run.mutable_spec() = resolved;
    run.set_state(grail::v1::RUN_STATE_RUNNING);
    run.set_stage("sft");
    ASSERT_TRUE((*store)->PutRun(run).ok());
  }
  auto m = NewManager();
  EXPECT_EQ(m->Recover(), std::vector<std::string>{"run-000001"});
  grail::v1::Run run = WaitForEnd(m.get(), "run-000001");
  ASSERT_EQ(run.state(), grail::v1::RUN_STATE_SUCCEEDED) << run.error();
  EXPECT_EQ(run.stage_checkpoints().size(), 3u);
  EXPECT_EQ(learner_->supervised_requests().size(), 3u);
}

TEST_F(RunManagerTest, AStageThatFailsFailsTheRunNamingIt) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + kStages, ConfigFormat::kYaml, &spec_).ok());
  learner_->fail_at_step = 1;  // the rl stage's first step; no learner comes back in time
  learner_->never_serving = true;
  auto m = NewManager();
  auto id = m->Submit(spec_);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::Run run = WaitForEnd(m.get(), *id);
  EXPECT_EQ(run.state(), grail::v1::RUN_STATE_FAILED);
  EXPECT_THAT(run.error(), ::testing::HasSubstr("stage 'rl'"));
  EXPECT_EQ(run.stage(), "rl");
}

TEST_F(RunManagerTest, AStagedRunWithABadStageIsRefusedAtSubmitNamingIt) {
  ASSERT_TRUE(ParseConfig(std::string(kSpec) + R"(
stages:
  - {name: sft, kind: sft, trainer: {sft_steps: 3}}
  - {name: pref, kind: preference, dataset: {pairs_path: missing.jsonl}, preference: {objective: dpo}}
)", ConfigFormat::kYaml, &spec_).ok());
  auto m = NewManager();
  auto id = m->Submit(spec_);
  ASSERT_FALSE(id.ok());
  EXPECT_THAT(std::string(id.status().message()), ::testing::HasSubstr("stages[1] (pref)"));
  EXPECT_THAT(std::string(id.status().message()), ::testing::HasSubstr("dataset.pairs_path"));
}

}  // namespace
}  // namespace grail::coordinator
