#include "algo/run_spec.h"

#include <cmath>

#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::algo {
namespace {

constexpr char kValid[] = R"(
name: t
model: {config: {vocab_size: 98, hidden_size: 64, num_attention_heads: 4}, tokenizer: char}
dataset: {builtin: arithmetic}
sampling: {temperature: 1.0, max_new_tokens: 8}
algorithm: {advantage_estimator: grpo, group_size: 4}
trainer: {total_steps: 10, prompts_per_step: 8}
)";

grail::v1::RunSpec Parse(const std::string& text) {
  grail::v1::RunSpec spec;
  absl::Status s = ParseConfig(text, ConfigFormat::kYaml, &spec);
  EXPECT_TRUE(s.ok()) << s;
  return spec;
}

TEST(SpecValidationTest, AcceptsValidSpec) {
  EXPECT_TRUE(ValidateRunSpec(Parse(kValid)).ok()) << ValidateRunSpec(Parse(kValid));
  auto gspo = Parse(kValid);
  gspo.mutable_algorithm()->set_policy_loss(grail::v1::POLICY_LOSS_GSPO);
  gspo.mutable_algorithm()->set_loss_agg_mode(grail::v1::LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN);
  EXPECT_TRUE(ValidateRunSpec(gspo).ok());
  auto gfpo = Parse(kValid);
  gfpo.mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GFPO);
  gfpo.mutable_algorithm()->set_gfpo_k(2);
  EXPECT_TRUE(ValidateRunSpec(gfpo).ok());
}

struct Edit {
  std::function<void(grail::v1::RunSpec*)> apply;
  const char* field;
};

class SpecRejectsTest : public ::testing::TestWithParam<Edit> {};

TEST_P(SpecRejectsTest, NamesTheField) {
  grail::v1::RunSpec spec = Parse(kValid);
  GetParam().apply(&spec);
  absl::Status s = ValidateRunSpec(spec);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::StartsWith(GetParam().field));
}

