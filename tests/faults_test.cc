// The fault suite (ctest label `faults`): real service processes on 127.0.0.1, one seeded
// run per scenario, each bounded in time. A scenario fails on a crash, a hang, a lost or
// double-counted sample (every RL step of a run is reported exactly once and trains a full
// batch), or an error that does not say what failed. It prints one line per scenario and a
// total.
//
// Scenarios: actor kill, actor stall; reward and reference kill and restart; learner kill
// and restart mid-run (automatic continuation); coordinator kill and restart (run resumed);
// kill during a checkpoint write; hostile inputs to every service; straight vs resumed runs
// byte-identical.

#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "actor/actor_client.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "common/weights_stream.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/learner_client.h"
#include "model/safetensors.h"
#include "proto/grail/v1/actor.grpc.pb.h"
#include "reference/reference_client.h"
#include "reward/reward_client.h"
#include "tests/local_cluster.h"
#include "tests/tiny_spec.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kSteps = 6;
constexpr int kPrompts = 8;
constexpr int kGroup = 4;

// The one tiny run every scenario trains: a small char-level model on 2-digit addition,
// checkpointed every 2 steps.
grail::v1::RunSpec FaultSpec(int hidden = 32, int layers = 2) {
  TinySpecOptions o;
  o.name = "faults";
  o.seed = o.init_seed = 11;
  o.hidden = hidden;
  o.intermediate = 3 * hidden;
  o.layers = layers;
  o.heads = 4;
  o.max_digits = 2;
  o.dataset_seed = 7;
  o.heldout = 40;
  o.max_new_tokens = 5;
  o.group_size = kGroup;
  o.sft_steps = 20;
  o.sft_batch = 32;
  o.total_steps = kSteps;
  o.prompts = kPrompts;
  o.learning_rate = 0.0003;
  o.checkpoint_every = 2;
  return TinySpec(o);
}

// Scenario results, printed at the end as one line each and a total.
struct Results {
  std::mutex mu;
  std::vector<std::string> lines;
  int failed = 0;
};
Results& AllResults() {
  static Results* r = new Results();
  return *r;
}

class SummaryPrinter : public ::testing::EmptyTestEventListener {
  void OnTestEnd(const ::testing::TestInfo& info) override {
    auto& r = AllResults();
    std::lock_guard<std::mutex> lock(r.mu);
    const bool ok = info.result()->Passed();
    r.failed += ok ? 0 : 1;
    r.lines.push_back(absl::StrFormat("faults: %-34s %s %6.1fs", info.name(), ok ? "ok    " : "FAILED",
                                      info.result()->elapsed_time() / 1000.0));
    std::cout << r.lines.back() << std::endl;
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    auto& r = AllResults();
    std::cout << "faults: total " << r.lines.size() << " scenarios, " << r.lines.size() - r.failed << " ok, "
              << r.failed << " failed" << std::endl;
  }
};

// A scenario's cluster is killed with its test; the coordinator runs with short deadlines
// so that a stall or a dead peer shows within the scenario's time bound.
std::unique_ptr<LocalCluster> StartCluster() {
  LocalClusterOptions o;
  o.learner_threads = 1;
  o.extra_coordinator_args = {"--stall_timeout=3s", "--rpc_timeout=20s", "--generate_timeout=60s",
                              "--recovery_timeout=60s"};
  auto c = LocalCluster::Start(o);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? std::move(*c) : nullptr;
}

