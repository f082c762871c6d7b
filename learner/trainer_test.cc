#include "learner/trainer.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "common/weights_stream.h"
#include "learner/experience_tensors.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint.h"
#include "model/hf_export.h"
#include "model/safetensors.h"
#include "model/testing/tiny_model.h"

namespace grail::learner {
namespace {

grail::v1::Tensor Matrix(grail::v1::DType dtype, int64_t rows, int64_t cols, const void* data, size_t item) {
  grail::v1::Tensor t;
  t.set_dtype(dtype);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(static_cast<const char*>(data), rows * cols * item);
  return t;
}

// The chunked log-probs (the default path) against the full-logits path (taken when an
// entropy bonus needs its gradient): the same values, entropies, most likely tokens'
// log-probs and parameter gradients, over several chunks of rows and at a temperature.
TEST(AlignedLogProbsTest, ChunkedPathMatchesFullLogitsInValueAndGradient) {
  model::CausalLm m = model::testing::TinyModel(5);
  torch::manual_seed(2);
  auto ids = torch::randint(0, model::testing::TinyConfig().vocab_size, {6, 30});  // 174 rows: two chunks
  auto weights = torch::randn({6, 30});
  std::vector<torch::Tensor> grads[2];
  torch::Tensor lp[2], ent[2], max_lp[2];
  for (int full = 0; full < 2; ++full) {
    m->zero_grad();
    lp[full] = AlignedLogProbs(m, ids, &ent[full], 0.7, &max_lp[full], /*entropy_grad=*/full == 1);
    (lp[full] * weights).sum().backward();
    for (const auto& p : m->parameters()) grads[full].push_back(p.grad().clone());
  }
  EXPECT_TRUE(torch::allclose(lp[0], lp[1], 1e-5, 1e-5)) << (lp[0] - lp[1]).abs().max();
  EXPECT_TRUE(torch::allclose(ent[0], ent[1].detach(), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(max_lp[0], max_lp[1], 1e-5, 1e-5));
  EXPECT_FALSE(ent[0].requires_grad());
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_TRUE(torch::allclose(grads[0][i], grads[1][i], 1e-4, 1e-6)) << "parameter " << i << ": "
                                                                      << (grads[0][i] - grads[1][i]).abs().max();
  }
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "grail_trainer_XXXXXX";
    root_ = mkdtemp(tmpl.data());
    TrainerOptions o;
    o.data_root = root_;
    trainer_ = *Trainer::Create(o);
    auto* c = spec_.mutable_model()->mutable_config();
    c->set_vocab_size(20);
    c->set_hidden_size(32);
    c->set_intermediate_size(48);
    c->set_num_hidden_layers(2);
    c->set_num_attention_heads(4);
    c->set_max_position_embeddings(16);
    spec_.mutable_model()->set_init_seed(3);
    spec_.mutable_trainer()->set_learning_rate(0.01);
    spec_.mutable_trainer()->set_sft_learning_rate(0.01);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // Rows "prompt 3 4 5, response 6 7" with the given advantage.
  grail::v1::TrainStepRequest Batch(float advantage, float old_lp = -3.0f) {
    const int64_t B = 4, T = 5;
    std::vector<int64_t> ids(B * T);
    std::vector<float> mask(B * T, 0), old(B * T, 0), adv(B * T, 0);
    for (int64_t b = 0; b < B; ++b) {
      int64_t row[T] = {3, 4, 5, 6, 7};
      for (int64_t t = 0; t < T; ++t) {
        ids[b * T + t] = row[t];
        if (t >= 3) mask[b * T + t] = 1, old[b * T + t] = old_lp, adv[b * T + t] = advantage;
      }
    }
    grail::v1::TrainStepRequest r;
    auto* e = r.mutable_experience();
    *e->mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, B, T, ids.data(), 8);
    *e->mutable_response_mask() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, mask.data(), 4);
    *e->mutable_old_log_probs() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, old.data(), 4);
    *e->mutable_advantages() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, adv.data(), 4);
    return r;
  }

  std::string root_;
  std::unique_ptr<Trainer> trainer_;
  grail::v1::RunSpec spec_;
};

// model.dtype bfloat16: the weights leave the learner as bf16 (half the bytes), rounded from
// the float32 masters, which keep training in float32.
TEST_F(TrainerTest, Bf16WeightsAreRoundedMastersStayFloat32) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto full = trainer_->GetWeights();
  ASSERT_TRUE(full.ok());
  grail::v1::RunSpec bf16 = spec_;
  bf16.mutable_model()->set_dtype("bfloat16");
  ASSERT_TRUE(trainer_->InitModel(bf16).ok());  // the same seeded model
  auto half = trainer_->GetWeights();
  ASSERT_TRUE(half.ok());
  EXPECT_LT(half->blob.size(), full->blob.size() * 0.55);
  auto f = model::SafetensorsFile::Parse(full->blob);
  auto h = model::SafetensorsFile::Parse(half->blob);
  ASSERT_TRUE(f.ok() && h.ok());
  for (const auto& [name, t] : h->tensors()) {
    EXPECT_EQ(t.dtype, "BF16") << name;
    // Each value is the float32 master rounded to bf16.
    const auto& m = f->tensors().at(name);
    ASSERT_EQ(m.dtype, "F32");
    auto master = torch::from_blob(const_cast<char*>(m.data.data()), m.shape, torch::kFloat32).clone();
    auto sent = torch::from_blob(const_cast<char*>(t.data.data()), t.shape, torch::kBFloat16).clone();
    EXPECT_TRUE(torch::equal(master.to(torch::kBFloat16), sent)) << name;
  }
  // The blob rebuilds a model (in float32) whose parameters are the rounded values.
  auto rebuilt = model::ModelFromSafetensors(*h);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ((*rebuilt)->parameters()[0].scalar_type(), torch::kFloat32);
  EXPECT_EQ(trainer_->InitModel([&] {
    grail::v1::RunSpec bad = spec_;
    bad.mutable_model()->set_dtype("int4");
    return bad;
  }()).status().code(), absl::StatusCode::kInvalidArgument);
}

