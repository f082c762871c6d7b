#include "coordinator/rl_loop.h"

#include <cmath>
#include <set>

#include "algo/objectives.h"

#include "coordinator/preference_batch.h"
#include "coordinator/testing/fake_clients.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

class RlLoopUnitTest : public ::testing::Test {
 protected:
  // Fresh fakes; tests that need a second run call it again.
  void SetUp() override {
    actors_.clear();
    for (int i = 0; i < 2; ++i) actors_.push_back(std::make_shared<testing::FakeActorClient>());
    learner_ = std::make_shared<testing::FakeLearnerClient>();
    clients_.actors = {actors_[0], actors_[1]};
    reward_ = std::make_shared<testing::FakeRewardClient>();
    clients_.reward = reward_;
    reference_ = std::make_shared<testing::FakeReferenceClient>();
    clients_.reference = reference_;
    clients_.recovery_timeout = absl::Seconds(3);
    clients_.clock = &clock_;  // retries and recovery waits take no real time
    clients_.learner = learner_;
    spec_.set_seed(5);
    spec_.mutable_algorithm()->set_group_size(4);
    spec_.mutable_algorithm()->set_dynamic_sampling(true);
    spec_.mutable_sampling()->set_max_new_tokens(4);
    spec_.mutable_trainer()->set_total_steps(3);
    spec_.mutable_trainer()->set_prompts_per_step(6);
    spec_.mutable_trainer()->set_sft_steps(2);
  }

  absl::Status RunLoop(std::vector<grail::v1::StepReport>* reports, std::map<std::string, double>* summary) {
    ArithmeticOptions o;
    o.heldout_size = 20;
    auto splits = MakeArithmeticSplits(o);
    RlLoop loop("run-test", spec_, std::move(*splits), clients_, &metrics_,
                [&](const grail::v1::StepReport& r) { reports->push_back(r); }, &cancelled_);
    absl::Status s = loop.Run();
    *summary = loop.summary();
    return s;
  }

  // The built-in task's splits with its own preference pairs (train and held-out).
  static Splits PreferenceSplits() {
    ArithmeticOptions o;
    o.heldout_size = 20;
    Splits splits = *MakeArithmeticSplits(o);
    auto tok = std::move(*tokenizer::NewTokenizer("char"));
    splits.pairs = *ArithmeticPairs(splits.train, *tok, 1);
    splits.heldout_pairs = *ArithmeticPairs(splits.heldout, *tok, 2);
    return splits;
  }

  prometheus::Registry registry_;
  CoordinatorMetrics metrics_{registry_};
  std::atomic<bool> cancelled_{false};
  std::vector<std::shared_ptr<testing::FakeActorClient>> actors_;
  std::shared_ptr<testing::FakeLearnerClient> learner_;
  std::shared_ptr<testing::FakeRewardClient> reward_;
  std::shared_ptr<testing::FakeReferenceClient> reference_;
  FakeClock clock_;
  ServiceClients clients_;
  grail::v1::RunSpec spec_;
};

