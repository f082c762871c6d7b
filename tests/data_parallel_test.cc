// A data-parallel learner group (grail-learner ranks over c10d Gloo) against a single
// learner: the same seeded batches give the same parameters; a dead or silent peer fails the
// group within the collective timeout and turns health NOT_SERVING; a restarted group
// resumes from the last checkpoint exactly.

#include <signal.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "algo/objectives.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "coordinator/run_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/learner_client.h"
#include "learner/learner_group_client.h"
#include "model/safetensors.h"
#include "tests/local_cluster.h"
#include "tests/tiny_spec.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

using ::testing::HasSubstr;

constexpr int kVocab = 40;
constexpr int kWidth = 24;

grail::v1::RunSpec Spec(const std::string& policy_loss, const std::string& agg) {
  grail::v1::RunSpec spec;
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(kVocab);
  c->set_hidden_size(32);
  c->set_intermediate_size(64);
  c->set_num_hidden_layers(2);
  c->set_num_attention_heads(4);
  c->set_num_key_value_heads(2);
  c->set_max_position_embeddings(64);
  spec.mutable_model()->set_init_seed(17);
  spec.mutable_trainer()->set_learning_rate(1e-3);
  spec.mutable_trainer()->set_sft_learning_rate(1e-3);
  spec.mutable_trainer()->set_ppo_epochs(2);
  spec.mutable_trainer()->set_warmup_steps(2);
  auto* a = spec.mutable_algorithm();
  a->set_policy_loss(*algo::FromSpecName<grail::v1::PolicyLoss>(policy_loss));
  a->set_loss_agg_mode(*algo::FromSpecName<grail::v1::LossAggMode>(agg));
  a->set_kl_coef(0.05);
  a->set_kl_estimator(grail::v1::KL_ESTIMATOR_K3);
  a->set_entropy_coef(0.01);
  spec.mutable_critic()->set_enabled(true);
  return spec;
}

grail::v1::Tensor MatrixTensor(grail::v1::DType dtype, int64_t rows, int64_t cols, const void* data, size_t item) {
  grail::v1::Tensor t;
  t.set_dtype(dtype);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(std::string(static_cast<const char*>(data), rows * cols * item));
  return t;
}

// A seeded batch of `rows` right-padded sequences with responses of different lengths.
grail::v1::Experience Batch(uint64_t seed, int rows) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> token(3, kVocab - 1);
  std::normal_distribution<float> noise(0.0f, 1.0f);
  std::vector<int64_t> ids(rows * kWidth, 0);
  std::vector<float> mask(rows * kWidth, 0), old_lp(rows * kWidth, 0), ref_lp(rows * kWidth, 0),
      adv(rows * kWidth, 0), returns(rows * kWidth, 0), values(rows * kWidth, 0);
  for (int b = 0; b < rows; ++b) {
    const int prompt = 3 + b % 4;
    const int response = std::min(kWidth - prompt, 2 + (b * 7 + static_cast<int>(seed)) % 15);
    const float row_adv = noise(rng);
    for (int t = 0; t < prompt + response; ++t) ids[b * kWidth + t] = token(rng);
    for (int t = prompt; t < prompt + response; ++t) {
      const int i = b * kWidth + t;
      mask[i] = 1;
      old_lp[i] = -3.6f + 0.3f * noise(rng);
      ref_lp[i] = -3.6f + 0.3f * noise(rng);
      adv[i] = row_adv + 0.1f * noise(rng);
      returns[i] = 0.5f + 0.5f * noise(rng);
      values[i] = 0.5f + 0.2f * noise(rng);
    }
  }
  grail::v1::Experience e;
  using grail::v1::DTYPE_FLOAT32;
  *e.mutable_input_ids() = MatrixTensor(grail::v1::DTYPE_INT64, rows, kWidth, ids.data(), 8);
  *e.mutable_response_mask() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, mask.data(), 4);
  *e.mutable_old_log_probs() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, old_lp.data(), 4);
  *e.mutable_ref_log_probs() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, ref_lp.data(), 4);
  *e.mutable_advantages() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, adv.data(), 4);
  *e.mutable_returns() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, returns.data(), 4);
  *e.mutable_values() = MatrixTensor(DTYPE_FLOAT32, rows, kWidth, values.data(), 4);
  return e;
}

