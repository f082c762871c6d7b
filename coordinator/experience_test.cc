#include "coordinator/experience.h"

#include <cmath>
#include <cstring>

#include "algo/run_spec.h"
#include "coordinator/run_state.h"
#include "coordinator/step_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

grail::v1::Sample MakeSample(std::vector<int> prompt, std::vector<int> response, float behaviour_lp) {
  grail::v1::Sample s;
  for (int id : prompt) s.add_prompt_token_ids(id);
  for (int id : response) {
    s.add_token_ids(id);
    s.add_behavior_log_probs(behaviour_lp);
  }
  return s;
}

// An algorithm spec with every default filled in, as the loop gets it.
grail::v1::AlgorithmSpec Resolved(grail::v1::AdvantageEstimator estimator) {
  grail::v1::RunSpec spec;
  spec.mutable_algorithm()->set_advantage_estimator(estimator);
  algo::ResolveDefaults(&spec);
  return spec.algorithm();
}

template <typename T>
std::vector<T> Values(const grail::v1::Tensor& t) {
  std::vector<T> out(t.data().size() / sizeof(T));
  std::memcpy(out.data(), t.data().data(), t.data().size());
  return out;
}

TEST(ExperienceTest, PacksPromptAndResponseRightPaddedWithThePadId) {
  auto a = MakeSample({1, 5}, {6, 2}, -0.5f), b = MakeSample({1}, {7}, -0.5f);
  const Packed p = PackSequences({&a, &b}, /*pad_id=*/9);
  EXPECT_EQ(p.width, 4u);
  EXPECT_EQ(p.ids, (std::vector<int64_t>{1, 5, 6, 2, 1, 7, 9, 9}));
  EXPECT_EQ(p.valid, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 0, 0}));
}