// Probes are recorded at the start (with each probe's greedy response), every `every` steps
// of the warm-up and of the run, and at each one's end, before the step's checkpoint.
TEST_F(RlLoopUnitTest, ProbesAreRecordedAtTheStartEveryKStepsAndAtTheEnd) {
  spec_.mutable_probes()->set_every(2);
  spec_.mutable_trainer()->set_sft_steps(3);
  spec_.mutable_trainer()->set_total_steps(4);
  spec_.mutable_trainer()->set_checkpoint_every(2);
  Splits splits = PreferenceSplits();
  auto tok = std::move(*tokenizer::NewTokenizer("char"));
  splits.probes = *ArithmeticProbes(splits.train, splits.pairs, *tok, 3);
  std::vector<grail::v1::StepReport> reports;
  RlLoop loop("run-probes", spec_, splits, clients_, &metrics_,
              [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
  ASSERT_TRUE(loop.Run().ok());
  std::vector<int> seen;  // the steps recorded
  for (size_t i = 0; i < reports.size(); ++i) {
    if (reports[i].phase() != "probe") continue;
    seen.push_back(static_cast<int>(reports[i].step()));
    // 3 probes x (chosen, rejected, 2 + 2 paraphrases, unrelated, greedy).
    ASSERT_EQ(reports[i].probes_size(), 3 * 8);
    EXPECT_EQ(reports[i].probes(7).response_type(), "greedy");
    double chosen = 0;  // the fake learner's -0.5 per token, averaged over the 3 probes
    for (const auto& p : reports[i].probes()) chosen += p.response_type() == "chosen" ? -0.5 * p.token_log_probs_size() / 3 : 0;
    EXPECT_NEAR(reports[i].metrics().at("probe_chosen_log_prob"), chosen, 1e-9);
    EXPECT_NEAR(reports[i].metrics().at("probe_rejected_argmax_prob"), std::exp(-0.25), 1e-6);
  }
  // Start; warm-up steps 2 and 3 (its end); RL steps 2 and 4, each before its checkpoint.
  EXPECT_EQ(seen, (std::vector<int>{0, 2, 3, 2, 4}));
  EXPECT_EQ(learner_->score_calls, 5);
  size_t checkpoint_after_probe = 0;
  for (size_t i = 1; i < reports.size(); ++i) {
    checkpoint_after_probe += reports[i].phase() == "checkpoint" && reports[i - 1].phase() == "probe";
  }
  EXPECT_EQ(checkpoint_after_probe, 3u);  // the warm-up's end (step 0), steps 2 and 4
}

// The token ids of each trained row, to check that no sample reaches the learner twice.
std::multiset<std::string> TrainedRows(const std::vector<grail::v1::TrainStepRequest>& steps) {
  std::multiset<std::string> rows;
  for (const auto& s : steps) {
    const auto& ids = s.experience().input_ids();
    const int64_t B = ids.shape(0), T = ids.shape(1);
    for (int64_t b = 0; b < B; ++b) rows.insert(ids.data().substr(b * T * 8, T * 8));
  }
  return rows;
}

// A preference run: the warm-up, then trainer.total_steps preference steps of
// prompts_per_step pairs (chosen rows, then rejected), with the reference's summed
// log-probs where the objective needs them, and held-out preference evaluations.
TEST_F(RlLoopUnitTest, PreferenceRunsTrainOnPairsWithTheReference) {
  for (auto objective : {grail::v1::PREFERENCE_OBJECTIVE_DPO, grail::v1::PREFERENCE_OBJECTIVE_SIMPO,
                         grail::v1::PREFERENCE_OBJECTIVE_KTO}) {
    SetUp();
    spec_.mutable_preference()->set_objective(objective);
    std::vector<grail::v1::StepReport> reports;
    RlLoop loop("run-pref", spec_, PreferenceSplits(), clients_, &metrics_,
                [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
    ASSERT_TRUE(loop.Run().ok()) << objective;
    EXPECT_TRUE(learner_->steps().empty()) << "a preference run takes no RL steps";
    const bool kto = objective == grail::v1::PREFERENCE_OBJECTIVE_KTO;
    int train = 0, eval = 0;
    for (const auto& r : learner_->preference_requests()) {
      if (r.eval_only()) {
        ++eval;
        EXPECT_EQ(r.input_ids().shape(0), 2 * 20);  // every held-out pair, as pairs
        EXPECT_FALSE(r.has_labels());
        EXPECT_EQ(r.has_ref_log_probs(), objective != grail::v1::PREFERENCE_OBJECTIVE_SIMPO);  // implicit rewards
        continue;
      }
      ++train;
      EXPECT_EQ(r.step(), train);
      EXPECT_EQ(r.input_ids().shape(0), (kto ? 4 : 2) * 6);  // kto: desirable, undesirable, mismatched twins
      EXPECT_EQ(r.has_labels(), kto);
      EXPECT_EQ(r.has_ref_log_probs(), objective != grail::v1::PREFERENCE_OBJECTIVE_SIMPO);
    }
    EXPECT_EQ(train, 3) << objective;
    EXPECT_EQ(eval, 2) << objective;  // before and after
    int preference_reports = 0;
    for (const auto& r : reports) {
      if (r.phase() == "preference") {
        ++preference_reports;
        EXPECT_TRUE(r.metrics().count("loss"));
      }
      if (r.phase() == "eval") EXPECT_TRUE(r.metrics().count("heldout_preference_accuracy"));
    }
    EXPECT_EQ(preference_reports, 3);
    EXPECT_EQ(loop.summary().at("heldout_preference_accuracy_after"), 0.5);  // the fake's evaluation
  }
}

// The reference is frozen within a run: every sequence is scored by it once, and later
// epochs over the same pairs (and the later held-out evaluation) take the kept sums.
TEST_F(RlLoopUnitTest, PreferenceRunsScoreEachSequenceWithTheReferenceOnce) {
  spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  Splits splits = PreferenceSplits();
  splits.pairs.resize(6);  // one step's worth (prompts_per_step 6): steps 2 and 3 repeat them
  std::vector<grail::v1::StepReport> reports;
  RlLoop loop("run-pref-cache", spec_, std::move(splits), clients_, &metrics_,
              [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
  ASSERT_TRUE(loop.Run().ok());
  std::vector<double> cached;
  for (const auto& r : reports) {
    if (r.phase() == "preference") cached.push_back(r.metrics().at("reference_cached"));
  }
  ASSERT_EQ(cached.size(), 3u);
  EXPECT_LT(cached[0], 1.0);
  EXPECT_EQ(cached[1], 1.0);
  EXPECT_EQ(cached[2], 1.0);
  // Every request still carries the reference's sums (-1 per completion token here).
  for (const auto& r : learner_->preference_requests()) EXPECT_TRUE(r.has_ref_log_probs());
  // Calls: the held-out pairs once (the second evaluation is cached) and the training
  // pairs once, at most one call per batch of new sequences.
  EXPECT_LE(reference_->calls.load(), 2);
}

// preference.sampled_pairs: the starting policy's samples of the training prompts, scored by
// the task's verifier, become pairs (best chosen, worst rejected) alongside the dataset's;
// prompts whose samples all score the same give none.
TEST_F(RlLoopUnitTest, SampledPairsComeFromTheStartingPolicysScoredSamples) {
  spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_samples(4);
  Splits splits = PreferenceSplits();
  splits.pairs.clear();  // sampled pairs alone
  std::vector<grail::v1::StepReport> reports;
  {
    RlLoop loop("run-pref", spec_, splits, clients_, &metrics_,
                [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
    ASSERT_TRUE(loop.Run().ok());
  }
  const grail::v1::StepReport* sampled = nullptr;
  for (const auto& r : reports) {
    if (r.phase() == "sampled_pairs") sampled = &r;
  }
  ASSERT_NE(sampled, nullptr);
  // The fake actor answers right on even sample indices and wrong on odd ones.
  EXPECT_EQ(sampled->metrics().at("sampled_pairs"), 10);
  EXPECT_EQ(sampled->metrics().at("sampled_prompts_tied"), 0);
  EXPECT_EQ(sampled->metrics().at("sampled_accuracy"), 0.5);
  int train = 0;
  for (const auto& r : learner_->preference_requests()) train += r.eval_only() ? 0 : 1;
  EXPECT_EQ(train, 3);

  // all_pairs: each prompt's distinct responses A+B (samples 0 and 2), A+B+1 and A+B+3 give
  // the two pairs whose scores differ; the two wrong answers tie and give none.
  SetUp();
  spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_samples(4);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_all_pairs(true);
  {
    reports.clear();
    RlLoop loop("run-pref", spec_, splits, clients_, &metrics_,
                [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
    ASSERT_TRUE(loop.Run().ok());
  }
  double all_pairs = -1;
  for (const auto& r : reports) {
    if (r.phase() == "sampled_pairs") all_pairs = r.metrics().at("sampled_pairs");
  }
  EXPECT_EQ(all_pairs, 20);

  // Every sample right: no pair, and the run says why it cannot train.
  SetUp();
  spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_samples(4);
  for (auto& a : actors_) a->all_correct = true;
  RlLoop loop("run-pref", spec_, splits, clients_, &metrics_, [](const grail::v1::StepReport&) {}, &cancelled_);
  absl::Status s = loop.Run();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("preference.sampled_pairs"), std::string::npos) << s;
}

// preference.sampled_pairs.policy: the samples come from that checkpoint, loaded through the
// learner into the actors before the run's own model (here a reward model) is initialised.
TEST_F(RlLoopUnitTest, SampledPairsCanComeFromAnotherPolicy) {
  spec_.mutable_model()->set_path("rm-start");
  spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_samples(4);
  spec_.mutable_preference()->mutable_sampled_pairs()->set_policy("policy-ckpt");
  spec_.mutable_trainer()->set_sft_steps(0);
  Splits splits = PreferenceSplits();
  std::vector<grail::v1::StepReport> reports;
  {
    RlLoop loop("run-rm", spec_, splits, clients_, &metrics_,
                [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
    absl::Status s = loop.Run();
    ASSERT_TRUE(s.ok()) << s;
  }
  const auto inits = learner_->init_requests();
  ASSERT_GE(inits.size(), 2u);
  // First the policy, as a plain model (no value head, no critic), then the run's own.
  EXPECT_EQ(inits[0].spec().model().path(), "policy-ckpt");
  EXPECT_EQ(inits[0].spec().preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED);
  EXPECT_FALSE(inits[0].spec().critic().enabled());
  EXPECT_EQ(inits[1].spec().model().path(), "rm-start");
  EXPECT_EQ(inits[1].spec().preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL);
  // Every sampled pair's generation ran on the policy's weights (the first init's version),
  // and the pairs were made once.
  int sampled_reports = 0;
  for (const auto& r : reports) {
    if (r.phase() != "sampled_pairs") continue;
    ++sampled_reports;
    EXPECT_EQ(r.metrics().at("sampled_pairs"), 10);
    EXPECT_EQ(r.metrics().at("dataset_pairs"), static_cast<double>(splits.pairs.size()));
  }
  EXPECT_EQ(sampled_reports, 1);
  int64_t policy_generations = 0;
  for (const auto& actor : actors_) {
    for (int64_t v : actor->generate_versions()) policy_generations += v == 0;
  }
  EXPECT_GE(policy_generations, 1);
  int train = 0;
  for (const auto& r : learner_->preference_requests()) train += r.eval_only() ? 0 : 1;
  EXPECT_EQ(train, 3);
}

TEST(PairsFromGroupTest, OnePairOrEveryDistinctPairWhoseScoresDiffer) {
  Group g;
  for (int i = 0; i < 5; ++i) {
    grail::v1::Sample s;
    s.add_prompt_token_ids(1);
    s.add_prompt_token_ids(7);
    s.add_token_ids(i == 4 ? 13 : 10 + i);  // sample 4 repeats sample 3's response
    g.samples.push_back(s);
  }
  g.scores = {0.5, 1.0, 0.0, 1.0, 1.0};
  // One pair: the first best chosen, the first worst rejected.
  auto one = PairsFromGroup(g, /*all_pairs=*/false);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].prompt, (std::vector<int>{1, 7}));
  EXPECT_EQ(one[0].chosen, (std::vector<int>{11}));
  EXPECT_EQ(one[0].rejected, (std::vector<int>{12}));
  // Every pair of the four distinct responses whose scores differ (11 and 13 tie), the
  // higher-scored chosen; the repeat of 13 adds nothing.
  std::vector<std::pair<int, int>> all;
  for (const auto& p : PairsFromGroup(g, /*all_pairs=*/true)) all.push_back({p.chosen[0], p.rejected[0]});
  EXPECT_EQ(all, (std::vector<std::pair<int, int>>{{11, 10}, {10, 12}, {13, 10}, {11, 12}, {13, 12}}));
  g.scores = {0.5, 0.5, 0.5, 0.5, 0.5};
  EXPECT_TRUE(PairsFromGroup(g, false).empty());
  EXPECT_TRUE(PairsFromGroup(g, true).empty());
  g.scores = {1.0};  // scores and samples disagree
  EXPECT_TRUE(PairsFromGroup(g, false).empty());
  EXPECT_TRUE(PairsFromGroup(g, true).empty());
}

// With dataset.sft_path rows, the warm-up trains on them and reports the held-out rows'
// loss (eval-only supervised steps) at its end.
TEST_F(RlLoopUnitTest, WarmupTrainsOnSupervisedRowsAndReportsTheirHeldOutLoss) {
  ArithmeticOptions o;
  o.heldout_size = 20;
  auto splits = MakeArithmeticSplits(o);
  ASSERT_TRUE(splits.ok());
  for (int i = 0; i < 10; ++i) splits->sft.push_back(SupervisedRow{{1, 10 + i, 2}, {0, 1, 1}});
  for (int i = 0; i < 3; ++i) splits->sft_heldout.push_back(SupervisedRow{{1, 30 + i, 31, 2}, {0, 1, 1, 1}});
  std::vector<grail::v1::StepReport> reports;
  RlLoop loop("run-sft", spec_, std::move(*splits), clients_, &metrics_,
              [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
  ASSERT_TRUE(loop.Run().ok());
  int train = 0, eval = 0;
  for (const auto& r : learner_->supervised_requests()) {
    const int64_t T = r.input_ids().shape(1);
    if (r.eval_only()) {
      ++eval;
      EXPECT_EQ(r.input_ids().shape(0), 3);
      EXPECT_EQ(T, 4);
    } else {
      ++train;
      EXPECT_EQ(T, 3);  // the supervised rows, not prompt + answer of the RL rows
    }
  }
  EXPECT_EQ(train, 2);  // trainer.sft_steps
  EXPECT_EQ(eval, 1);   // after the last warm-up step
  EXPECT_EQ(loop.summary().at("sft_heldout_loss"), 2.0);  // the fake's eval loss
  bool reported = false;
  for (const auto& r : reports) reported |= r.phase() == "sft_eval" && r.metrics().count("sft_heldout_loss");
  EXPECT_TRUE(reported);
}

TEST_F(RlLoopUnitTest, TrainsEveryStepWithFullBatchesAndEvaluates) {
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  auto steps = learner_->steps();
  ASSERT_EQ(steps.size(), 3u);
  for (const auto& s : steps) EXPECT_EQ(s.experience().input_ids().shape(0), 6 * 4);
  // Even-index samples are right: accuracy is exactly one half in training.
  int rl = 0;
  for (const auto& r : reports) {
    if (r.phase() != "rl") continue;
    ++rl;
    EXPECT_DOUBLE_EQ(r.metrics().at("accuracy"), 0.5);
    EXPECT_EQ(r.metrics().at("filtered_group_ratio"), 0);
  }
  EXPECT_EQ(rl, 3);
  // Advantages: +-1/(std+eps) with std of {1,0,1,0} on response tokens only.
  const auto& e = steps[0].experience();
  const float* adv = reinterpret_cast<const float*>(e.advantages().data().data());
  const float* mask = reinterpret_cast<const float*>(e.response_mask().data().data());
  for (int64_t i = 0; i < e.advantages().shape(0) * e.advantages().shape(1); ++i) {
    if (mask[i] == 0) {
      EXPECT_EQ(adv[i], 0);
    } else {
      EXPECT_NEAR(std::fabs(adv[i]), 0.5 / std::sqrt(1.0 / 3.0), 1e-4);
    }
  }
  EXPECT_EQ(actors_[0]->version.load(), actors_[1]->version.load());
  EXPECT_EQ(actors_[0]->version.load(), 2 + 3);  // sft steps + rl steps after version 0
}

// algorithm.kl_metric_every: with no KL term training, the reference scores step 1 and
// every k-th step only; the steps between carry no reference log-probs and report no
// behaviour-reference KL. A KL term in the loss needs it every step.
TEST_F(RlLoopUnitTest, TheReferenceSkipsStepsWhenOnlyTheKlMetricNeedsIt) {
  spec_.mutable_algorithm()->set_kl_metric_every(2);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  auto steps = learner_->steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].experience().has_ref_log_probs());
  EXPECT_TRUE(steps[1].experience().has_ref_log_probs());
  EXPECT_FALSE(steps[2].experience().has_ref_log_probs());
  std::vector<bool> measured;
  for (const auto& r : reports) {
    if (r.phase() == "rl") measured.push_back(r.metrics().count("kl_behavior_reference") > 0);
  }
  EXPECT_EQ(measured, (std::vector<bool>{true, true, false}));
  const int skipping_calls = reference_->calls.load();

  SetUp();
  spec_.mutable_algorithm()->set_kl_metric_every(2);
  spec_.mutable_algorithm()->set_kl_coef(0.01f);
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  for (const auto& step : learner_->steps()) EXPECT_TRUE(step.experience().has_ref_log_probs());
  EXPECT_EQ(reference_->calls.load(), skipping_calls + 1);
}

TEST_F(RlLoopUnitTest, EveryGroupRelativeEstimatorFeedsTheLearner) {
  std::map<std::string, std::string> first_advantages;  // estimator -> bytes of step 1
  for (const char* estimator : {"grpo", "dr_grpo", "rloo", "reinforce_pp", "gfpo"}) {
    SetUp();
    spec_.mutable_algorithm()->set_advantage_estimator(*algo::FromSpecName<grail::v1::AdvantageEstimator>(estimator));
    spec_.mutable_algorithm()->set_gfpo_k(2);
    std::vector<grail::v1::StepReport> reports;
    std::map<std::string, double> summary;
    ASSERT_TRUE(RunLoop(&reports, &summary).ok()) << estimator;
    auto steps = learner_->steps();
    ASSERT_EQ(steps.size(), 3u) << estimator;
    const auto& e = steps[0].experience();
    const float* adv = reinterpret_cast<const float*>(e.advantages().data().data());
    const float* mask = reinterpret_cast<const float*>(e.response_mask().data().data());
    int64_t nonzero_rows = 0;
    const int64_t B = e.advantages().shape(0), T = e.advantages().shape(1);
    for (int64_t b = 0; b < B; ++b) {
      bool any = false;
      for (int64_t t = 0; t < T; ++t) {
        ASSERT_TRUE(std::isfinite(adv[b * T + t]));
        if (mask[b * T + t] == 0) EXPECT_EQ(adv[b * T + t], 0) << estimator;
        any |= adv[b * T + t] != 0;
      }
      nonzero_rows += any;
    }
    // gfpo keeps 2 of each group of 4 (the rest get 0); the others weigh every row.
    EXPECT_EQ(nonzero_rows, std::string(estimator) == "gfpo" ? B / 2 : B) << estimator;
    first_advantages[estimator] = e.advantages().data();
  }
  // The same samples give each estimator its own advantages (the dispatch reaches each one).
  for (const auto& [a, bytes_a] : first_advantages) {
    for (const auto& [b, bytes_b] : first_advantages) {
      if (a < b) EXPECT_NE(bytes_a, bytes_b) << a << " and " << b;
    }
  }
}

TEST(KlControllerTest, FixedAndAdaptive) {
  algo::KlController fixed(0.1, 0, 100);
  fixed.Update(5.0, 50);
  EXPECT_DOUBLE_EQ(fixed.value(), 0.1);
  algo::KlController adaptive(0.1, 0.5, 100);
  adaptive.Update(1.0, 50);  // twice the target: error clipped to +0.2, times 50/100
  EXPECT_DOUBLE_EQ(adaptive.value(), 0.1 * 1.1);
  adaptive.Update(0.45, 100);  // 10% under: -0.1
  EXPECT_NEAR(adaptive.value(), 0.1 * 1.1 * 0.9, 1e-12);
}

TEST_F(RlLoopUnitTest, KlInRewardAdaptsItsCoefficient) {
  // Fake behaviour log-probs are -0.5 and reference ones -1: k1 = 0.5 on every token,
  // above the 0.1 target, so the coefficient grows each step.
  spec_.mutable_algorithm()->set_use_kl_in_reward(true);
  spec_.mutable_algorithm()->set_kl_in_reward_coef(0.05);
  spec_.mutable_algorithm()->set_kl_target(0.1);
  spec_.mutable_algorithm()->set_kl_horizon(100);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  std::vector<double> coefs;
  for (const auto& r : reports) {
    if (r.phase() != "rl") continue;
    EXPECT_DOUBLE_EQ(r.metrics().at("kl_behavior_reference"), 0.5);
    coefs.push_back(r.metrics().at("kl_in_reward_coef"));
  }
  ASSERT_EQ(coefs.size(), 3u);
  EXPECT_NEAR(coefs[0], 0.05, 1e-7);  // a float in the spec
  EXPECT_NEAR(coefs[1], 0.05 * (1 + 0.2 * 24 / 100.0), 1e-7);
  EXPECT_GT(coefs[2], coefs[1]);
}

TEST_F(RlLoopUnitTest, GaeSendsReturnsAndValuesAndPretrainsTheCritic) {
  spec_.mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
  spec_.mutable_critic()->set_enabled(true);
  spec_.mutable_trainer()->set_value_pretrain_steps(2);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  auto steps = learner_->steps();
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_TRUE(steps[0].critic_only());
  EXPECT_TRUE(steps[1].critic_only());
  EXPECT_FALSE(steps[2].critic_only());
  for (const auto& s : steps) {
    const auto& e = s.experience();
    ASSERT_TRUE(e.has_returns() && e.has_values());
    const int64_t n = e.returns().shape(0) * e.returns().shape(1);
    const float* ret = reinterpret_cast<const float*>(e.returns().data().data());
    const float* val = reinterpret_cast<const float*>(e.values().data().data());
    const float* mask = reinterpret_cast<const float*>(e.response_mask().data().data());
    for (int64_t i = 0; i < n; ++i) {
      if (mask[i] == 0) {
        EXPECT_EQ(ret[i], 0);
        continue;
      }
      EXPECT_FLOAT_EQ(val[i], 0.25f);
      // gamma 1 and an outcome reward: Monte-Carlo returns (pretraining, lambda 1) and
      // lambda_critic 1 both give the final score on every response token.
      EXPECT_TRUE(ret[i] == 0.0f || ret[i] == 1.0f) << ret[i];
    }
  }
  // The policy version moved only on the last step.
  std::vector<int64_t> versions;
  for (const auto& r : reports) {
    if (r.phase() == "rl") versions.push_back(r.policy_version());
  }
  ASSERT_EQ(versions.size(), 3u);
  EXPECT_EQ(versions[0], versions[1]);
  EXPECT_EQ(versions[2], versions[1] + 1);
}

TEST_F(RlLoopUnitTest, CheckpointsEveryKStepsAndAtTheEnd) {
  spec_.mutable_trainer()->set_total_steps(5);
  spec_.mutable_trainer()->set_checkpoint_every(2);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  // Step 0 holds the weights RL starts from: a resumed run restores the reference from it.
  EXPECT_THAT(learner_->checkpoints(),
              ::testing::ElementsAre("run-test/step-000000", "run-test/step-000002", "run-test/step-000004",
                                     "run-test/step-000005"));
  EXPECT_EQ(summary["last_checkpoint_step"], 5);
}

// A run resumed from its step-2 checkpoint trains steps 3-5 on exactly the prompts, in the
// same order, that the uninterrupted run trained; the reference gets the step-0 weights.
// A resumed preference run continues with the same pairs, in the same order, after the
// checkpoint's step; so does one whose sampled pairs come from another policy
// (preference.sampled_pairs.policy), which samples that policy again and reports nothing new.
TEST_F(RlLoopUnitTest, AResumedPreferenceRunContinuesWithTheSamePairs) {
  for (const std::string policy : {"", "policy-ckpt"}) {
    SetUp();
    spec_.clear_model();
    spec_.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
    if (!policy.empty()) {
      spec_.mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
      spec_.mutable_preference()->mutable_sampled_pairs()->set_samples(4);
      spec_.mutable_preference()->mutable_sampled_pairs()->set_policy(policy);
    }
    spec_.mutable_trainer()->set_total_steps(5);
    spec_.mutable_trainer()->set_checkpoint_every(2);
    spec_.mutable_trainer()->set_resume(false);
    int sampled_reports = 0;
    auto run = [&]() {
      std::vector<grail::v1::StepReport> reports;
      RlLoop loop("run-pref", spec_, PreferenceSplits(), clients_, &metrics_,
                  [&](const grail::v1::StepReport& r) { reports.push_back(r); }, &cancelled_);
      absl::Status s = loop.Run();
      for (const auto& r : reports) sampled_reports += r.phase() == "sampled_pairs";
      return std::make_pair(s, loop.summary());
    };
    auto trained = [&]() {
      std::vector<grail::v1::PreferenceStepRequest> out;
      for (const auto& r : learner_->preference_requests()) {
        if (!r.eval_only()) out.push_back(r);
      }
      return out;
    };
    ASSERT_TRUE(run().first.ok());
    const auto full = trained();
    ASSERT_EQ(full.size(), 5u);
    spec_.mutable_model()->set_path("run-pref/step-000002");
    spec_.mutable_trainer()->set_resume(true);
    auto [status, summary] = run();
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(summary["resumed_after_step"], 2);
    EXPECT_EQ(sampled_reports, policy.empty() ? 0 : 1) << policy;  // the first run's only
    const auto all = trained();
    ASSERT_EQ(all.size(), 8u);  // 5 + steps 3, 4, 5 again
    for (int i = 0; i < 3; ++i) {
      EXPECT_EQ(all[5 + i].step(), full[2 + i].step());
      EXPECT_EQ(all[5 + i].input_ids().data(), full[2 + i].input_ids().data())
          << "step " << full[2 + i].step() << ", policy '" << policy << "'";
    }
    if (!policy.empty()) {
      // The resumed run loaded the policy again (before its own checkpoint) to sample it.
      int policy_inits = 0;
      for (const auto& r : learner_->init_requests()) policy_inits += r.spec().model().path() == policy;
      EXPECT_EQ(policy_inits, 2);
    }
  }
}

TEST_F(RlLoopUnitTest, AResumedRunContinuesWithTheSameDataExactly) {
  spec_.mutable_trainer()->set_total_steps(5);
  spec_.mutable_trainer()->set_checkpoint_every(2);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  const auto full = learner_->steps();
  ASSERT_EQ(full.size(), 5u);

  grail::v1::RunSpec resume = spec_;
  resume.mutable_model()->set_path("run-test/step-000002");
  resume.mutable_trainer()->set_resume(true);
  spec_ = resume;
  reports.clear();
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(summary["resumed_after_step"], 2);
  const auto all = learner_->steps();
  ASSERT_EQ(all.size(), 8u);  // 5 + steps 3, 4, 5 again
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(all[5 + i].step(), full[2 + i].step());
    EXPECT_EQ(all[5 + i].experience().input_ids().data(), full[2 + i].experience().input_ids().data())
        << "step " << full[2 + i].step();
  }
  // No supervised warm-up on resume; the reference came from the step-0 checkpoint, then
  // the learner went back to the step-2 one, above every version the actors hold.
  std::vector<std::string> paths;
  for (const auto& r : learner_->init_requests()) paths.push_back(r.spec().model().path());
  EXPECT_THAT(paths, ::testing::ElementsAre("", "run-test/step-000002", "run-test/step-000000",
                                            "run-test/step-000002"));
  EXPECT_GT(learner_->init_requests().back().min_weights_version(), 0);
  int sft_reports = 0;
  for (const auto& r : reports) sft_reports += r.phase() == "sft";
  EXPECT_EQ(sft_reports, 0);

  // Without a checkpoint's run state, resume is refused naming the field.
  resume.mutable_model()->set_path("nowhere");
  spec_ = resume;
  absl::Status refused = RunLoop(&reports, &summary);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), ::testing::HasSubstr("trainer.resume"));
}

TEST_F(RlLoopUnitTest, FailedActorCallIsRetriedWithoutDoubleCounting) {
  actors_[0]->fail_after = 3;  // emits three samples, then the stream breaks, every call
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  auto steps = learner_->steps();
  ASSERT_EQ(steps.size(), 3u);
  // Every call to actor 0 broke after three samples (those were dropped) and its chunk was
  // redone by actor 1.
  EXPECT_GT(actors_[0]->generate_calls.load(), 0);
  EXPECT_EQ(actors_[0]->failed_calls.load(), actors_[0]->generate_calls.load());
  EXPECT_GE(actors_[1]->generate_calls.load(), actors_[0]->generate_calls.load());
  // Within a group of four the two right answers (g = 0, 2) are the same row and the wrong
  // ones (A+B+1, A+B+3) differ, so 18 groups hold exactly 3 * 18 distinct rows; a sample
  // counted twice would change the total or the per-row counts.
  auto rows = TrainedRows(steps);
  EXPECT_EQ(rows.size(), 3u * 6 * 4);
  std::set<std::string> distinct(rows.begin(), rows.end());
  EXPECT_EQ(distinct.size(), 3u * 6 * 3);
  for (const auto& row : distinct) EXPECT_LE(rows.count(row), 2u);
}

TEST_F(RlLoopUnitTest, UniformGroupsAreFilteredAndTheStepIsReportedUnderfilled) {
  for (auto& a : actors_) a->all_correct = true;
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_TRUE(learner_->steps().empty());  // nothing informative to train on
  int rl = 0;
  for (const auto& r : reports) {
    if (r.phase() != "rl") continue;
    ++rl;
    EXPECT_EQ(r.metrics().at("batch_underfilled"), 1);
    EXPECT_EQ(r.metrics().at("filtered_group_ratio"), 1);
    EXPECT_EQ(r.metrics().at("samples_generated"), r.metrics().at("samples_filtered"));
  }
  EXPECT_EQ(rl, 3);
}

TEST_F(RlLoopUnitTest, EveryActorFailingEndsTheRunWithTheReason) {
  for (auto& a : actors_) a->fail_after = 0;
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  absl::Status s = RunLoop(&reports, &summary);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("every actor failed"));
}

TEST_F(RlLoopUnitTest, TransientScorerFailuresAreRetriedOthersAreNot) {
  reward_->fail_next = 2;  // two UNAVAILABLE answers, then the scorer is back
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(learner_->steps().size(), 3u);

  SetUp();
  reward_->failure = absl::FailedPreconditionError("fake reward: refused");
  reward_->fail_next = 1;
  reports.clear();
  absl::Status s = RunLoop(&reports, &summary);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("reward: fake reward: refused"));
  EXPECT_EQ(reward_->calls.load(), 1);  // not retried

  SetUp();
  reward_->fail_next = 3;  // down past every retry, back within recovery_timeout: waited for
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(learner_->steps().size(), 3u);

  SetUp();
  reward_->fail_next = 1 << 30;  // away for good: the run fails after recovery_timeout and says why
  const absl::Duration slept = clock_.slept();
  absl::Status down = RunLoop(&reports, &summary);
  EXPECT_EQ(down.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(down.message()), ::testing::HasSubstr("not recovered within 3s"));
  EXPECT_GE(clock_.slept() - slept, absl::Seconds(3));  // the recovery bound, on the injected clock
}

// Held-out accuracy is the fraction of the held-out problems the greedy answers get right,
// each problem evaluated once per evaluation: the fake answers right exactly where A+B is
// divisible by 3, so the loop must report that fraction of its held-out split.
TEST_F(RlLoopUnitTest, EvaluationCountsEveryHeldOutProblemOnceGreedily) {
  for (auto& a : actors_) a->greedy_right = [](int64_t x, int64_t y) { return (x + y) % 3 == 0; };
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  ArithmeticOptions o;
  o.heldout_size = 20;
  auto splits = MakeArithmeticSplits(o);
  ASSERT_TRUE(splits.ok());
  double right = 0;
  for (size_t i = 0; i < splits->heldout.size(); ++i) {
    right += std::stoll(splits->heldout.Get(i).answer) % 3 == 0;
  }
  const double expected = right / splits->heldout.size();
  ASSERT_GT(expected, 0.0);
  ASSERT_LT(expected, 1.0);
  EXPECT_DOUBLE_EQ(summary["heldout_accuracy_before"], expected);
  EXPECT_DOUBLE_EQ(summary["heldout_accuracy_after"], expected);
}

// A warm-up to a held-out criterion stops at the first evaluation that meets it (the fake
// greedy evaluation is always right), with the evaluated weights on the actors.
TEST_F(RlLoopUnitTest, TheWarmupStopsAtItsHeldOutTarget) {
  spec_.mutable_trainer()->set_sft_steps(100);
  spec_.mutable_trainer()->set_sft_eval_every(10);
  spec_.mutable_trainer()->set_sft_target_accuracy(0.5);
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(summary["sft_steps_taken"], 10);
  EXPECT_GE(summary["sft_heldout_accuracy"], 0.5);
  int evals = 0;
  for (const auto& r : reports) evals += r.phase() == "sft_eval";
  EXPECT_EQ(evals, 1);
  // Without a target, every step is taken.
  spec_.Clear();
  SetUp();
  spec_.mutable_trainer()->set_sft_steps(30);
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(summary["sft_steps_taken"], 30);
}

// With sft_target_holds, a single evaluation that spikes past the target does not stop the
// warm-up: the model here is right at the first evaluation (step 10), wrong at the next
// (step 11), and right from step 20 on, so two consecutive evaluations first hold at 21.
TEST_F(RlLoopUnitTest, TheWarmupStopsOnlyWhenItsTargetHoldsOverConsecutiveEvaluations) {
  for (int holds : {1, 2}) {
    SetUp();
    spec_.mutable_trainer()->set_sft_steps(100);
    spec_.mutable_trainer()->set_sft_eval_every(10);
    spec_.mutable_trainer()->set_sft_target_accuracy(0.5);
    spec_.mutable_trainer()->set_sft_target_holds(holds);
    auto first = std::make_shared<std::atomic<int64_t>>(-1);  // the first evaluated version
    for (auto& actor : actors_) {
      auto* a = actor.get();
      a->greedy_right = [a, first](int64_t, int64_t) {
        int64_t expected = -1;
        first->compare_exchange_strong(expected, a->version.load());
        const int64_t since = a->version.load() - first->load();
        return since == 0 || since >= 10;
      };
    }
    std::vector<grail::v1::StepReport> reports;
    std::map<std::string, double> summary;
    ASSERT_TRUE(RunLoop(&reports, &summary).ok());
    EXPECT_EQ(summary["sft_steps_taken"], holds == 1 ? 10 : 21) << "holds " << holds;
    int evals = 0;
    for (const auto& r : reports) evals += r.phase() == "sft_eval";
    EXPECT_EQ(evals, holds == 1 ? 1 : 4) << "holds " << holds;  // steps 10, 11, 20, 21
  }
}

// A reference scorer that restarted mid-run (it has no model) gets the reference weights
// again and the run goes on; one that stays away fails the run after recovery_timeout,
// naming it.
TEST_F(RlLoopUnitTest, ARestartedReferenceIsReloadedAndTheRunContinues) {
  reference_->restart_at_call = 2;  // the second step's reference call
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(learner_->steps().size(), 3u);
  EXPECT_EQ(reference_->loads.load(), 2);  // the first load and the recovery
  int recovered = 0;
  for (const auto& r : reports) recovered += r.phase() == "recovered";
  EXPECT_EQ(recovered, 1);

  SetUp();
  reference_->restart_at_call = 2;
  reference_->stay_down = true;  // away for good after the restart
  reports.clear();
  const absl::Duration slept = clock_.slept();
  absl::Status s = RunLoop(&reports, &summary);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("reference 127.0.0.1:1"));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("not recovered within"));
  EXPECT_GE(clock_.slept() - slept, absl::Seconds(3));
}

// An actor that misses a weights update (every retry fails) serves nothing until a later
// sync brings it up to date; no sample is ever trained with stale weights.
TEST_F(RlLoopUnitTest, AnActorThatMissesAnUpdateServesNothingUntilItCatchesUp) {
  actors_[1]->fail_loads = 3;  // the first sync and both its retries
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  const auto versions = actors_[1]->generate_versions();
  ASSERT_FALSE(versions.empty());  // it came back and served
  for (int64_t v : versions) EXPECT_GE(v, 0) << "actor 1 generated without weights";
  // Actor 0 served the first evaluation and step alone; actor 1 caught up at the next sync.
  EXPECT_GT(actors_[0]->generate_calls.load(), actors_[1]->generate_calls.load());
  for (const auto& r : reports) {
    if (r.phase() == "rl") EXPECT_EQ(r.metrics().at("version_lag_max"), 0) << r.step();
  }
  EXPECT_EQ(actors_[0]->version.load(), actors_[1]->version.load());
}

// max_staleness k: batch b is generated with the weights after step b-1-k, so the trained
// samples are exactly min(b-1, k) versions old, and still each is trained once.
TEST_F(RlLoopUnitTest, PipelinedRunsTrainSamplesExactlyKVersionsOld) {
  for (int k : {1, 2}) {
    SCOPED_TRACE(k);
    SetUp();
    spec_.mutable_trainer()->set_total_steps(5);
    spec_.mutable_trainer()->set_max_staleness(k);
    std::vector<grail::v1::StepReport> reports;
    std::map<std::string, double> summary;
    ASSERT_TRUE(RunLoop(&reports, &summary).ok());
    int step = 0;
    for (const auto& r : reports) {
      if (r.phase() != "rl") continue;
      ++step;
      EXPECT_EQ(r.metrics().at("version_lag_max"), std::min(step - 1, k)) << "step " << step;
      EXPECT_EQ(r.metrics().at("version_lag_bound"), k);
    }
    EXPECT_EQ(step, 5);
    const auto steps = learner_->steps();
    ASSERT_EQ(steps.size(), 5u);
    EXPECT_EQ(TrainedRows(steps).size(), 5u * 6u * 4u);  // full batches (the run checks ids)
    EXPECT_GT(summary.at("heldout_accuracy_after"), 0);
  }
}

TEST_F(RlLoopUnitTest, CancellationStopsTheRun) {
  cancelled_ = true;
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  EXPECT_EQ(RunLoop(&reports, &summary).code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace grail::coordinator

namespace grail::coordinator {
namespace {

// A model with frozen parameters (LoRA, freeze-tuning) sends only its trainable part each
// version; an actor that lacks the frozen part gets it once, from one fetch per run.
TEST_F(RlLoopUnitTest, ActorsGetTheFrozenPartOnceAndThenOnlyTrainableParts) {
  learner_->frozen_parts = true;
  std::vector<grail::v1::StepReport> reports;
  std::map<std::string, double> summary;
  ASSERT_TRUE(RunLoop(&reports, &summary).ok());
  EXPECT_EQ(learner_->frozen_part_fetches, 1);
  for (const auto& a : actors_) {
    EXPECT_TRUE(a->has_frozen_part);
    EXPECT_EQ(a->version, learner_->GetWeights(0)->version) << "every actor serves the last trainable part";
  }
}

}  // namespace
}  // namespace grail::coordinator