grail::v1::TrainStepRequest RlStep(int step, int rows = 11) {
  grail::v1::TrainStepRequest r;
  r.set_step(step);
  *r.mutable_experience() = Batch(1000 + step, rows);
  return r;
}

grail::v1::SupervisedStepRequest SftStep(int step) {
  const grail::v1::Experience e = Batch(500 + step, 9);
  grail::v1::SupervisedStepRequest r;
  r.set_step(step);
  *r.mutable_input_ids() = e.input_ids();
  *r.mutable_loss_mask() = e.response_mask();
  return r;
}

// Largest |a - b| over every float32 tensor of two safetensors blobs with the same names.
double MaxAbsDiff(const std::string& a_blob, const std::string& b_blob) {
  auto a = model::SafetensorsFile::Parse(a_blob);
  auto b = model::SafetensorsFile::Parse(b_blob);
  EXPECT_TRUE(a.ok() && b.ok());
  if (!a.ok() || !b.ok()) return INFINITY;
  EXPECT_EQ(a->tensors().size(), b->tensors().size());
  double worst = 0;
  for (const auto& [name, ta] : a->tensors()) {
    auto it = b->tensors().find(name);
    EXPECT_NE(it, b->tensors().end()) << name;
    if (it == b->tensors().end() || ta.dtype != "F32") continue;
    const auto& tb = it->second;
    EXPECT_EQ(ta.data.size(), tb.data.size()) << name;
    const size_t n = std::min(ta.data.size(), tb.data.size()) / 4;
    for (size_t i = 0; i < n; ++i) {
      float x, y;
      std::memcpy(&x, ta.data.data() + 4 * i, 4);
      std::memcpy(&y, tb.data.data() + 4 * i, 4);
      worst = std::max(worst, static_cast<double>(std::fabs(x - y)));
    }
  }
  return worst;
}

std::vector<float> Floats(const grail::v1::Tensor& t) {
  std::vector<float> out(t.data().size() / 4);
  std::memcpy(out.data(), t.data().data(), out.size() * 4);
  return out;
}

std::unique_ptr<learner::LearnerClient> Client(const ServiceProcess& p) {
  ClientOptions o;
  o.target = p.grpc_address();
  o.timeout = absl::Seconds(120);
  return learner::NewGrpcLearnerClient(o);
}

std::unique_ptr<learner::LearnerClient> GroupClient(const std::vector<std::unique_ptr<ServiceProcess>>& ranks) {
  std::vector<std::shared_ptr<learner::LearnerClient>> clients;
  for (const auto& r : ranks) clients.push_back(Client(*r));
  return learner::NewLearnerGroupClient(std::move(clients));
}

bool Serving(const ServiceProcess& p) {
  ClientOptions o;
  o.target = p.grpc_address();
  auto s = CheckServing(MakeChannel(o).get(), absl::Seconds(5));
  return s.ok() && *s;
}