TEST(ExperienceTest, KlInTheRewardAndGroupRelativeAdvantages) {
  // One prompt, two responses: right (score 1) and wrong (score 0).
  auto right = MakeSample({1, 5}, {6, 2}, -0.5f), wrong = MakeSample({1, 5}, {7, 2}, -0.5f);
  const SamplePtrs samples = {&right, &wrong};
  const std::vector<std::vector<float>> ref = {{0, -1, -1, -1}, {0, -1, -0.25f, -0.25f}};
  const BehaviourKl kl = BehaviourMinusReference(samples, ref);
  EXPECT_THAT(kl.k1[0], ::testing::ElementsAre(0.5, 0.5));
  EXPECT_THAT(kl.k1[1], ::testing::ElementsAre(-0.25, -0.25));
  EXPECT_DOUBLE_EQ(kl.mean, 0.125);

  grail::v1::AlgorithmSpec algorithm = Resolved(grail::v1::ADVANTAGE_ESTIMATOR_DR_GRPO);
  auto adv = EstimateAdvantages(algorithm, false, samples, {1.0, 0.0}, {3, 3}, kl, /*kl_coef=*/0.0, nullptr);
  ASSERT_TRUE(adv.ok()) << adv.status();
  EXPECT_DOUBLE_EQ(adv->advantages.at(0, 0), 0.5);  // score minus the group mean, on every token
  EXPECT_DOUBLE_EQ(adv->advantages.at(1, 1), -0.5);
  EXPECT_FALSE(adv->has_critic);

  // KL in the reward lowers the return of the response that drifted from the reference.
  auto with_kl = EstimateAdvantages(algorithm, false, samples, {1.0, 0.0}, {3, 3}, kl, /*kl_coef=*/1.0, nullptr);
  ASSERT_TRUE(with_kl.ok());
  EXPECT_LT(with_kl->advantages.at(0, 0), adv->advantages.at(0, 0));

  algorithm.set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
  auto no_values = EstimateAdvantages(algorithm, false, samples, {1.0, 0.0}, {3, 3}, kl, 0.0, nullptr);
  EXPECT_EQ(no_values.status().code(), absl::StatusCode::kInternal);
  algorithm.set_advantage_estimator(static_cast<grail::v1::AdvantageEstimator>(99))  /* "nope" */;
  EXPECT_EQ(EstimateAdvantages(algorithm, false, samples, {1.0, 0.0}, {3, 3}, kl, 0.0, nullptr).status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST(ExperienceTest, GaeUsesTheCriticValuesAtResponsePositions) {
  auto s = MakeSample({1, 5}, {6, 2}, -0.5f);
  const SamplePtrs samples = {&s};
  grail::v1::ComputeValuesResponse resp;
  *resp.mutable_values() = FloatMatrix(1, 4, {9, 9, 0.25f, 0.75f});
  auto values = ResponseValues(resp, samples);
  ASSERT_TRUE(values.ok());
  EXPECT_DOUBLE_EQ(values->at(0, 0), 0.25);
  EXPECT_DOUBLE_EQ(values->at(0, 1), 0.75);
  *resp.mutable_values() = FloatMatrix(1, 3, {0, 0, 0});
  EXPECT_EQ(ResponseValues(resp, samples).status().code(), absl::StatusCode::kInternal);

  grail::v1::AlgorithmSpec algorithm = Resolved(grail::v1::ADVANTAGE_ESTIMATOR_GAE);
  algorithm.set_lambda_actor(1.0f);
  BehaviourKl kl;
  kl.k1 = {{0, 0}};
  auto adv = EstimateAdvantages(algorithm, false, samples, {1.0}, {0}, kl, 0.0, &*values);
  ASSERT_TRUE(adv.ok()) << adv.status();
  ASSERT_TRUE(adv->has_critic);
  // gamma = lambda = 1: the return is the score; the advantage is the score minus V(s_t)
  // (0.75, then 0.25), whitened over the batch's tokens.
  EXPECT_DOUBLE_EQ(adv->returns.at(0, 0), 1.0);
  EXPECT_DOUBLE_EQ(adv->returns.at(0, 1), 1.0);
  EXPECT_NEAR(adv->advantages.at(0, 0), 1 / std::sqrt(2.0), 1e-6);
  EXPECT_NEAR(adv->advantages.at(0, 1), -1 / std::sqrt(2.0), 1e-6);

  const auto train = TrainStepRequest(4, samples, {{0, -1, -1, -1}}, *adv, /*critic_only=*/true,
                                      /*mask_truncated=*/false, 0);
  EXPECT_EQ(train.step(), 4);
  EXPECT_TRUE(train.critic_only());
  EXPECT_THAT(Values<float>(train.experience().response_mask()), ::testing::ElementsAre(0, 0, 1, 1));
  EXPECT_THAT(Values<float>(train.experience().values()), ::testing::ElementsAre(0, 0, 0.25f, 0.75f));
  EXPECT_THAT(Values<float>(train.experience().old_log_probs()), ::testing::ElementsAre(0, 0, -0.5f, -0.5f));
}

TEST(ExperienceTest, TruncatedResponsesCanBeMaskedFromTheLoss) {
  auto done = MakeSample({1}, {6, 2}, -0.5f), cut = MakeSample({1}, {6, 6}, -0.5f);
  cut.set_finish_reason(grail::v1::FINISH_REASON_LENGTH);
  StepAdvantages adv;
  adv.advantages = Matrix(2, 2, 1.0);
  const std::vector<std::vector<float>> ref = {{0, 0, 0}, {0, 0, 0}};
  const auto kept = TrainStepRequest(1, {&done, &cut}, ref, adv, false, /*mask_truncated=*/false, 0);
  EXPECT_THAT(Values<float>(kept.experience().response_mask()), ::testing::ElementsAre(0, 1, 1, 0, 1, 1));
  const auto masked = TrainStepRequest(1, {&done, &cut}, ref, adv, false, /*mask_truncated=*/true, 0);
  EXPECT_THAT(Values<float>(masked.experience().response_mask()), ::testing::ElementsAre(0, 1, 1, 0, 0, 0));
}

TEST(ExperienceTest, SupervisedStepPadsAndKeepsEachRowsMask) {
  const auto req = SupervisedStepRequest(3, {{{1, 5, 6, 7, 2}, {0, 0, 0, 1, 1}}, {{1, 5, 2}, {0, 0, 1}}}, /*pad_id=*/0);
  EXPECT_EQ(req.step(), 3);
  EXPECT_THAT(req.input_ids().shape(), ::testing::ElementsAre(2, 5));
  EXPECT_THAT(Values<int64_t>(req.input_ids()), ::testing::ElementsAre(1, 5, 6, 7, 2, 1, 5, 2, 0, 0));
  EXPECT_THAT(Values<float>(req.loss_mask()), ::testing::ElementsAre(0, 0, 0, 1, 1, 0, 0, 1, 0, 0));
}

// Packing: longest first, first fit, each sequence once with its own mask, segment ids per
// sequence and a segment of its own for the padding; a sequence longer than the pack
// length keeps a row of its own.
TEST(ExperienceTest, SupervisedStepPacksSequencesIntoRows) {
  const std::vector<SupervisedRow> rows = {{{1, 5, 2}, {0, 1, 1}},
                                           {{1, 6, 6, 6, 2}, {0, 0, 1, 1, 1}},
                                           {{1, 7, 2}, {0, 0, 1}},
                                           {{1, 8, 8, 8, 8, 8, 8, 2}, {0, 1, 1, 1, 1, 1, 1, 1}}};
  const auto req = SupervisedStepRequest(1, rows, /*pad_id=*/0, /*pack_length=*/6);
  // The 8-token sequence alone (over 6); the 5-token one, which neither 3-token one fits
  // beside; the two 3-token ones together.
  EXPECT_THAT(req.input_ids().shape(), ::testing::ElementsAre(3, 8));
  EXPECT_THAT(Values<int64_t>(req.input_ids()),
              ::testing::ElementsAre(1, 8, 8, 8, 8, 8, 8, 2,  //
                                     1, 6, 6, 6, 2, 0, 0, 0,  //
                                     1, 5, 2, 1, 7, 2, 0, 0));
  EXPECT_THAT(Values<float>(req.loss_mask()),
              ::testing::ElementsAre(0, 1, 1, 1, 1, 1, 1, 1,  //
                                     0, 0, 1, 1, 1, 0, 0, 0,  //
                                     0, 1, 1, 0, 0, 1, 0, 0));
  EXPECT_THAT(Values<int64_t>(req.segment_ids()),
              ::testing::ElementsAre(0, 0, 0, 0, 0, 0, 0, 0,  //
                                     0, 0, 0, 0, 0, 1, 1, 1,  //
                                     0, 0, 0, 1, 1, 1, 2, 2));
  // Unpacked requests carry no segment ids.
  EXPECT_FALSE(SupervisedStepRequest(1, rows, 0).has_segment_ids());
}

TEST(ExperienceTest, ReferenceLogProbsAreShiftedIntoInputAlignment) {
  grail::v1::LogProbsResponse resp;
  *resp.mutable_log_probs() = FloatMatrix(1, 2, {-1, -2});
  auto aligned = AlignedLogProbs(resp, 1, 3);
  ASSERT_TRUE(aligned.ok());
  EXPECT_THAT((*aligned)[0], ::testing::ElementsAre(0, -1, -2));
  EXPECT_EQ(AlignedLogProbs(resp, 1, 4).status().code(), absl::StatusCode::kInternal);
}

TEST(StepMetricsTest, TalliesEverySampledGroup) {
  auto a = MakeSample({1}, {6, 2}, 0), b = MakeSample({1}, {6, 6, 6}, 0);
  b.set_finish_reason(grail::v1::FINISH_REASON_LENGTH);
  SamplingTally tally;
  tally.AddGroup({a, b}, {1.0, 0.0}, {true, false});
  tally.AddGroup({a, a}, {1.0, 1.0}, {true, true});
  tally.Filtered(2);
  auto st = tally.Stats(/*groups_trained=*/1, /*target_groups=*/2, /*rounds=*/1, /*weights_version=*/4);
  EXPECT_DOUBLE_EQ(st["accuracy"], 0.75);
  EXPECT_DOUBLE_EQ(st["response_length_mean"], 2.25);
  EXPECT_DOUBLE_EQ(st["response_length_max"], 3);
  EXPECT_DOUBLE_EQ(st["truncation_ratio"], 0.25);
  EXPECT_DOUBLE_EQ(st["filtered_group_ratio"], 0.5);
  EXPECT_DOUBLE_EQ(st["batch_underfilled"], 1);
  EXPECT_DOUBLE_EQ(st["behaviour_policy_version"], 4);
  EXPECT_DOUBLE_EQ(tally.generated_tokens(), 9);
  auto r = RewardStats(tally.scores());
  EXPECT_DOUBLE_EQ(r["reward_mean"], 0.75);
  EXPECT_DOUBLE_EQ(r["reward_std"], 0.5);
  // No sample was verified behind a reward model: no answer_accuracy.
  EXPECT_EQ(st.count("answer_accuracy"), 0u);
  tally.AnswerVerdicts({1.0, 2.0}, {1, 1});
  EXPECT_DOUBLE_EQ(tally.Stats(1, 2, 1, 4)["answer_accuracy"], 1.0);
  EXPECT_EQ(tally.Stats(1, 2, 1, 4).count("answer_ranking_accuracy"), 0u);  // no mixed group yet
  // One correct sample against three wrong ones: ranked above two, tied with one, and one
  // unchecked sample that counts nowhere.
  tally.AnswerVerdicts({0.5, 0.2, 0.7, 0.5, 9.0}, {0, 0, 1, 1, -1});
  tally.AnswerVerdicts({0.0}, {-1});
  const auto with = tally.Stats(1, 2, 1, 4);
  EXPECT_DOUBLE_EQ(with.at("answer_accuracy"), 4.0 / 6.0);
  // Pairs (correct, wrong): (0.7, 0.5), (0.7, 0.2), (0.5, 0.5) tie, (0.5, 0.2).
  EXPECT_DOUBLE_EQ(with.at("answer_ranking_accuracy"), 3.5 / 4.0);
}

TEST(RunStateTest, RoundTripsAndReadsWhatEarlierVersionsWrote) {
  grail::v1::LoopState state;
  state.set_step(7);
  state.mutable_train_cursor()->set_epoch(2);
  state.mutable_train_cursor()->set_offset(13);
  state.set_next_prompt_id(400);
  state.set_filtered_estimate(0.25);
  state.set_kl_in_reward_coef(0.002);
  state.set_reference_checkpoint("run-000001/step-000000");
  auto back = DecodeLoopState(EncodeLoopState(state));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->step(), 7);
  EXPECT_EQ(back->train_cursor().offset(), 13u);
  EXPECT_EQ(back->reference_checkpoint(), "run-000001/step-000000");
  // The JSON an earlier coordinator wrote (numbers, not strings, for 64-bit fields).
  auto old = DecodeLoopState(
      R"({"format":"grail-run-state-v1","step":3,"train_cursor":{"epoch":0,"offset":96},"next_prompt_id":120,)"
      R"("filtered_estimate":0.2,"kl_in_reward_coef":0.001,"reference_checkpoint":"r/step-000000"})");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->train_cursor().offset(), 96u);
  EXPECT_FALSE(DecodeLoopState("{}").ok());
  EXPECT_FALSE(DecodeLoopState("not json").ok());
  EXPECT_FALSE(DecodeLoopState(R"({"format":"grail-run-state-v1","step":-1})").ok());
}

}  // namespace
}  // namespace grail::coordinator