// Pairs "prompt 3 4, chosen 5 6" vs "prompt 3 4, rejected 7 8 9" (B of each): rows 0..B-1
// chosen, B..2B-1 rejected; `ref` the summed reference log-probs of each row.
// With `kto`, rows 0..B/2-1 are chosen (label 1), B/2..B-1 rejected (label 0), and the
// mismatched rows B..2B-1 the other way round.
grail::v1::PreferenceStepRequest PreferenceBatch(int64_t step, double ref_chosen, double ref_rejected,
                                                 bool eval_only = false, bool kto = false) {
  const int64_t B = 4, T = 5;
  std::vector<int64_t> ids(2 * B * T, 0);
  std::vector<float> mask(2 * B * T, 0), ref(2 * B), labels(B);
  for (int64_t r = 0; r < 2 * B; ++r) {
    const bool chosen = kto ? (r % B) < B / 2 : r < B;
    const std::vector<int64_t> row = chosen ? std::vector<int64_t>{3, 4, 5, 6, 0} : std::vector<int64_t>{3, 4, 7, 8, 9};
    for (int64_t t = 0; t < T; ++t) {
      ids[r * T + t] = row[t];
      mask[r * T + t] = t >= 2 && (chosen ? t < 4 : true) ? 1 : 0;
    }
    ref[r] = static_cast<float>(chosen ? ref_chosen : ref_rejected);
  }
  for (int64_t b = 0; b < B; ++b) labels[b] = b < B / 2 ? 1 : 0;
  grail::v1::PreferenceStepRequest req;
  req.set_step(step);
  req.set_eval_only(eval_only);
  *req.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2 * B, T, ids.data(), 8);
  *req.mutable_completion_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2 * B, T, mask.data(), 4);
  *req.mutable_ref_log_probs() = Matrix(grail::v1::DTYPE_FLOAT32, 2 * B, 1, ref.data(), 4);
  *req.mutable_labels() = Matrix(grail::v1::DTYPE_FLOAT32, B, 1, labels.data(), 4);
  return req;
}

// Every preference objective, from the same seeded model, widens the gap between the
// chosen and the rejected completion's log-prob; the reference is the starting policy.
TEST_F(TrainerTest, PreferenceObjectivesWidenTheChosenRejectedGap) {
  struct Case {
    grail::v1::PreferenceObjective objective;
    grail::v1::DpoLossType loss_type;
  };
  const Case cases[] = {{grail::v1::PREFERENCE_OBJECTIVE_DPO, grail::v1::DPO_LOSS_TYPE_SIGMOID},
                        {grail::v1::PREFERENCE_OBJECTIVE_DPO, grail::v1::DPO_LOSS_TYPE_IPO},
                        {grail::v1::PREFERENCE_OBJECTIVE_DPO, grail::v1::DPO_LOSS_TYPE_HINGE},
                        {grail::v1::PREFERENCE_OBJECTIVE_DPO, grail::v1::DPO_LOSS_TYPE_SIGMOID_NORM},
                        {grail::v1::PREFERENCE_OBJECTIVE_SIMPO, grail::v1::DPO_LOSS_TYPE_UNSPECIFIED},
                        {grail::v1::PREFERENCE_OBJECTIVE_ORPO, grail::v1::DPO_LOSS_TYPE_UNSPECIFIED}};
  for (const Case& c : cases) {
    grail::v1::RunSpec spec = spec_;
    spec.mutable_preference()->set_objective(c.objective);
    spec.mutable_preference()->set_loss_type(c.loss_type);
    ASSERT_TRUE(trainer_->InitModel(spec).ok());
    auto before = trainer_->PreferenceStep(PreferenceBatch(0, 0, 0, /*eval_only=*/true));
    ASSERT_TRUE(before.ok()) << before.status();
    const double ref_c = before->metrics().at("logp_chosen"), ref_r = before->metrics().at("logp_rejected");
    const int64_t version = before->weights_version();
    for (int s = 1; s <= 15; ++s) {
      auto r = trainer_->PreferenceStep(PreferenceBatch(s, ref_c, ref_r));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->weights_version(), version + s);
      EXPECT_TRUE(std::isfinite(r->metrics().at("loss")));
    }
    auto after = trainer_->PreferenceStep(PreferenceBatch(16, ref_c, ref_r, /*eval_only=*/true));
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->weights_version(), version + 15);  // evaluation does not move the weights
    const double gap_before = ref_c - ref_r;
    const double gap_after = after->metrics().at("logp_chosen") - after->metrics().at("logp_rejected");
    EXPECT_GT(gap_after, gap_before + 1.0) << c.objective << "/" << c.loss_type;
    EXPECT_EQ(after->metrics().at("preference_accuracy"), 1.0) << c.objective << "/" << c.loss_type;
    if (c.objective == grail::v1::PREFERENCE_OBJECTIVE_DPO) {
      EXPECT_LT(after->metrics().at("logp_rejected"), ref_r);  // the rejected response's log-prob falls
      EXPECT_GT(after->metrics().at("reward_margin"), 0);
    }
  }
}

// A reward-model run puts a value head on the model and trains Bradley-Terry on the pairs:
// the chosen completion's score rises above the rejected one's; its weights carry the head.
TEST_F(TrainerTest, RewardModelLearnsToScoreChosenAboveRejected) {
  grail::v1::RunSpec spec = spec_;
  spec.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL);
  spec.mutable_preference()->set_center_rewards_coefficient(0.01f);
  ASSERT_TRUE(trainer_->InitModel(spec).ok());
  auto before = trainer_->PreferenceStep(PreferenceBatch(0, 0, 0, /*eval_only=*/true));
  ASSERT_TRUE(before.ok()) << before.status();
  for (int s = 1; s <= 15; ++s) {
    auto req = PreferenceBatch(s, 0, 0);
    req.clear_ref_log_probs();  // a reward model needs no reference
    auto r = trainer_->PreferenceStep(req);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  auto after = trainer_->PreferenceStep(PreferenceBatch(16, 0, 0, /*eval_only=*/true));
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->metrics().at("reward_accuracy"), 1.0);
  EXPECT_GT(after->metrics().at("reward_margin"), before->metrics().at("reward_margin") + 1.0);
  auto weights = trainer_->GetWeights();
  ASSERT_TRUE(weights.ok());
  auto file = model::SafetensorsFile::Parse(weights->blob);
  ASSERT_TRUE(file.ok());
  EXPECT_TRUE(file->tensors().count("score.weight"));
  EXPECT_EQ(file->metadata().at(model::kTokenizerMetadataKey), "char");  // the reward scorer reads with it
}