// One SFT step and three RL steps (policy, KL loss, entropy bonus, critic), two PPO epochs
// each, on 2 ranks and on 1: the parameters agree to within float32 reduction-order noise
// (tolerance 2e-5 absolute on every parameter; about 2e-6 is measured, while the steps move
// parameters by more than 1e-3).
TEST(DataParallelTest, TwoRanksMatchOneRankAfterThreeSteps) {
  auto group = StartLearnerGroup(2, {"--threads=1", "--collective_timeout=30s"});
  ASSERT_TRUE(group.ok()) << group.status();
  auto single_proc = ServiceProcess::Start("grail-learner", {"--threads=1"});
  ASSERT_TRUE(single_proc.ok()) << single_proc.status();
  auto both = GroupClient(*group);
  auto single = Client(**single_proc);
  auto rank1 = Client(*(*group)[1]);

  struct Case {
    const char* policy_loss;
    const char* agg;
    bool lora = false;  // model.peft: the adapters (the weights sent) are compared
  };
  for (const Case& c : {Case{"ppo", "token-mean"}, Case{"gmpo", "seq-mean-token-mean"},
                        Case{"cispo", "seq-mean-token-sum-norm"}, Case{"ppo", "token-mean", true}}) {
    SCOPED_TRACE(absl::StrCat(c.policy_loss, " / ", c.agg, c.lora ? " / lora" : ""));
    grail::v1::RunSpec spec = Spec(c.policy_loss, c.agg);
    if (c.lora) spec.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
    auto init_group = both->InitModel(spec);
    auto init_single = single->InitModel(spec);
    ASSERT_TRUE(init_group.ok()) << init_group.status();
    ASSERT_TRUE(init_single.ok()) << init_single.status();
    auto sft_group = both->SupervisedStep(SftStep(1));
    auto sft_single = single->SupervisedStep(SftStep(1));
    ASSERT_TRUE(sft_group.ok()) << sft_group.status();
    ASSERT_TRUE(sft_single.ok()) << sft_single.status();
    EXPECT_NEAR(sft_group->metrics().at("sft_loss"), sft_single->metrics().at("sft_loss"), 1e-5);
    for (int step = 1; step <= 3; ++step) {
      auto g = both->TrainStep(RlStep(step));
      auto s = single->TrainStep(RlStep(step));
      ASSERT_TRUE(g.ok()) << g.status();
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(g->weights_version() - init_group->weights_version(),
                s->weights_version() - init_single->weights_version());
      // The group's loss is the whole batch's loss, not one shard's.
      EXPECT_NEAR(g->metrics().at("loss"), s->metrics().at("loss"), 1e-4 + 1e-3 * std::fabs(s->metrics().at("loss")));
      EXPECT_NEAR(g->metrics().at("value_loss"), s->metrics().at("value_loss"), 1e-4);
      // AdamW hides a uniformly mis-scaled gradient; the norm of the summed gradient does not.
      const double norm = s->metrics().at("grad_norm");
      EXPECT_NEAR(g->metrics().at("grad_norm"), norm, 1e-4 * norm);
      EXPECT_GE(g->metrics().at("allreduce_seconds"), 0.0);
    }
    auto w_single = single->GetWeights(0);
    auto w_rank0 = both->GetWeights(0);
    auto w_rank1 = rank1->GetWeights(0);
    ASSERT_TRUE(w_single.ok() && w_rank0.ok() && w_rank1.ok());
    // The ranks took identical optimizer steps from identical summed gradients.
    EXPECT_EQ(MaxAbsDiff(w_rank0->blob, w_rank1->blob), 0.0);
    const double diff = MaxAbsDiff(w_rank0->blob, w_single->blob);
    std::cout << c.policy_loss << " / " << c.agg << (c.lora ? " / lora" : "")
              << ": max |2-rank - 1-rank| parameter difference " << diff
              << std::endl;
    EXPECT_LT(diff, 2e-5);  // measured about 2e-6: float32 sums taken in a different order
    // The initial weights moved far more than that (the comparison is not vacuous).
    auto fresh = learner::NewGrpcLearnerClient({(*single_proc)->grpc_address()});
    ASSERT_TRUE(fresh->InitModel(spec).ok());
    auto w_init = fresh->GetWeights(0);
    ASSERT_TRUE(w_init.ok());
    EXPECT_GT(MaxAbsDiff(w_init->blob, w_single->blob), 50 * std::max(diff, 1e-6));
  }
  // The critic trained the same way too: values of a probe batch agree.
  const grail::v1::RunSpec spec = Spec("ppo", "token-mean");
  ASSERT_TRUE(both->InitModel(spec).ok());
  ASSERT_TRUE(single->InitModel(spec).ok());
  for (int step = 1; step <= 3; ++step) {
    ASSERT_TRUE(both->TrainStep(RlStep(step)).ok());
    ASSERT_TRUE(single->TrainStep(RlStep(step)).ok());
  }
  grail::v1::ComputeValuesRequest probe;
  *probe.mutable_input_ids() = Batch(7, 4).input_ids();
  auto v_group = rank1->ComputeValues(probe);
  auto v_single = single->ComputeValues(probe);
  ASSERT_TRUE(v_group.ok() && v_single.ok());
  const auto a = Floats(v_group->values()), b = Floats(v_single->values());
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-3) << i;
}