// Polls the coordinator (reconnecting: it may have been restarted) until the run ends.
absl::StatusOr<grail::v1::Run> WaitForEnd(LocalCluster& cluster, const std::string& id, absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  while (absl::Now() < deadline) {
    auto client = cluster.NewRunClient();
    auto run = client->Get(id);
    if (run.ok() && (run->state() == grail::v1::RUN_STATE_SUCCEEDED || run->state() == grail::v1::RUN_STATE_FAILED ||
                     run->state() == grail::v1::RUN_STATE_CANCELLED)) {
      return run;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
  return absl::DeadlineExceededError(absl::StrCat(id, " did not end within ", absl::FormatDuration(bound)));
}

std::vector<grail::v1::StepReport> Reports(LocalCluster& cluster, const std::string& id) {
  std::vector<grail::v1::StepReport> out;
  auto client = cluster.NewRunClient();
  EXPECT_TRUE(client->Watch(id, [&](const grail::v1::StepReport& r) { out.push_back(r); }).ok());
  return out;
}

// Every RL step reported exactly once, each with a full batch: nothing lost, nothing
// counted twice.
void ExpectEveryStepOnce(const std::vector<grail::v1::StepReport>& reports) {
  std::map<int, int> seen;
  for (const auto& r : reports) {
    if (r.phase() != "rl") continue;
    ++seen[r.step()];
    EXPECT_EQ(r.metrics().at("samples_trained"), kPrompts * kGroup) << "step " << r.step();
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kSteps));
  for (const auto& [step, n] : seen) EXPECT_EQ(n, 1) << "step " << step << " reported " << n << " times";
}

// Submits FaultSpec and, in the background, calls `fault` once the run reports RL step
// `at_step`. Returns the run id.
class Scenario {
 public:
  explicit Scenario(LocalCluster* cluster) : cluster_(cluster) {}
  ~Scenario() {
    if (watcher_.joinable()) watcher_.join();
  }

  std::string Submit(const grail::v1::RunSpec& spec, int at_step, std::function<void()> fault) {
    return SubmitWhen(
        spec, [at_step](const grail::v1::StepReport& r) { return r.phase() == "rl" && r.step() >= at_step; },
        std::move(fault));
  }

  // The same, calling `fault` at the first report `when` accepts.
  std::string SubmitWhen(const grail::v1::RunSpec& spec, std::function<bool(const grail::v1::StepReport&)> when,
                         std::function<void()> fault) {
    auto client = cluster_->NewRunClient();
    auto id = client->Submit(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    watcher_ = std::thread([this, id = *id, when = std::move(when), fault = std::move(fault)] {
      auto c = cluster_->NewRunClient();
      bool fired = false;
      // The stream ends when the run ends, or breaks when the fault kills the coordinator.
      (void)c->Watch(id, [&](const grail::v1::StepReport& r) {
        if (!fired && fault && when(r)) {
          fired = true;
          fault();
          fault_done_ = true;
        }
      });
    });
    return *id;
  }

  // Waits until the fault has been carried out.
  bool WaitForFault(absl::Duration bound) const {
    const absl::Time deadline = absl::Now() + bound;
    while (!fault_done_ && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    return fault_done_;
  }

 private:
  LocalCluster* cluster_;
  std::thread watcher_;
  std::atomic<bool> fault_done_{false};
};

// A fault: kill `p`, and after `away` start it again on its address (as a supervisor would).
std::function<void()> KillAndRestart(ServiceProcess* p, absl::Duration away,
                                     std::unique_ptr<ServiceProcess>* restarted) {
  return [=] {
    (void)p->SignalAndWait(SIGKILL, absl::Seconds(10));
    absl::SleepFor(away);
    auto again = p->StartAgain();
    ASSERT_TRUE(again.ok()) << again.status();
    *restarted = std::move(*again);
  };
}

// Waits for the run's end and checks that it succeeded; returns it.
grail::v1::Run ExpectSucceeded(LocalCluster& cluster, const std::string& id) {
  auto run = WaitForEnd(cluster, id, absl::Minutes(4));
  EXPECT_TRUE(run.ok()) << run.status();
  if (!run.ok()) return {};
  EXPECT_EQ(run->state(), grail::v1::RUN_STATE_SUCCEEDED) << run->error();
  return *run;
}

std::string FinalWeights(LocalCluster& cluster, const std::string& id) {
  auto bytes = model::ReadFileToString(absl::StrFormat("%s/%s/step-%06d/model.safetensors", cluster.data_root(), id, kSteps));
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

// The straight run every fault run is compared with (computed once).
const std::string& StraightWeights() {
  static std::string* weights = [] {
    auto cluster = StartCluster();
    auto client = cluster->NewRunClient();
    auto id = client->Submit(FaultSpec());
    EXPECT_TRUE(id.ok()) << id.status();
    auto run = WaitForEnd(*cluster, *id, absl::Minutes(3));
    EXPECT_TRUE(run.ok() && run->state() == grail::v1::RUN_STATE_SUCCEEDED) << (run.ok() ? run->error() : "");
    ExpectEveryStepOnce(Reports(*cluster, *id));
    return new std::string(FinalWeights(*cluster, *id));
  }();
  return *weights;
}

TEST(FaultsTest, ActorKilledMidRun) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  const std::string id = s.Submit(FaultSpec(), 2, [&] { (void)cluster->actors()[0]->SignalAndWait(SIGKILL, absl::Seconds(10)); });
  ExpectSucceeded(*cluster, id);
  ExpectEveryStepOnce(Reports(*cluster, id));
}

TEST(FaultsTest, ActorStalledMidRun) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  // Stopped for 8 s: its rollout stream delivers nothing, is cut after --stall_timeout=3s
  // and its prompts are sampled on the other actor.
  const std::string id = s.Submit(FaultSpec(), 2, [&] {
    cluster->actors()[0]->Signal(SIGSTOP);
    std::thread([p = cluster->actors()[0].get()] {
      absl::SleepFor(absl::Seconds(8));
      p->Signal(SIGCONT);
    }).detach();
  });
  ExpectSucceeded(*cluster, id);
  cluster->actors()[0]->Signal(SIGCONT);
  ExpectEveryStepOnce(Reports(*cluster, id));
  EXPECT_EQ(FinalWeights(*cluster, id).size(), StraightWeights().size());
}

TEST(FaultsTest, RewardKilledAndRestarted) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  std::unique_ptr<ServiceProcess> restarted;
  // Away for longer than the retries cover.
  const std::string id = s.Submit(FaultSpec(), 2, KillAndRestart(&cluster->reward(), absl::Seconds(2), &restarted));
  ExpectSucceeded(*cluster, id);
  ExpectEveryStepOnce(Reports(*cluster, id));
  EXPECT_EQ(FinalWeights(*cluster, id), StraightWeights());  // the scorer keeps no state
}

TEST(FaultsTest, ReferenceKilledAndRestarted) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  std::unique_ptr<ServiceProcess> restarted;
  const std::string id =
      s.Submit(FaultSpec(), 2, KillAndRestart(&cluster->reference(), absl::Seconds(2), &restarted));
  ExpectSucceeded(*cluster, id);
  auto reports = Reports(*cluster, id);
  ExpectEveryStepOnce(reports);
  int recovered = 0;
  for (const auto& r : reports) recovered += r.phase() == "recovered" && absl::StrContains(r.message(), "reference");
  EXPECT_EQ(recovered, 1);
  // Reloaded with the same reference weights: the run ends exactly where the straight one does.
  EXPECT_EQ(FinalWeights(*cluster, id), StraightWeights());
}