TEST_F(TrainerTest, KtoSeparatesDesirableFromUndesirableRows) {
  grail::v1::RunSpec spec = spec_;
  spec.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_KTO);
  ASSERT_TRUE(trainer_->InitModel(spec).ok());
  double first_loss = 0, last_loss = 0;
  for (int s = 1; s <= 15; ++s) {
    auto r = trainer_->PreferenceStep(PreferenceBatch(s, -8, -8, /*eval_only=*/false, /*kto=*/true));
    ASSERT_TRUE(r.ok()) << r.status();
    (s == 1 ? first_loss : last_loss) = r->metrics().at("loss");
    EXPECT_GE(r->metrics().at("kl"), 0);
  }
  EXPECT_LT(last_loss, first_loss - 0.05);
  // Evaluated on pairs, the policy now ranks the desirable completion first.
  auto after = trainer_->PreferenceStep(PreferenceBatch(16, -8, -8, /*eval_only=*/true));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->metrics().at("preference_accuracy"), 1.0);
  // Its implicit reward, log pi/pi_ref, ranks them too; a reference that favoured the
  // rejected completion by far more turns the ranking round.
  EXPECT_EQ(after->metrics().at("reward_accuracy"), 1.0);
  auto skewed = trainer_->PreferenceStep(PreferenceBatch(16, 50, -50, /*eval_only=*/true));
  ASSERT_TRUE(skewed.ok());
  EXPECT_EQ(skewed->metrics().at("preference_accuracy"), 1.0);
  EXPECT_EQ(skewed->metrics().at("reward_accuracy"), 0.0);
}

TEST_F(TrainerTest, PreferenceStepRefusesBadInputNamingTheField) {
  // An RL run has no preference objective.
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  EXPECT_EQ(trainer_->PreferenceStep(PreferenceBatch(1, 0, 0)).status().code(), absl::StatusCode::kFailedPrecondition);
  grail::v1::RunSpec spec = spec_;
  spec.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
  ASSERT_TRUE(trainer_->InitModel(spec).ok());
  auto no_ref = PreferenceBatch(1, 0, 0);
  no_ref.clear_ref_log_probs();
  auto s = trainer_->PreferenceStep(no_ref);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("ref_log_probs"));
  auto empty = PreferenceBatch(1, 0, 0);
  std::vector<float> zeros(8 * 5, 0);
  *empty.mutable_completion_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 8, 5, zeros.data(), 4);
  s = trainer_->PreferenceStep(empty);
  EXPECT_THAT(std::string(s.status().message()), ::testing::HasSubstr("completion_mask: row 0 has no completion token"));
}

TEST_F(TrainerTest, PositiveAdvantageRaisesTheResponseLikelihood) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto first = trainer_->TrainStep(Batch(1.0f));
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->weights_version(), 1);
  // The surrogate loss is -A * ratio; after a few steps the ratio (new/old prob) exceeds 1
  // and then clips at 1 + clip_ratio_high.
  double clipfrac = 0;
  for (int i = 0; i < 30; ++i) clipfrac = trainer_->TrainStep(Batch(1.0f))->metrics().at("pg_clipfrac");
  auto last = trainer_->TrainStep(Batch(1.0f));
  EXPECT_LT(last->metrics().at("loss"), first->metrics().at("loss"));
  EXPECT_GT(clipfrac, 0.0);
  EXPECT_EQ(last->weights_version(), 32);
}

// RL log-probs are taken under the rollout sampling temperature, as the actors' behaviour
// log-probs are: the first step's ppo_kl (mean old - new log-prob, before any update)
// changes with the temperature, and greedy counts as temperature 1.
TEST_F(TrainerTest, LogProbsAreTakenUnderTheSamplingTemperature) {
  std::map<float, double> kl;
  for (float t : {0.0f, 1.0f, 0.5f}) {
    grail::v1::RunSpec spec = spec_;
    spec.mutable_sampling()->set_temperature(t);
    ASSERT_TRUE(trainer_->InitModel(spec).ok());  // the same seeded model each time
    auto step = trainer_->TrainStep(Batch(1.0f));
    ASSERT_TRUE(step.ok()) << step.status();
    kl[t] = step->metrics().at("ppo_kl");
  }
  EXPECT_DOUBLE_EQ(kl[0.0f], kl[1.0f]);
  EXPECT_GT(std::abs(kl[0.5f] - kl[1.0f]), 1e-3) << kl[0.5f] << " vs " << kl[1.0f];
}

