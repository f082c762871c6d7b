#include "algo/objectives.h"

#include "algo/run_spec.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::algo {
namespace {

TEST(ObjectivesTest, EveryEstimatorOfTheEnumIsRegisteredOnceWithItsSpecName) {
  const auto* type = grail::v1::AdvantageEstimator_descriptor();
  EXPECT_EQ(Estimators().size(), static_cast<size_t>(type->value_count() - 1));  // all but UNSPECIFIED
  for (const auto& e : Estimators()) {
    EXPECT_FALSE(e.name.empty());
    EXPECT_EQ(FindEstimator(e.name), &e);
    EXPECT_EQ(FindEstimator(e.id), &e);
  }
  EXPECT_EQ(FindEstimator(grail::v1::ADVANTAGE_ESTIMATOR_UNSPECIFIED)->name, "grpo");
  EXPECT_TRUE(FindEstimator("gae")->needs_critic);
  EXPECT_FALSE(FindEstimator("grpo")->needs_critic);
  EXPECT_TRUE(FindEstimator("rloo")->group_relative);
  EXPECT_FALSE(FindEstimator("reinforce_pp")->group_relative);
  EXPECT_EQ(FindEstimator("ppo"), nullptr);
  EXPECT_EQ(FindEstimator(static_cast<grail::v1::AdvantageEstimator>(99)), nullptr);
}

TEST(ObjectivesTest, SpecNamesRoundTrip) {
  EXPECT_EQ(SpecName(grail::v1::LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM_NORM), "seq-mean-token-sum-norm");
  EXPECT_EQ(SpecName(grail::v1::KL_ESTIMATOR_K3_ST), "k3+");
  EXPECT_EQ(SpecName(grail::v1::POLICY_LOSS_UNSPECIFIED), "");
  EXPECT_EQ(*FromSpecName<grail::v1::PolicyLoss>("cispo"), grail::v1::POLICY_LOSS_CISPO);
  auto bad = FromSpecName<grail::v1::PolicyLoss>("dpo");
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("ppo, gspo, gmpo, cispo"));
}

TEST(ObjectivesTest, GroupRelativeEstimatorsCompareResponsesToTheSamePrompt) {
  EstimatorInputs in;
  in.rewards = Matrix(4, 1);
  in.mask = Matrix(4, 1, 1.0);
  in.index = {0, 0, 1, 1};
  in.scores = {1, 0, 1, 1};
  for (int b = 0; b < 4; ++b) in.rewards.at(b, 0) = in.scores[b];
  for (const char* name : {"grpo", "dr_grpo", "rloo"}) {
    EstimatorOutput out = FindEstimator(name)->fn(in);
    EXPECT_GT(out.advantages.at(0, 0), 0) << name;
    EXPECT_LT(out.advantages.at(1, 0), 0) << name;
    EXPECT_EQ(out.advantages.at(2, 0), 0) << name;  // a uniform group carries no signal
  }
}

TEST(ResolveDefaultsTest, FillsEveryDefaultOnceAndIsIdempotent) {
  grail::v1::RunSpec spec;
  ASSERT_TRUE(ParseConfig("algorithm: {advantage_estimator: gae}\ncritic: {enabled: true}\n"
                          "trainer: {learning_rate: 0.0005, max_staleness: 1}\n",
                          ConfigFormat::kYaml, &spec)
                  .ok());
  ResolveDefaults(&spec);
  const auto& a = spec.algorithm();
  EXPECT_EQ(a.policy_loss(), grail::v1::POLICY_LOSS_PPO);
  EXPECT_EQ(a.loss_agg_mode(), grail::v1::LOSS_AGG_MODE_TOKEN_MEAN);
  EXPECT_EQ(a.kl_estimator(), grail::v1::KL_ESTIMATOR_K3);
  EXPECT_FLOAT_EQ(a.lambda_actor(), 0.95f);
  EXPECT_EQ(a.kl_horizon(), 10000);
  EXPECT_FLOAT_EQ(a.tis_cap(), 2.0f);  // pipelined
  EXPECT_EQ(spec.trainer().lr_schedule(), "constant");
  EXPECT_EQ(spec.trainer().max_sampling_rounds(), 3);
  EXPECT_EQ(spec.critic().init(), "policy");
  EXPECT_FLOAT_EQ(spec.critic().learning_rate(), 0.0005f);  // the trainer's rate
  EXPECT_EQ(spec.reward().verifier(), "math");
  EXPECT_EQ(spec.model().tokenizer(), "char");
  grail::v1::RunSpec again = spec;
  ResolveDefaults(&again);
  EXPECT_EQ(again.SerializeAsString(), spec.SerializeAsString());
}

TEST(ResolveDefaultsTest, HeldOutDefaultIsTheSameRuleForEveryDatasetKind) {
  EXPECT_EQ(DefaultHeldoutSize(10000), 500);
  EXPECT_EQ(DefaultHeldoutSize(100), 10);
  EXPECT_EQ(DefaultHeldoutSize(5), 0);
}

TEST(RunSpecYamlTest, EnumFieldsTakeTheirSpecNames) {
  grail::v1::RunSpec spec;
  ASSERT_TRUE(ParseConfig("algorithm: {advantage_estimator: dr_grpo, loss_agg_mode: seq-mean-token-sum, "
                          "kl_estimator: abs+, policy_loss: POLICY_LOSS_GMPO}\n",
                          ConfigFormat::kYaml, &spec)
                  .ok());
  EXPECT_EQ(spec.algorithm().advantage_estimator(), grail::v1::ADVANTAGE_ESTIMATOR_DR_GRPO);
  EXPECT_EQ(spec.algorithm().loss_agg_mode(), grail::v1::LOSS_AGG_MODE_SEQ_MEAN_TOKEN_SUM);
  EXPECT_EQ(spec.algorithm().kl_estimator(), grail::v1::KL_ESTIMATOR_ABS_ST);
  EXPECT_EQ(spec.algorithm().policy_loss(), grail::v1::POLICY_LOSS_GMPO);
  absl::Status bad = ParseConfig("algorithm: {advantage_estimator: ppo2}\n", ConfigFormat::kYaml, &spec);
  EXPECT_THAT(std::string(bad.message()),
              ::testing::HasSubstr("algorithm.advantage_estimator: expected one of grpo, dr_grpo, rloo"));
}

}  // namespace
}  // namespace grail::algo