TEST(DataParallelTest, ABatchSmallerThanTheGroupIsRefusedNamingTheField) {
  auto group = StartLearnerGroup(2, {"--threads=1"});
  ASSERT_TRUE(group.ok()) << group.status();
  auto both = GroupClient(*group);
  ASSERT_TRUE(both->InitModel(Spec("ppo", "token-mean")).ok());
  auto r = both->TrainStep(RlStep(1, /*rows=*/1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("experience.input_ids"));
  // Nothing was sent: the group still works.
  EXPECT_TRUE(both->TrainStep(RlStep(1)).ok());
}

// A rank left alone in a collective (its peer never joins the step) fails after the
// collective timeout, not the library's 30 minutes, and reports NOT_SERVING.
TEST(DataParallelTest, ASilentPeerFailsTheStepWithinTheCollectiveTimeout) {
  auto group = StartLearnerGroup(2, {"--threads=1", "--collective_timeout=3s"});
  ASSERT_TRUE(group.ok()) << group.status();
  auto both = GroupClient(*group);
  ASSERT_TRUE(both->InitModel(Spec("ppo", "token-mean")).ok());
  ASSERT_TRUE(Serving(*(*group)[0]));
  auto rank0 = Client(*(*group)[0]);
  const absl::Time start = absl::Now();
  auto r = rank0->TrainStep(RlStep(1));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("learner group"));
  EXPECT_GE(took, absl::Seconds(2));
  EXPECT_LT(took, absl::Seconds(20));
  EXPECT_FALSE(Serving(*(*group)[0]));
  // Every later call fails the same way, at once.
  EXPECT_EQ(rank0->TrainStep(RlStep(2)).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(rank0->GetWeights(0).status().code(), absl::StatusCode::kUnavailable);
  CommandResult metrics = RunCommand("curl -sf http://" + (*group)[0]->metrics_address() + "/metrics");
  EXPECT_THAT(metrics.output, HasSubstr("grail_learner_group_failures_total 1"));
}

// A peer that dies fails the survivor's step at once; the survivor reports NOT_SERVING.
TEST(DataParallelTest, ADeadPeerFailsTheGroupAndTheSurvivorReportsNotServing) {
  auto group = StartLearnerGroup(2, {"--threads=1", "--collective_timeout=10s"});
  ASSERT_TRUE(group.ok()) << group.status();
  auto both = GroupClient(*group);
  ASSERT_TRUE(both->InitModel(Spec("ppo", "token-mean")).ok());
  ASSERT_TRUE(both->TrainStep(RlStep(1)).ok());
  ASSERT_TRUE((*group)[1]->SignalAndWait(SIGKILL, absl::Seconds(10)).ok());
  const absl::Time start = absl::Now();
  auto r = both->TrainStep(RlStep(2));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  // The survivor's own answer: its collective failed well before the 10 s timeout.
  auto alone = Client(*(*group)[0])->TrainStep(RlStep(2));
  EXPECT_EQ(alone.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(12));
  EXPECT_FALSE(Serving(*(*group)[0]));
}

// Steps 1-2, a checkpoint, step 3 on one group; a fresh group restarted from the checkpoint
// takes step 3 again and lands on the same parameters (the optimizer moments, the step count
// and the weights version come back with the weights).
TEST(DataParallelTest, ARestartedGroupResumesFromTheLastCheckpointExactly) {
  std::string root = ::testing::TempDir() + "grail_dp_XXXXXX";
  ASSERT_NE(mkdtemp(root.data()), nullptr);
  const std::vector<std::string> args = {"--threads=1", "--data_root=" + root};
  const grail::v1::RunSpec spec = Spec("ppo", "token-mean");
  std::string first_run;
  int64_t version_at_checkpoint = -1, version_after = -1;
  {
    auto group = StartLearnerGroup(2, args);
    ASSERT_TRUE(group.ok()) << group.status();
    auto both = GroupClient(*group);
    ASSERT_TRUE(both->InitModel(spec).ok());
    ASSERT_TRUE(both->SupervisedStep(SftStep(1)).ok());
    for (int step = 1; step <= 2; ++step) ASSERT_TRUE(both->TrainStep(RlStep(step)).ok());
    auto saved = both->SaveCheckpoint("ckpt/step-2", R"({"step": 2})");
    ASSERT_TRUE(saved.ok()) << saved.status();
    version_at_checkpoint = both->GetWeights(0)->version;
    auto third = both->TrainStep(RlStep(3));
    ASSERT_TRUE(third.ok());
    version_after = third->weights_version();
    first_run = both->GetWeights(0)->blob;
  }  // both ranks killed
  auto group = StartLearnerGroup(2, args);
  ASSERT_TRUE(group.ok()) << group.status();
  auto both = GroupClient(*group);
  grail::v1::RunSpec resume = spec;
  resume.mutable_model()->clear_config();
  resume.mutable_model()->set_path("ckpt/step-2");
  resume.mutable_trainer()->set_resume(true);
  auto init = both->InitModel(resume);
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_EQ(init->weights_version(), version_at_checkpoint);
  EXPECT_EQ(init->run_state(), R"({"step": 2})");
  auto third = both->TrainStep(RlStep(3));
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->weights_version(), version_after);
  EXPECT_EQ(MaxAbsDiff(first_run, both->GetWeights(0)->blob), 0.0);

  // A new run from the same checkpoint takes its weights only (fresh optimizer), and its
  // step differs: the comparison above is not vacuous.
  auto group_b = StartLearnerGroup(2, args);
  ASSERT_TRUE(group_b.ok()) << group_b.status();
  auto fresh = GroupClient(*group_b);
  resume.mutable_trainer()->set_resume(false);
  auto fresh_init = fresh->InitModel(resume);
  ASSERT_TRUE(fresh_init.ok()) << fresh_init.status();
  EXPECT_TRUE(fresh_init->run_state().empty());
  ASSERT_TRUE(fresh->TrainStep(RlStep(3)).ok());
  EXPECT_GT(MaxAbsDiff(first_run, fresh->GetWeights(0)->blob), 1e-5);
  std::filesystem::remove_all(root);
}