// trainer.lr_schedule: cosine decays the RL rate after the warm-up to min_lr_ratio times
// the rate at total_steps.
TEST_F(TrainerTest, CosineScheduleDecaysTheRateToItsFloor) {
  grail::v1::RunSpec spec = spec_;
  spec.mutable_trainer()->set_total_steps(10);
  spec.mutable_trainer()->set_warmup_steps(2);
  spec.mutable_trainer()->set_lr_schedule("cosine");
  spec.mutable_trainer()->set_min_lr_ratio(0.1f);
  ASSERT_TRUE(trainer_->InitModel(spec).ok());
  std::vector<double> lr;
  for (int i = 0; i < 10; ++i) lr.push_back(trainer_->TrainStep(Batch(1.0f))->metrics().at("learning_rate"));
  EXPECT_NEAR(lr[0], 0.005, 1e-9);  // warm-up: 1/2 of 0.01
  EXPECT_NEAR(lr[1], 0.01, 1e-9);
  for (int i = 2; i < 10; ++i) EXPECT_LT(lr[i], lr[i - 1]) << i;
  EXPECT_NEAR(lr[9], 0.001, 1e-9);
  spec.mutable_trainer()->set_lr_schedule("linear");
  EXPECT_EQ(trainer_->InitModel(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

// Truncated importance sampling for stale samples: each token's weight is
// min(p_current / p_behaviour, tis_cap), with the current log-probs from the step itself.
TEST_F(TrainerTest, TruncatedImportanceSamplingWeightsByTheBehaviourRatio) {
  // Off in the synchronous loop: no TIS metrics.
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto sync = trainer_->TrainStep(Batch(1.0f, -50.0f));
  ASSERT_TRUE(sync.ok());
  EXPECT_EQ(sync->metrics().count("tis_weight_mean"), 0u);

  for (int mini_batches : {1, 2}) {  // first-forward-pass path and separate-pass path
    SCOPED_TRACE(mini_batches);
    grail::v1::RunSpec stale = spec_;
    stale.mutable_trainer()->set_max_staleness(1);
    stale.mutable_trainer()->set_mini_batches(mini_batches);
    ASSERT_TRUE(trainer_->InitModel(stale).ok());
    // A behaviour log-prob of -50 makes every ratio enormous: every token is capped at 2.
    auto capped = trainer_->TrainStep(Batch(1.0f, -50.0f));
    ASSERT_TRUE(capped.ok()) << capped.status();
    EXPECT_DOUBLE_EQ(capped->metrics().at("tis_capped_ratio"), 1.0);
    EXPECT_NEAR(capped->metrics().at("tis_weight_mean"), 2.0, 1e-6);
    // A behaviour log-prob of 0 (probability 1) makes every ratio p_current < 1: nothing is
    // capped and the mean weight is the mean current probability of the response tokens.
    auto below = trainer_->TrainStep(Batch(1.0f, 0.0f));
    ASSERT_TRUE(below.ok());
    EXPECT_EQ(below->metrics().at("tis_capped_ratio"), 0.0);
    EXPECT_GT(below->metrics().at("tis_weight_mean"), 0.0);
    EXPECT_LT(below->metrics().at("tis_weight_mean"), 1.0);
    // The ratio is clipped against the current policy, so with one mini-batch and one epoch
    // nothing is clipped however far the behaviour policy was (the second mini-batch of two
    // follows an update and may clip).
    if (mini_batches == 1) EXPECT_EQ(capped->metrics().at("pg_clipfrac"), 0.0);
  }
  grail::v1::RunSpec explicit_cap = spec_;
  explicit_cap.mutable_algorithm()->set_tis_cap(5.0f);
  ASSERT_TRUE(trainer_->InitModel(explicit_cap).ok());
  auto five = trainer_->TrainStep(Batch(1.0f, -50.0f));
  ASSERT_TRUE(five.ok());
  EXPECT_NEAR(five->metrics().at("tis_weight_mean"), 5.0, 1e-5);
}

TEST_F(TrainerTest, SupervisedStepsLowerTheLoss) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  std::vector<int64_t> ids = {1, 3, 4, 5, 2, 1, 6, 7, 8, 2};
  std::vector<float> mask = {0, 0, 0, 1, 1, 0, 0, 0, 1, 1};
  grail::v1::SupervisedStepRequest req;
  *req.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2, 5, ids.data(), 8);
  *req.mutable_loss_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2, 5, mask.data(), 4);
  const double first = trainer_->SupervisedStep(req)->metrics().at("sft_loss");
  double last = first;
  for (int i = 0; i < 40; ++i) last = trainer_->SupervisedStep(req)->metrics().at("sft_loss");
  EXPECT_LT(last, first * 0.5);
}

// ScoreSequences (learning-dynamics probes): per-token log-probs that agree with the
// supervised loss on the same tokens, each at most the most likely token's, and no update.
TEST_F(TrainerTest, ScoreSequencesGivesTokenAndArgmaxLogProbsWithoutAnUpdate) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  std::vector<int64_t> ids = {1, 3, 4, 5, 2, 1, 6, 7, 8, 2};
  std::vector<float> mask = {0, 0, 0, 1, 1, 0, 0, 0, 1, 1};
  grail::v1::ScoreSequencesRequest score;
  *score.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2, 5, ids.data(), 8);
  auto scored = trainer_->ScoreSequences(score);
  ASSERT_TRUE(scored.ok()) << scored.status();
  ASSERT_EQ(scored->log_probs().shape(1), 5);
  const float* lp = reinterpret_cast<const float*>(scored->log_probs().data().data());
  const float* top = reinterpret_cast<const float*>(scored->max_log_probs().data().data());
  double nll = 0;
  for (int i = 0; i < 10; ++i) {
    if (i % 5 == 0) {
      EXPECT_EQ(lp[i], 0.0f);
      continue;
    }
    EXPECT_LT(lp[i], 0.0f);
    EXPECT_LE(lp[i], top[i] + 1e-6f);
    EXPECT_GT(top[i], std::log(1.0f / 20) - 1e-6f);  // the argmax is at least uniform
    nll -= mask[i] * lp[i];
  }
  grail::v1::SupervisedStepRequest eval;
  *eval.mutable_input_ids() = score.input_ids();
  *eval.mutable_loss_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2, 5, mask.data(), 4);
  eval.set_eval_only(true);
  EXPECT_NEAR(trainer_->SupervisedStep(eval)->metrics().at("sft_loss"), nll / 4, 1e-5);
  auto again = trainer_->ScoreSequences(score);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->log_probs().data(), scored->log_probs().data());  // nothing moved
  std::vector<int64_t> bad = {1, 3, 99, 5, 2};
  *score.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 1, 5, bad.data(), 8);
  EXPECT_EQ(trainer_->ScoreSequences(score).status().code(), absl::StatusCode::kInvalidArgument);
}