INSTANTIATE_TEST_SUITE_P(
    All, SpecRejectsTest,
    ::testing::Values(
        Edit{[](auto* s) { s->mutable_algorithm()->set_group_size(1); }, "algorithm.group_size"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_advantage_estimator(static_cast<grail::v1::AdvantageEstimator>(99))  /* "ppo2" */; },
             "algorithm.advantage_estimator"},
        Edit{[](auto* s) { s->mutable_model()->clear_config(); }, "model"},
        Edit{[](auto* s) { s->mutable_trainer()->set_value_pretrain_steps(2); }, "trainer.value_pretrain_steps"},
        Edit{[](auto* s) {
               s->mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
               s->mutable_critic()->set_enabled(true);
               s->mutable_trainer()->set_value_pretrain_steps(10);
             },
             "trainer.value_pretrain_steps"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE); },
             "algorithm.advantage_estimator"},
        Edit{[](auto* s) { s->mutable_critic()->set_enabled(true); }, "critic.enabled"},
        Edit{[](auto* s) {
               s->mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
               s->mutable_critic()->set_enabled(true);
               s->mutable_critic()->set_init("reward_model");
             },
             "critic.init"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_lambda_actor(1.5); }, "algorithm.lambda_actor"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_policy_loss(static_cast<grail::v1::PolicyLoss>(99))  /* "dpo" */; }, "algorithm.policy_loss"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_policy_loss(grail::v1::POLICY_LOSS_GSPO); }, "algorithm.loss_agg_mode"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_loss_agg_mode(static_cast<grail::v1::LossAggMode>(99))  /* "seq-sum" */; }, "algorithm.loss_agg_mode"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_kl_estimator(static_cast<grail::v1::KlEstimator>(99))  /* "k4" */; }, "algorithm.kl_estimator"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_clip_ratio_high(-0.1); }, "algorithm.clip_ratio_high"},
        Edit{[](auto* s) {
               s->mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GFPO);
               s->mutable_algorithm()->set_gfpo_k(5);
             },
             "algorithm.gfpo_k"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_length_adaptive_alpha(-1); },
             "algorithm.length_adaptive_alpha"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_kl_target(-1); }, "algorithm.kl_target"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_clip_ratio_c(0.5); }, "algorithm.clip_ratio_c"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_kl_coef(-1); }, "algorithm.kl_coef"},
        Edit{[](auto* s) { s->mutable_model()->set_path("x"); }, "model"},
        Edit{[](auto* s) { s->mutable_model()->mutable_config()->set_num_attention_heads(5); },
             "model.config"},
        Edit{[](auto* s) { s->mutable_dataset()->set_jsonl_path("a.jsonl"); }, "dataset"},
        Edit{[](auto* s) { s->mutable_dataset()->set_builtin("chess"); }, "dataset.builtin"},
        Edit{[](auto* s) { s->mutable_sampling()->set_top_p(1.5); }, "sampling.top_p"},
        Edit{[](auto* s) { s->mutable_sampling()->set_max_new_tokens(0); }, "sampling.max_new_tokens"},
        Edit{[](auto* s) { s->mutable_trainer()->set_total_steps(0); }, "trainer.total_steps"},
        Edit{[](auto* s) { s->mutable_trainer()->set_prompts_per_step(-1); },
             "trainer.prompts_per_step"},
        // Non-finite and unbounded values: never replaced by a default, never allocated.
        Edit{[](auto* s) { s->mutable_trainer()->set_learning_rate(std::nanf("")); }, "trainer.learning_rate"},
        Edit{[](auto* s) { s->mutable_trainer()->set_learning_rate(INFINITY); }, "trainer.learning_rate"},
        Edit{[](auto* s) { s->mutable_sampling()->set_temperature(-INFINITY); }, "sampling.temperature"},
        Edit{[](auto* s) { s->mutable_model()->mutable_config()->set_rope_theta(std::nan("")); },
             "model.config.rope_theta"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_kl_coef(std::nanf("")); }, "algorithm.kl_coef"},
        Edit{[](auto* s) { s->mutable_trainer()->set_prompts_per_step(1000000000); }, "trainer.prompts_per_step"},
        Edit{[](auto* s) { s->mutable_trainer()->set_prompts_per_step(20000); }, "trainer.prompts_per_step"},
        Edit{[](auto* s) { s->mutable_algorithm()->set_group_size(1 << 30); }, "algorithm.group_size"},
        Edit{[](auto* s) { s->mutable_sampling()->set_max_new_tokens(200000); }, "sampling.max_new_tokens"},
        Edit{[](auto* s) { s->mutable_dataset()->set_max_digits(10); }, "dataset.max_digits"},
        Edit{[](auto* s) { s->mutable_dataset()->set_train_size(2000000000); }, "dataset.train_size"},
        Edit{[](auto* s) { s->mutable_dataset()->set_heldout_size(2000000000); }, "dataset.heldout_size"},
        Edit{[](auto* s) { s->mutable_trainer()->set_eval_every(-3); }, "trainer.eval_every"},
        Edit{[](auto* s) { s->mutable_trainer()->set_sft_target_accuracy(0.5); }, "trainer.sft_target_accuracy"},
        Edit{[](auto* s) {
               s->mutable_trainer()->set_sft_steps(10);
               s->mutable_trainer()->set_sft_target_accuracy(1.5);
             },
             "trainer.sft_target_accuracy"},
        Edit{[](auto* s) {
               s->mutable_trainer()->set_sft_steps(10);
               s->mutable_trainer()->set_sft_target_holds(2);
             },
             "trainer.sft_target_holds"},
        Edit{[](auto* s) {
               s->mutable_trainer()->set_sft_steps(10);
               s->mutable_trainer()->set_sft_target_accuracy(0.5);
               s->mutable_trainer()->set_sft_target_holds(-1);
             },
             "trainer.sft_target_holds"},
        Edit{[](auto* s) { s->mutable_trainer()->set_ppo_epochs(1000000); }, "trainer.ppo_epochs"},
        Edit{[](auto* s) {
               s->mutable_trainer()->set_sft_steps(10);
               s->mutable_trainer()->set_sft_epochs(2);
             },
             "trainer.sft_epochs"},
        Edit{[](auto* s) { s->mutable_trainer()->set_sft_epochs(1000); }, "trainer.sft_epochs"},
        Edit{[](auto* s) {
               s->mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
               s->mutable_model()->mutable_peft()->set_num_virtual_tokens(4);
             },
             "model.peft.num_virtual_tokens"},
        Edit{[](auto* s) {
               s->mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_PROMPT_TUNING);
               s->mutable_model()->mutable_peft()->set_r(8);
             },
             "model.peft.type"},
        Edit{[](auto* s) {
               s->mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_PROMPT_TUNING);
               s->mutable_model()->set_quantize("nf4");
             },
             "model.quantize"},
        Edit{[](auto* s) {
               s->mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
               s->mutable_model()->mutable_trainable()->set_layers("last:1");
             },
             "model.trainable"},
        Edit{[](auto* s) { s->mutable_model()->mutable_trainable()->set_layers("first:2"); },
             "model.trainable.layers"},
        Edit{[](auto* s) {
               s->mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
               s->mutable_model()->mutable_peft()->add_target_modules("qkv");
             },
             "model.peft.target_modules"},
        Edit{[](auto* s) { s->mutable_preference()->mutable_sampled_pairs()->set_prompts(10); },
             "preference.sampled_pairs"},
        Edit{[](auto* s) {
               s->mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
               s->mutable_preference()->mutable_sampled_pairs()->set_prompts(10);
               s->mutable_preference()->mutable_sampled_pairs()->set_samples(1);
             },
             "preference.sampled_pairs.samples"},
        Edit{[](auto* s) {
               s->mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_DPO);
               s->mutable_preference()->mutable_sampled_pairs()->set_samples(4);
             },
             "preference.sampled_pairs.prompts"},
        Edit{[](auto* s) { s->mutable_model()->mutable_config()->set_hidden_size(1 << 20); },
             "model.config.hidden_size"},
        Edit{[](auto* s) {  // every dimension allowed, the product is not
               s->mutable_model()->mutable_config()->set_vocab_size(1000000);
               s->mutable_model()->mutable_config()->set_hidden_size(4096);
             },
             "model.config"},
        Edit{[](auto* s) { s->mutable_model()->mutable_config()->set_max_position_embeddings(1 << 30); },
             "model.config.max_position_embeddings"}));