TEST(FaultsTest, LearnerKilledAndRestartedContinuesTheRun) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  std::unique_ptr<ServiceProcess> restarted;
  const std::string id = s.Submit(FaultSpec(), 3, KillAndRestart(&cluster->learner(), absl::Seconds(1), &restarted));
  EXPECT_EQ(ExpectSucceeded(*cluster, id).recoveries(), 1);
  ExpectEveryStepOnce(Reports(*cluster, id));
  // Steps after the last checkpoint were trained again, exactly.
  EXPECT_EQ(FinalWeights(*cluster, id), StraightWeights());
}

TEST(FaultsTest, CoordinatorKilledAndRestartedResumesTheRun) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  std::unique_ptr<ServiceProcess> restarted;
  const std::string id = s.Submit(FaultSpec(), 3, [&] {
    (void)cluster->coordinator().SignalAndWait(SIGKILL, absl::Seconds(10));
  });
  // Wait for the kill, then bring the coordinator back on its address and data root.
  ASSERT_TRUE(s.WaitForFault(absl::Minutes(2)));
  auto again = cluster->coordinator().StartAgain();
  ASSERT_TRUE(again.ok()) << again.status();
  restarted = std::move(*again);
  EXPECT_EQ(ExpectSucceeded(*cluster, id).recoveries(), 1);
  ExpectEveryStepOnce(Reports(*cluster, id));
  EXPECT_EQ(FinalWeights(*cluster, id), StraightWeights());  // straight vs resumed: byte-identical
  // Run ids never repeat after the restart.
  auto client = cluster->NewRunClient();
  auto runs = client->List();
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 1u);
}