// The warm-up's schedule (linear warm-up, then cosine or linear decay), micro-batch
// accumulation that takes the same step, and held-out evaluation that takes none.
TEST_F(TrainerTest, SupervisedScheduleAccumulationAndEvaluation) {
  std::vector<int64_t> ids = {1, 3, 4, 5, 2, 1, 6, 7, 8, 2, 1, 4, 4, 9, 2, 1, 5, 6, 7, 2};
  std::vector<float> mask = {0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 1};
  auto request = [&](int step, bool eval_only = false) {
    grail::v1::SupervisedStepRequest req;
    req.set_step(step);
    req.set_eval_only(eval_only);
    *req.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 4, 5, ids.data(), 8);
    *req.mutable_loss_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 4, 5, mask.data(), 4);
    return req;
  };
  auto max_difference = [](const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    return worst;
  };
  auto params = [&]() {
    auto file = model::SafetensorsFile::Parse(trainer_->GetWeights()->blob);
    std::vector<float> out;
    for (const auto& [name, t] : file->tensors()) {
      const float* p = reinterpret_cast<const float*>(t.data.data());
      out.insert(out.end(), p, p + t.data.size() / 4);
    }
    return out;
  };
  // Two micro-batches take the same step as one batch.
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  ASSERT_TRUE(trainer_->SupervisedStep(request(1)).ok());
  const std::vector<float> whole = params();
  grail::v1::RunSpec accumulated = spec_;
  accumulated.mutable_trainer()->set_sft_grad_accumulation(2);
  auto init = trainer_->InitModel(accumulated);
  ASSERT_TRUE(init.ok()) << init.status();
  auto stepped = trainer_->SupervisedStep(request(1));
  ASSERT_TRUE(stepped.ok()) << stepped.status();
  const std::vector<float> split = params();
  ASSERT_EQ(whole.size(), split.size());
  EXPECT_LT(max_difference(whole, split), 1e-5);
  // Packed rows (two sequences per row, trainer.sft_pack_length) take the same step too,
  // with the same loss; with every token in one segment the step differs.
  std::vector<int64_t> one_segment(20, 0), two_segments(20, 0);
  for (size_t t = 0; t < 20; ++t) two_segments[t] = (t % 10) / 5;
  auto packed = [&](std::vector<int64_t>& segments) {
    auto req = request(1);
    *req.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2, 10, ids.data(), 8);
    *req.mutable_loss_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2, 10, mask.data(), 4);
    *req.mutable_segment_ids() = Matrix(grail::v1::DTYPE_INT64, 2, 10, segments.data(), 8);
    return req;
  };
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto unpacked_eval = trainer_->SupervisedStep(request(1, /*eval_only=*/true));
  auto packed_eval_request = packed(two_segments);
  packed_eval_request.set_eval_only(true);
  auto packed_eval = trainer_->SupervisedStep(packed_eval_request);
  ASSERT_TRUE(packed_eval.ok()) << packed_eval.status();
  EXPECT_NEAR(packed_eval->metrics().at("sft_loss"), unpacked_eval->metrics().at("sft_loss"), 1e-5);
  ASSERT_TRUE(trainer_->SupervisedStep(packed(two_segments)).ok());
  const std::vector<float> packed_step = params();
  EXPECT_LT(max_difference(whole, packed_step), 1e-5);
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  ASSERT_TRUE(trainer_->SupervisedStep(packed(one_segment)).ok());
  const std::vector<float> joined = params();
  EXPECT_GT(max_difference(whole, joined), 1e-4);
  auto misshapen = packed(two_segments);
  *misshapen.mutable_segment_ids() = Matrix(grail::v1::DTYPE_INT64, 4, 5, two_segments.data(), 8);
  EXPECT_THAT(std::string(trainer_->SupervisedStep(misshapen).status().message()), ::testing::HasSubstr("segment_ids"));
  // Gradient checkpointing (trainer.gradient_checkpointing) takes the same step as well.
  grail::v1::RunSpec recomputed = spec_;
  recomputed.mutable_trainer()->set_gradient_checkpointing(true);
  ASSERT_TRUE(trainer_->InitModel(recomputed).ok());
  ASSERT_TRUE(trainer_->SupervisedStep(request(1)).ok());
  const std::vector<float> checkpointed = params();
  EXPECT_LT(max_difference(whole, checkpointed), 1e-5);
  ASSERT_TRUE(trainer_->InitModel(accumulated).ok());
  stepped = trainer_->SupervisedStep(request(1));
  ASSERT_TRUE(stepped.ok());
  // Evaluation: the loss, and neither the version nor the weights move.
  auto eval = trainer_->SupervisedStep(request(1, /*eval_only=*/true));
  ASSERT_TRUE(eval.ok());
  EXPECT_EQ(eval->weights_version(), stepped->weights_version());
  EXPECT_GT(eval->metrics().at("sft_loss"), 0);
  EXPECT_FALSE(eval->metrics().count("learning_rate"));
  EXPECT_EQ(params(), split);
  // Cosine after a 2-step warm-up, over 10 steps, down to min_lr_ratio (0.1); and linear.
  for (const char* schedule : {"cosine", "linear"}) {
    grail::v1::RunSpec s = spec_;
    s.mutable_trainer()->set_sft_lr_schedule(schedule);
    s.mutable_trainer()->set_sft_warmup_steps(2);
    s.mutable_trainer()->set_sft_steps(10);
    ASSERT_TRUE(trainer_->InitModel(s).ok());
    std::map<int, double> lr;
    for (int step : {1, 2, 6, 10}) lr[step] = trainer_->SupervisedStep(request(step))->metrics().at("learning_rate");
    EXPECT_NEAR(lr[1], 0.005, 1e-9) << schedule;  // half the rate of 0.01
    EXPECT_NEAR(lr[2], 0.01, 1e-9) << schedule;
    EXPECT_NEAR(lr[6], std::string(schedule) == "cosine" ? 0.01 * (0.1 + 0.9 * 0.5) : 0.005, 1e-7) << schedule;
    EXPECT_NEAR(lr[10], std::string(schedule) == "cosine" ? 0.001 : 0.0, 1e-7) << schedule;
  }
}