constexpr char kStages[] = R"(
stages:
  - {name: sft, kind: sft, trainer: {sft_steps: 30, learning_rate: 0.002}}
  - {name: rm, kind: preference, preference: {objective: reward_model}, trainer: {total_steps: 5}}
  - {name: ppo, kind: rl, from: sft, reward: {verifier: rm, model: rm}, trainer: {total_steps: 4}}
)";

TEST(StageRunSpecTest, MergesTheStageOverTheRunAndAppliesItsKind) {
  const grail::v1::RunSpec run = Parse(std::string(kValid) + kStages);
  ASSERT_TRUE(ValidateRunSpec(run).ok()) << ValidateRunSpec(run);
  const grail::v1::RunSpec sft = StageRunSpec(run, 0);
  EXPECT_EQ(sft.stages_size(), 0);
  EXPECT_EQ(sft.name(), "t/sft");
  EXPECT_EQ(sft.trainer().total_steps(), 0);  // the warm-up only
  EXPECT_EQ(sft.trainer().sft_steps(), 30);
  EXPECT_EQ(sft.trainer().prompts_per_step(), 8);  // the run's
  EXPECT_FLOAT_EQ(sft.trainer().learning_rate(), 0.002f);
  EXPECT_EQ(sft.trainer().checkpoint_every(), 1);  // a stage always ends with a checkpoint
  const grail::v1::RunSpec rm = StageRunSpec(run, 1);
  EXPECT_EQ(rm.preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL);
  EXPECT_EQ(rm.trainer().total_steps(), 5);
  EXPECT_EQ(rm.trainer().sft_steps(), 0);
  EXPECT_FLOAT_EQ(rm.trainer().learning_rate(), 1e-4f);  // the resolved default, not the sft stage's
  EXPECT_EQ(rm.trainer().checkpoint_every(), 5);
  const grail::v1::RunSpec ppo = StageRunSpec(run, 2);
  EXPECT_EQ(ppo.preference().objective(), grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED);
  EXPECT_EQ(ppo.reward().verifier(), "rm");
  EXPECT_EQ(ppo.reward().model(), "rm");
  EXPECT_EQ(ppo.algorithm().group_size(), 4);
}

class StageRejectsTest : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(StageRejectsTest, NamesTheStageAndField) {
  absl::Status s = ValidateRunSpec(Parse(std::string(kValid) + GetParam().first));
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(GetParam().second));
}

INSTANTIATE_TEST_SUITE_P(
    All, StageRejectsTest,
    ::testing::Values(
        std::pair{"stages: [{name: a, kind: sft}]", "stages[0] (a): trainer.sft_steps"},
        std::pair{"stages: [{name: a, kind: rl}, {name: a, kind: rl}]", "stages[1].name"},
        std::pair{"stages: [{name: ../up, kind: rl}]", "stages[0].name"},
        std::pair{"stages: [{name: a}]", "stages[0].kind"},
        std::pair{"stages: [{name: a, kind: rl, from: b}, {name: b, kind: rl}]", "stages[0].from"},
        std::pair{"stages: [{name: a, kind: preference}]", "stages[0] (a): preference.objective"},
        std::pair{"stages: [{name: a, kind: rl}, {name: b, kind: rl, reward: {verifier: rm, model: a}}]",
                  "stages[1] (b): reward.model"},
        std::pair{"stages: [{name: a, kind: rl, algorithm: {group_size: 1}}]", "stages[0] (a): algorithm.group_size"},
        // sampled_pairs.policy names a stage that trains a policy, not a reward model or itself.
        std::pair{"stages: [{name: r, kind: preference, preference: {objective: reward_model}}, {name: b, kind: "
                  "preference, preference: {objective: reward_model, sampled_pairs: {prompts: 4, policy: r}}}]",
                  "stages[1] (b): preference.sampled_pairs.policy"},
        std::pair{"stages: [{name: b, kind: preference, preference: {objective: reward_model, sampled_pairs: "
                  "{prompts: 4, policy: b}}}]",
                  "stages[0] (b): preference.sampled_pairs.policy"},
        std::pair{"stages: [{name: b, kind: preference, preference: {objective: reward_model, sampled_pairs: "
                  "{policy: ckpt}}}]",
                  "stages[0] (b): preference.sampled_pairs.policy"}));

}  // namespace
}  // namespace grail::algo