// A run of a tiny model on 1-digit addition (5 warm-up steps, 8 prompts x 4 per step).
grail::v1::RunSpec TinyRun(int total_steps, int checkpoint_every) {
  TinySpecOptions o;
  o.name = "data-parallel";
  o.seed = 3;
  o.kv_heads = 1;
  o.dataset_seed = 7;
  o.sft_steps = 5;
  o.sft_batch = 16;
  o.prompts = 8;
  o.eval_size = 20;
  o.total_steps = total_steps;
  o.checkpoint_every = checkpoint_every;
  return TinySpec(o);
}

// The whole loop on a 2-rank learner, pipelined (max_staleness 1): the coordinator shards
// every supervised and RL batch across the ranks, both ranks train every step, samples after
// the first step are exactly one version old, and the learner corrects for it (TIS).
TEST(DataParallelTest, ARunTrainsOnATwoRankLearnerGroup) {
  LocalClusterOptions options;
  options.learner_ranks = 2;
  options.learner_threads = 1;
  auto cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  grail::v1::RunSpec spec = TinyRun(/*total_steps=*/3, /*checkpoint_every=*/0);
  spec.mutable_trainer()->set_max_staleness(1);
  auto client = (*cluster)->NewRunClient();
  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::StepReport last;
  int rl_steps = 0;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    last = r;
    if (r.phase() != "rl") return;
    ++rl_steps;
    EXPECT_EQ(r.metrics().at("version_lag_max"), r.step() == 1 ? 0 : 1) << "step " << r.step();
    EXPECT_GT(r.metrics().at("tis_weight_mean"), 0) << "step " << r.step();
  }).ok());
  EXPECT_EQ(last.state(), grail::v1::RUN_STATE_SUCCEEDED) << last.message();
  EXPECT_EQ(rl_steps, 3);
  for (const auto& rank : (*cluster)->learners()) {
    CommandResult m = RunCommand("curl -sf http://" + rank->metrics_address() + "/metrics");
    EXPECT_THAT(m.output, HasSubstr("grail_learner_steps_total{kind=\"rl\"} 3"));
    EXPECT_THAT(m.output, HasSubstr("grail_learner_steps_total{kind=\"sft\"} 5"));
    EXPECT_THAT(m.output, HasSubstr("grail_learner_group_world_size 2"));
    EXPECT_THAT(m.output, HasSubstr("grail_learner_allreduce_seconds_count{kind=\"rl\"} 3"));
  }
}