TEST_F(TrainerTest, MalformedExperienceNamesTheField) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto bad = Batch(1.0f);
  bad.mutable_experience()->mutable_advantages()->mutable_data()->pop_back();
  EXPECT_THAT(std::string(trainer_->TrainStep(bad).status().message()),
              ::testing::HasSubstr("experience.advantages.data"));
  auto nan = Batch(std::nanf(""));
  EXPECT_THAT(std::string(trainer_->TrainStep(nan).status().message()),
              ::testing::HasSubstr("experience.advantages: contains NaN"));
  auto out_of_vocab = Batch(1.0f);
  (*out_of_vocab.mutable_experience()->mutable_input_ids()->mutable_data())[0] = 99;
  EXPECT_THAT(std::string(trainer_->TrainStep(out_of_vocab).status().message()),
              ::testing::HasSubstr("experience.input_ids: token ids"));
}

TEST_F(TrainerTest, CheckpointIsCommittedAtomicallyAndLoadable) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  ASSERT_TRUE(trainer_->TrainStep(Batch(1.0f)).ok());
  auto path = trainer_->SaveCheckpoint("ckpt/step-000001", "");
  ASSERT_TRUE(path.ok()) << path.status();
  namespace fs = std::filesystem;
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "config.json", "manifest.json", "COMMITTED"}) {
    EXPECT_TRUE(fs::exists(fs::path(*path) / f)) << f;
  }
  for (const auto& entry : fs::directory_iterator(fs::path(*path).parent_path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << "leftover temp dir";
  }
  auto manifest = model::ReadFileToString(*path + "/manifest.json");
  auto blob = model::ReadFileToString(*path + "/model.safetensors");
  EXPECT_NE(manifest->find(Sha256Hex(*blob)), std::string::npos);
  EXPECT_NE(manifest->find("\"weights_version\": 1"), std::string::npos);
  auto optimizer = model::SafetensorsFile::Read(*path + "/optimizer.safetensors");
  ASSERT_TRUE(optimizer.ok());
  EXPECT_TRUE(optimizer->tensors().count("exp_avg/model.norm.weight"));
  // The checkpoint is a model directory: it loads as model.path, bit for bit.
  auto weights = trainer_->GetWeights();
  grail::v1::RunSpec from_ckpt;
  from_ckpt.mutable_model()->set_path("ckpt/step-000001");
  auto other = *Trainer::Create(TrainerOptions{1, root_});
  ASSERT_TRUE(other->InitModel(from_ckpt).ok());
  EXPECT_EQ(other->GetWeights()->blob, weights->blob);
  // A committed checkpoint is never overwritten; paths outside the root are refused.
  EXPECT_EQ(trainer_->SaveCheckpoint("ckpt/step-000001", "").status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(trainer_->SaveCheckpoint("../escape", "").status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(TrainerTest, CriticLearnsReturnsAndValuePretrainingLeavesThePolicyAlone) {
  grail::v1::ComputeValuesRequest values_req;
  *values_req.mutable_input_ids() = Batch(1.0f).experience().input_ids();
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  EXPECT_EQ(trainer_->ComputeValues(values_req).status().code(), absl::StatusCode::kFailedPrecondition);
  auto with_returns = Batch(1.0f);
  *with_returns.mutable_experience()->mutable_returns() = with_returns.experience().advantages();
  *with_returns.mutable_experience()->mutable_values() = with_returns.experience().advantages();
  EXPECT_THAT(std::string(trainer_->TrainStep(with_returns).status().message()),
              ::testing::HasSubstr("experience.returns: this run has no critic"));

  spec_.mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
  spec_.mutable_critic()->set_enabled(true);
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  auto values = trainer_->ComputeValues(values_req);
  ASSERT_TRUE(values.ok()) << values.status();
  ASSERT_EQ(values->values().shape(0), 4);
  ASSERT_EQ(values->values().shape(1), 5);
  EXPECT_EQ(reinterpret_cast<const float*>(values->values().data().data())[0], 0.0f);  // column 0

  // Returns of 2.0 on the response tokens; old values = the critic's own predictions.
  auto req = Batch(1.0f);
  req.set_critic_only(true);
  auto* e = req.mutable_experience();
  std::vector<float> returns(20, 0.0f);
  const float* mask = reinterpret_cast<const float*>(e->response_mask().data().data());
  for (int i = 0; i < 20; ++i) returns[i] = mask[i] * 2.0f;
  *e->mutable_returns() = Matrix(grail::v1::DTYPE_FLOAT32, 4, 5, returns.data(), 4);
  *e->mutable_values() = values->values();
  const std::string policy_before = trainer_->GetWeights()->blob;
  const int64_t version_before = trainer_->GetWeights()->version;
  double first = -1, last = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = trainer_->TrainStep(req);
    ASSERT_TRUE(r.ok()) << r.status();
    if (first < 0) first = r->metrics().at("value_loss");
    last = r->metrics().at("value_loss");
    *e->mutable_values() = trainer_->ComputeValues(values_req)->values();
  }
  EXPECT_LT(last, first * 0.2) << "value loss " << first << " -> " << last;
  EXPECT_EQ(trainer_->GetWeights()->blob, policy_before);
  EXPECT_EQ(trainer_->GetWeights()->version, version_before);
  // A full step trains both and reports the critic's metrics.
  req.set_critic_only(false);
  auto both = trainer_->TrainStep(req);
  ASSERT_TRUE(both.ok());
  EXPECT_TRUE(both->metrics().count("explained_variance"));
  EXPECT_TRUE(both->metrics().count("pg_clipfrac"));
  EXPECT_EQ(both->weights_version(), version_before + 1);
}

// critic.init: policy copies the decoder when the critic is first used, so a supervised
// warm-up before RL is reflected in it; critic.init: random ignores the policy.
TEST_F(TrainerTest, CriticStartsFromThePolicyAtFirstUse) {
  grail::v1::ComputeValuesRequest values_req;
  *values_req.mutable_input_ids() = Batch(1.0f).experience().input_ids();
  spec_.mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
  spec_.mutable_critic()->set_enabled(true);
  auto values_after = [&](const std::string& init, int sft_steps) {
    spec_.mutable_critic()->set_init(init);
    EXPECT_TRUE(trainer_->InitModel(spec_).ok());
    for (int i = 0; i < sft_steps; ++i) {
      grail::v1::SupervisedStepRequest sft;
      *sft.mutable_input_ids() = Batch(1.0f).experience().input_ids();
      *sft.mutable_loss_mask() = Batch(1.0f).experience().response_mask();
      EXPECT_TRUE(trainer_->SupervisedStep(sft).ok());
    }
    auto v = trainer_->ComputeValues(values_req);
    EXPECT_TRUE(v.ok()) << v.status();
    return v->values().data();
  };
  const std::string random0 = values_after("random", 0), random3 = values_after("random", 3);
  const std::string policy0 = values_after("policy", 0), policy3 = values_after("policy", 3);
  EXPECT_EQ(random0, random3);  // the policy's warm-up does not reach a random critic
  EXPECT_NE(policy0, random0);
  EXPECT_NE(policy0, policy3);  // the copy happens at first use, after the warm-up
  spec_.mutable_critic()->set_init("pretrained");
  EXPECT_THAT(std::string(trainer_->InitModel(spec_).status().message()), ::testing::HasSubstr("critic.init"));
}

}  // namespace
}  // namespace grail::learner