// FaultSpec as three stages: its supervised warm-up, 4 DPO steps on the built-in pairs, then
// its RL steps.
grail::v1::RunSpec StagedFaultSpec() {
  grail::v1::RunSpec spec = FaultSpec();
  auto* sft = spec.add_stages();
  sft->set_name("sft");
  sft->set_kind(grail::v1::STAGE_KIND_SFT);
  auto* dpo = spec.add_stages();
  dpo->set_name("dpo");
  dpo->set_kind(grail::v1::STAGE_KIND_PREFERENCE);
  dpo->mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  dpo->mutable_trainer()->set_total_steps(4);
  auto* rl = spec.add_stages();
  rl->set_name("rl");
  rl->set_kind(grail::v1::STAGE_KIND_RL);
  return spec;
}

std::string StagedFinalWeights(LocalCluster& cluster, const std::string& id) {
  auto bytes = model::ReadFileToString(
      absl::StrFormat("%s/%s/rl/step-%06d/model.safetensors", cluster.data_root(), id, kSteps));
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

// A coordinator killed in the middle stage: the restarted one skips the finished sft stage,
// resumes dpo after its step-2 checkpoint and runs rl; every step is reported once, and the
// run ends on the bytes of the same staged run left alone.
TEST(FaultsTest, StagedRunResumesAtItsStageAfterACoordinatorKill) {
  std::string straight;
  {
    auto cluster = StartCluster();
    ASSERT_NE(cluster, nullptr);
    auto id = cluster->NewRunClient()->Submit(StagedFaultSpec());
    ASSERT_TRUE(id.ok()) << id.status();
    ExpectSucceeded(*cluster, *id);
    straight = StagedFinalWeights(*cluster, *id);
  }
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  Scenario s(cluster.get());
  std::unique_ptr<ServiceProcess> restarted;
  const std::string id = s.SubmitWhen(
      StagedFaultSpec(),
      [](const grail::v1::StepReport& r) { return r.stage() == "dpo" && r.phase() == "preference" && r.step() == 3; },
      [&] { (void)cluster->coordinator().SignalAndWait(SIGKILL, absl::Seconds(10)); });
  ASSERT_TRUE(s.WaitForFault(absl::Minutes(2)));
  auto again = cluster->coordinator().StartAgain();
  ASSERT_TRUE(again.ok()) << again.status();
  restarted = std::move(*again);
  const grail::v1::Run run = ExpectSucceeded(*cluster, id);
  EXPECT_EQ(run.recoveries(), 1);
  const auto reports = Reports(*cluster, id);
  ExpectEveryStepOnce(reports);
  std::map<std::string, std::map<int64_t, int>> steps;  // stage -> step -> reports
  bool recovered = false;
  for (const auto& r : reports) {
    if (r.phase() == "recovered") {
      recovered = true;
      EXPECT_EQ(r.stage(), "dpo");
    }
    if (r.phase() == "sft") EXPECT_FALSE(recovered) << "the finished sft stage ran again";
    if (r.phase() == "preference") ++steps[r.stage()][r.step()];
    // The kill lands within milliseconds of step 3's report, before step 4's checkpoint;
    // should it not, dpo is finished and the resumed run starts rl afresh.
    if (r.phase() == "resume") {
      EXPECT_EQ(r.stage(), "dpo");
      EXPECT_EQ(r.metrics().at("resumed_after_step"), 2);
    }
  }
  EXPECT_TRUE(recovered);
  EXPECT_EQ(steps["dpo"], (std::map<int64_t, int>{{1, 1}, {2, 1}, {3, 1}, {4, 1}}));
  EXPECT_EQ(run.stage_checkpoints().at("dpo"), id + "/dpo/step-000004");
  EXPECT_EQ(StagedFinalWeights(*cluster, id), straight);
}

// A learner killed while it writes a checkpoint leaves a temporary directory, never a
// checkpoint without COMMITTED; the run resumes from the last committed one.
TEST(FaultsTest, KilledDuringCheckpointWrite) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  grail::v1::RunSpec spec = FaultSpec(/*hidden=*/256, /*layers=*/4);  // checkpoints that take a while
  spec.mutable_trainer()->set_checkpoint_every(1);
  auto client = cluster->NewRunClient();
  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  // Watch for a checkpoint being written after step 2 and kill the learner in the middle of it.
  bool killed = false;
  const fs::path root = fs::path(cluster->data_root()) / *id;
  const absl::Time until = absl::Now() + absl::Minutes(2);
  while (!killed && absl::Now() < until) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root, ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("step-", 0) == 0 && name.find(".tmp-") != std::string::npos && name >= "step-000002") {
        (void)cluster->learner().SignalAndWait(SIGKILL, absl::Seconds(10));
        killed = true;
        break;
      }
    }
    if (!killed) absl::SleepFor(absl::Microseconds(500));
  }
  ASSERT_TRUE(killed) << "never saw a checkpoint being written";
  auto again = cluster->learner().StartAgain();
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(ExpectSucceeded(*cluster, *id).recoveries(), 1);
  ExpectEveryStepOnce(Reports(*cluster, *id));
  // Every checkpoint directory the run names is committed.
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp-") != std::string::npos) continue;  // the killed write's leftover
    EXPECT_TRUE(fs::exists(e.path() / "COMMITTED")) << name;
  }
}