// A rank dies in the middle of a run: the run fails, the survivor reports NOT_SERVING within
// the collective timeout; a restarted group (same addresses) resumes the run from its last
// checkpoint and finishes it.
TEST(DataParallelTest, ARunSurvivesARankDeathByResumingFromItsLastCheckpoint) {
  LocalClusterOptions options;
  options.learner_ranks = 2;
  options.learner_threads = 1;
  options.extra_learner_args = {"--collective_timeout=5s"};
  // No supervisor restarts the rank here: the run waits --recovery_timeout for the group to
  // serve again, then fails with the rank's error (faults_test covers the restarted case).
  options.extra_coordinator_args = {"--recovery_timeout=3s"};
  auto cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const grail::v1::RunSpec spec = TinyRun(/*total_steps=*/40, /*checkpoint_every=*/2);
  auto client = (*cluster)->NewRunClient();
  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  auto& ranks = (*cluster)->learners();
  const std::vector<std::string> addresses = {ranks[0]->grpc_address(), ranks[1]->grpc_address()};
  int last_checkpoint = -1;
  grail::v1::StepReport last;
  bool killed = false;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    last = r;
    if (r.phase() == "checkpoint") last_checkpoint = static_cast<int>(r.step());
    if (!killed && r.phase() == "checkpoint" && r.step() == 4) {
      killed = true;
      ASSERT_TRUE(ranks[1]->SignalAndWait(SIGKILL, absl::Seconds(10)).ok());
    }
  }).ok());
  ASSERT_TRUE(killed);
  EXPECT_EQ(last.state(), grail::v1::RUN_STATE_FAILED);
  EXPECT_THAT(last.message(), HasSubstr("learner"));
  ASSERT_GE(last_checkpoint, 4);
  ASSERT_LT(last_checkpoint, 40);
  EXPECT_FALSE(Serving(*ranks[0]));

  // The orchestrator's part: restart the whole group where it was.
  ranks.clear();
  auto restarted = StartLearnerGroup(2, {"--threads=1", "--data_root=" + (*cluster)->data_root()}, 0, addresses);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  ranks = std::move(*restarted);
  grail::v1::RunSpec resume = spec;
  resume.mutable_model()->clear_config();
  resume.mutable_model()->set_path(absl::StrFormat("%s/step-%06d", *id, last_checkpoint));
  resume.mutable_trainer()->set_resume(true);
  auto resumed_id = client->Submit(resume);
  ASSERT_TRUE(resumed_id.ok()) << resumed_id.status();
  std::vector<int> steps;
  ASSERT_TRUE(client->Watch(*resumed_id, [&](const grail::v1::StepReport& r) {
    last = r;
    if (r.phase() == "rl") steps.push_back(static_cast<int>(r.step()));
  }).ok());
  EXPECT_EQ(last.state(), grail::v1::RUN_STATE_SUCCEEDED) << last.message();
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front(), last_checkpoint + 1);
  EXPECT_EQ(steps.back(), 40);
  EXPECT_EQ(steps.size(), static_cast<size_t>(40 - last_checkpoint));
}

}  // namespace
}  // namespace grail::testing