namespace grail::learner {
namespace {

// The weights the learner would send, by name.
std::map<std::string, torch::Tensor> SentTensors(Trainer& trainer) {
  auto w = trainer.GetWeights(grail::v1::WEIGHTS_PART_WHOLE);
  EXPECT_TRUE(w.ok()) << w.status();
  std::map<std::string, torch::Tensor> out;
  if (!w.ok()) return out;
  auto file = model::SafetensorsFile::Parse(w->blob);
  EXPECT_TRUE(file.ok());
  for (const auto& [name, t] : file->tensors()) {
    out[name] = torch::from_blob(const_cast<char*>(t.data.data()), t.shape, torch::kFloat32).clone();
  }
  return out;
}

grail::v1::SupervisedStepRequest SftRows() {
  std::vector<int64_t> ids = {1, 3, 4, 5, 2, 1, 6, 7, 8, 2};
  std::vector<float> mask = {0, 0, 0, 1, 1, 0, 0, 0, 1, 1};
  grail::v1::SupervisedStepRequest req;
  *req.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2, 5, ids.data(), 8);
  *req.mutable_loss_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2, 5, mask.data(), 4);
  return req;
}

// model.peft lora: the learner trains the adapters only. The base stays bit-identical, the
// loss still falls, and the weights it sends carry the adapters and their settings, so a
// receiver rebuilds the same model.
TEST_F(TrainerTest, LoraTrainsTheAdaptersAndLeavesTheBaseBitIdentical) {
  spec_.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
  spec_.mutable_model()->mutable_peft()->set_r(4);
  spec_.mutable_model()->mutable_peft()->set_alpha(16);
  auto init = trainer_->InitModel(spec_);
  ASSERT_TRUE(init.ok()) << init.status();
  const auto before = SentTensors(*trainer_);
  ASSERT_EQ(before.count("model.layers.1.mlp.up_proj.lora_A.weight"), 1u);
  const double first = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  double last = first;
  for (int i = 0; i < 40; ++i) last = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  // The frozen random head of this tiny model bounds how far any adapter can go (its logits
  // span about one nat): 3.03 -> 2.45 here, where full fine-tuning goes below 1.5.
  EXPECT_LT(last, first - 0.3);
  const auto after = SentTensors(*trainer_);
  int adapters_moved = 0;
  for (const auto& [name, t] : before) {
    if (name.find("lora_") != std::string::npos) {
      adapters_moved += !torch::equal(t, after.at(name));
    } else {
      EXPECT_TRUE(torch::equal(t, after.at(name))) << name << " is frozen";
    }
  }
  EXPECT_EQ(adapters_moved, 2 * 7 * 2);  // A and B of seven projections in two layers
  auto w = trainer_->GetWeights(grail::v1::WEIGHTS_PART_WHOLE);
  auto rebuilt = model::ModelFromSafetensors(*model::SafetensorsFile::Parse(w->blob));
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  EXPECT_EQ((*rebuilt)->config().lora.r, 4);
  // By default only what can change is sent: the adapters, naming the frozen part.
  auto part = model::SafetensorsFile::Parse(trainer_->GetWeights()->blob);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->tensors().size(), 2u * 7 * 2);
  EXPECT_EQ(part->metadata().at(model::kWeightsPartMetadataKey), "trainable");
  auto frozen = model::SafetensorsFile::Parse(trainer_->GetWeights(grail::v1::WEIGHTS_PART_FROZEN)->blob);
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(frozen->metadata().at(model::kFrozenDigestMetadataKey), part->metadata().at(model::kFrozenDigestMetadataKey));
  EXPECT_EQ(frozen->tensors().size() + part->tensors().size(), (*rebuilt)->named_parameters().size());
}

// A LoRA run's checkpoint exported in PEFT's format continues as model.peft.path on the
// base it was trained on: the adapters come back bit for bit, and training goes on.
TEST_F(TrainerTest, APeftAdapterDirectoryContinuesTraining) {
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  ASSERT_TRUE(trainer_->SaveCheckpoint("base", "").ok());
  grail::v1::RunSpec lora = spec_;
  lora.mutable_model()->clear_config();
  lora.mutable_model()->set_path("base");
  lora.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
  lora.mutable_model()->mutable_peft()->set_r(4);
  ASSERT_TRUE(trainer_->InitModel(lora).ok());
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(trainer_->SupervisedStep(SftRows()).ok());
  const auto trained = SentTensors(*trainer_);
  ASSERT_TRUE(trainer_->SaveCheckpoint("lora", "").ok());
  ASSERT_TRUE(model::ExportHfDir(root_ + "/lora", root_ + "/adapter", model::HfExportOptions{}).ok());

  grail::v1::RunSpec resumed = lora;
  resumed.mutable_model()->mutable_peft()->set_r(0);  // the directory's own settings
  resumed.mutable_model()->mutable_peft()->set_path("adapter");
  auto init = trainer_->InitModel(resumed);
  ASSERT_TRUE(init.ok()) << init.status();
  const auto loaded = SentTensors(*trainer_);
  ASSERT_EQ(loaded.size(), trained.size());
  for (const auto& [name, t] : trained) EXPECT_TRUE(torch::equal(t, loaded.at(name))) << name;
  ASSERT_TRUE(trainer_->SupervisedStep(SftRows()).ok());

  resumed.mutable_model()->mutable_peft()->set_path("missing");
  auto refused = trainer_->InitModel(resumed);
  EXPECT_NE(refused.status().message().find("model.peft.path"), std::string::npos) << refused.status();
}