// Hostile inputs to every service: each is refused with an error that names the field,
// and the service keeps serving.
TEST(FaultsTest, HostileInputsToEveryService) {
  auto cluster = StartCluster();
  ASSERT_NE(cluster, nullptr);
  auto options = [](const std::string& target) {
    ClientOptions o;
    o.target = target;
    o.timeout = absl::Seconds(30);
    return o;
  };
  // Reward: long responses and a bad item.
  {
    auto reward = reward::NewGrpcRewardClient(options(cluster->reward().grpc_address()));
    grail::v1::ScoreRequest req;
    for (size_t n : {size_t{32768}, size_t{3} << 20}) {
      auto* it = req.add_items();
      it->set_verifier("math");
      it->set_response(std::string(n, '9'));
      it->set_answer("9");
    }
    auto* bad = req.add_items();
    bad->set_verifier("ifeval");
    bad->set_constraints_json("{\"nope\": 1}");
    auto res = reward->Score(req);
    ASSERT_TRUE(res.ok()) << res.status();
    EXPECT_FALSE(res->scores(0).failed());
    EXPECT_TRUE(res->scores(2).failed());
    EXPECT_THAT(res->scores(2).error(), HasSubstr("items[2].constraints_json.nope"));
  }
  // Reference: tensors whose shape and data disagree, absurd shapes.
  {
    auto reference = reference::NewGrpcReferenceClient(options(cluster->reference().grpc_address()));
    grail::v1::LogProbsRequest req;
    auto* ids = req.mutable_input_ids();
    ids->set_dtype(grail::v1::DTYPE_INT64);
    ids->add_shape(2);
    ids->add_shape(3);
    ids->set_data(std::string(47, '\0'));
    auto res = reference->ComputeLogProbs(req);
    EXPECT_FALSE(res.ok());
    ids->set_shape(0, int64_t{1} << 40);
    ids->set_shape(1, int64_t{1} << 40);
    res = reference->ComputeLogProbs(req);
    EXPECT_FALSE(res.ok());
    EXPECT_THAT(std::string(res.status().message()), HasSubstr("reference "));
  }
  // Actor: corrupt and truncated weight streams.
  {
    auto channel = MakeChannel(options(cluster->actors()[0]->grpc_address()));
    auto stub = grail::v1::ActorService::NewStub(channel);
    for (int variant = 0; variant < 3; ++variant) {
      grpc::ClientContext ctx;
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
      grail::v1::LoadWeightsResponse resp;
      auto writer = stub->LoadWeights(&ctx, &resp);
      grail::v1::WeightsChunk c;
      c.set_version(7);
      c.set_total_bytes(1000);
      c.set_offset(0);
      c.set_data(std::string(variant == 0 ? 500 : 1000, 'x'));  // 0: truncated
      c.set_digest(variant == 1 ? "00" : Sha256Hex(c.data()));  // 1: wrong digest; 2: not safetensors
      writer->Write(c);
      writer->WritesDone();
      grpc::Status s = writer->Finish();
      EXPECT_FALSE(s.ok()) << "variant " << variant;
      EXPECT_NE(s.error_code(), grpc::StatusCode::UNKNOWN) << s.error_message();
    }
    grpc::ClientContext ctx;
    grail::v1::GenerateRequest g;  // no weights loaded: refused, no crash
    g.set_group_size(1 << 30);
    auto reader = stub->Generate(&ctx, g);
    grail::v1::Sample sample;
    while (reader->Read(&sample)) {
    }
    EXPECT_FALSE(reader->Finish().ok());
  }
  // Learner: a path escape, a checkpoint directory without COMMITTED.
  {
    auto learner = learner::NewGrpcLearnerClient(options(cluster->learner().grpc_address()));
    grail::v1::RunSpec spec = FaultSpec();
    spec.mutable_model()->clear_config();
    spec.mutable_model()->set_path("../../etc");
    auto init = learner->InitModel(spec);
    EXPECT_EQ(init.status().code(), absl::StatusCode::kPermissionDenied) << init.status();
    EXPECT_THAT(std::string(init.status().message()), HasSubstr("model.path"));
    EXPECT_THAT(std::string(init.status().message()), Not(HasSubstr(cluster->data_root())));
    fs::create_directories(fs::path(cluster->data_root()) / "half");
    std::ofstream(fs::path(cluster->data_root()) / "half" / "manifest.json") << "{}";
    spec.mutable_model()->set_path("half");
    init = learner->InitModel(spec);
    EXPECT_EQ(init.status().code(), absl::StatusCode::kDataLoss) << init.status();
    EXPECT_THAT(std::string(init.status().message()), HasSubstr("half/COMMITTED"));
  }
  // Coordinator: non-finite and unbounded spec values, path escapes.
  {
    auto client = cluster->NewRunClient();
    std::vector<std::pair<std::function<void(grail::v1::RunSpec*)>, std::string>> bad = {
        {[](auto* s) { s->mutable_trainer()->set_learning_rate(std::nanf("")); }, "trainer.learning_rate"},
        {[](auto* s) { s->mutable_trainer()->set_prompts_per_step(1000000000); }, "trainer.prompts_per_step"},
        {[](auto* s) { s->mutable_dataset()->set_max_digits(12); }, "dataset.max_digits"},
        {[](auto* s) { s->mutable_sampling()->set_max_new_tokens(1 << 30); }, "sampling.max_new_tokens"},
        {[](auto* s) {
           s->mutable_dataset()->clear_builtin();
           s->mutable_dataset()->set_jsonl_path("../../../etc/passwd");
         },
         "dataset.jsonl_path"},
        {[](auto* s) { s->set_name(std::string(1 << 20, 'n')); }, "name"},
    };
    for (auto& [edit, field] : bad) {
      grail::v1::RunSpec spec = FaultSpec();
      edit(&spec);
      auto id = client->Submit(spec);
      EXPECT_FALSE(id.ok()) << field;
      EXPECT_THAT(std::string(id.status().message()), HasSubstr(field));
      EXPECT_THAT(std::string(id.status().message()), Not(HasSubstr(cluster->data_root())));
    }
  }
  // Every service is still up and serving.
  for (ServiceProcess* p : cluster->all()) {
    int status;
    EXPECT_EQ(waitpid(p->pid(), &status, WNOHANG), 0) << p->ready_line() << " exited";
    auto channel = MakeChannel(options(p->grpc_address()));
    auto serving = CheckServing(channel.get(), absl::Seconds(5));
    EXPECT_TRUE(serving.ok() && *serving) << p->ready_line();
  }
}

}  // namespace
}  // namespace grail::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::UnitTest::GetInstance()->listeners().Append(new grail::testing::SummaryPrinter());
  return RUN_ALL_TESTS();
}