// model.trainable: only the selected layers (and modules) train; everything else is
// bit-identical after training, the embeddings and the head included.
TEST_F(TrainerTest, FreezeTuningTrainsOnlyTheSelectedParameters) {
  spec_.mutable_model()->mutable_trainable()->set_layers("last:1");
  spec_.mutable_model()->mutable_trainable()->add_modules("q");
  spec_.mutable_model()->mutable_trainable()->add_modules("down");
  ASSERT_TRUE(trainer_->InitModel(spec_).ok());
  const auto before = SentTensors(*trainer_);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(trainer_->SupervisedStep(SftRows()).ok());
  const auto after = SentTensors(*trainer_);
  for (const auto& [name, t] : before) {
    const bool selected = name == "model.layers.1.self_attn.q_proj.weight" || name == "model.layers.1.mlp.down_proj.weight";
    EXPECT_EQ(torch::equal(t, after.at(name)), !selected) << name;
  }
  grail::v1::RunSpec bad = spec_;
  bad.mutable_model()->mutable_trainable()->add_layer_indices(7);
  bad.mutable_model()->mutable_trainable()->clear_layers();
  auto refused = trainer_->InitModel(bad);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("model.trainable.layer_indices"), std::string::npos) << refused.status();
}

}  // namespace
}  // namespace grail::learner

namespace grail::learner {
namespace {

// QLoRA (model.quantize nf4): the learner keeps the frozen base in NF4, reports its resident
// bytes (under 0.16 of float32), trains the adapters (the loss falls) and sends the base
// dequantised, unchanged by training.
TEST_F(TrainerTest, QloraKeepsTheBaseInNf4AndTrainsTheAdapters) {
  spec_.mutable_model()->mutable_config()->set_hidden_size(64);
  auto plain = trainer_->InitModel(spec_);
  ASSERT_TRUE(plain.ok());
  spec_.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
  spec_.mutable_model()->mutable_peft()->set_r(4);
  auto lora = trainer_->InitModel(spec_);
  ASSERT_TRUE(lora.ok()) << lora.status();
  spec_.mutable_model()->set_quantize("nf4");
  auto q = trainer_->InitModel(spec_);
  ASSERT_TRUE(q.ok()) << q.status();
  const double ratio = static_cast<double>(q->frozen_resident_bytes()) / lora->frozen_resident_bytes();
  std::cout << "qlora: frozen base " << q->frozen_resident_bytes() << " bytes, float32 " << lora->frozen_resident_bytes()
            << " (" << ratio << ")" << std::endl;
  EXPECT_LT(ratio, 0.16);
  const auto before = SentTensors(*trainer_);
  const double first = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  double last = first;
  for (int i = 0; i < 30; ++i) last = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  EXPECT_LT(last, first - 0.3);
  const auto after = SentTensors(*trainer_);
  for (const auto& [name, t] : before) {
    if (name.find("lora_") == std::string::npos) EXPECT_TRUE(torch::equal(t, after.at(name))) << name;
  }
}

}  // namespace
}  // namespace grail::learner

namespace grail::learner {
namespace {

// Prompt tuning (model.peft prompt_tuning): only the prompt embeddings train, the loss falls,
// and they are all the learner sends each version.
TEST_F(TrainerTest, PromptTuningTrainsOnlyThePromptEmbeddings) {
  spec_.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_PROMPT_TUNING);
  spec_.mutable_model()->mutable_peft()->set_num_virtual_tokens(4);
  auto init = trainer_->InitModel(spec_);
  ASSERT_TRUE(init.ok()) << init.status();
  const auto before = SentTensors(*trainer_);
  ASSERT_EQ(before.count("prompt_embeddings"), 1u);
  EXPECT_EQ(before.at("prompt_embeddings").sizes(), (std::vector<int64_t>{4, 32}));
  const double first = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  double last = first;
  for (int i = 0; i < 40; ++i) last = trainer_->SupervisedStep(SftRows())->metrics().at("sft_loss");
  EXPECT_LT(last, first - 0.1);
  const auto after = SentTensors(*trainer_);
  for (const auto& [name, t] : before) {
    EXPECT_EQ(torch::equal(t, after.at(name)), name != "prompt_embeddings") << name;
  }
  auto part = model::SafetensorsFile::Parse(trainer_->GetWeights()->blob);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->tensors().size(), 1u);
  EXPECT_EQ(part->tensors().count("prompt_embeddings"), 1u);
  // Exported in PEFT's prompt-tuning format.
  ASSERT_TRUE(trainer_->SaveCheckpoint("tuned", "").ok());
  ASSERT_TRUE(model::ExportHfDir(root_ + "/tuned", root_ + "/peft", model::HfExportOptions{}).ok());
  auto exported = model::SafetensorsFile::Read(root_ + "/peft/adapter_model.safetensors");
  ASSERT_TRUE(exported.ok()) << exported.status();
  ASSERT_EQ(exported->tensors().count("prompt_embeddings"), 1u);
  const auto& t = exported->tensors().at("prompt_embeddings");
  auto back = torch::from_blob(const_cast<char*>(t.data.data()), t.shape, torch::kFloat32);
  EXPECT_TRUE(torch::equal(back, after.at("prompt_embeddings")));
  std::ifstream config(root_ + "/peft/adapter_config.json");
  const std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"peft_type\": \"PROMPT_TUNING\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"num_virtual_tokens\": 4"), std::string::npos) << text;
}

}  // namespace
}  // namespace grail::learner
