#include "reward/reward_scorer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::reward {
namespace {

TEST(RewardScorerTest, ScoresEachItemWithItsVerifier) {
  auto scorer = RewardScorer::Create({});
  ASSERT_TRUE(scorer.ok());
  grail::v1::ScoreRequest req;
  auto add = [&](const char* verifier, const char* response, const char* answer, int len = 2) {
    auto* it = req.add_items();
    it->set_verifier(verifier);
    it->set_response(response);
    it->set_answer(answer);
    it->set_response_length(len);
  };
  add("math", "46", "46");
  add("math", "47", "46");
  add("format", "#### 3", "");
  add("rm", "x", "");
  req.mutable_overlong()->set_max_response_length(10);
  req.mutable_overlong()->set_buffer_length(4);
  req.mutable_overlong()->set_penalty_factor(1.0);
  add("math", "46", "46", 8);  // 2 tokens into the buffer: -0.5
  auto res = (*scorer)->Score(req);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->scores_size(), 5);
  EXPECT_EQ(res->scores(0).score(), 1);
  EXPECT_EQ(res->scores(1).score(), 0);
  EXPECT_FALSE(res->scores(1).failed());
  EXPECT_TRUE(res->scores(2).correct());
  EXPECT_TRUE(res->scores(3).failed());
  EXPECT_FALSE(res->scores(3).error().empty());
  EXPECT_FLOAT_EQ(res->scores(4).score(), 0.5f);
  EXPECT_TRUE(res->scores(4).correct());
}

TEST(RewardScorerTest, AnUnscorableItemFailsAloneNamingItself) {
  auto scorer = RewardScorer::Create({});
  grail::v1::ScoreRequest req;
  auto* good = req.add_items();
  good->set_verifier("math");
  good->set_response("46");
  good->set_answer("46");
  req.add_items()->set_verifier("magic");
  auto* it = req.add_items();
  it->set_verifier("ifeval");
  it->set_constraints_json("{\"nope\":1}");
  auto res = (*scorer)->Score(req);
  ASSERT_TRUE(res.ok()) << res.status();
  ASSERT_EQ(res->scores_size(), 3);
  EXPECT_FALSE(res->scores(0).failed());
  EXPECT_EQ(res->scores(0).score(), 1);
  EXPECT_TRUE(res->scores(1).failed());
  EXPECT_THAT(res->scores(1).error(), ::testing::HasSubstr("items[1].verifier"));
  EXPECT_TRUE(res->scores(2).failed());
  EXPECT_THAT(res->scores(2).error(), ::testing::HasSubstr("items[2].constraints_json.nope"));
  // A failed item is never a reward.
  EXPECT_EQ(res->scores(2).score(), 0);
  EXPECT_FALSE(res->scores(2).correct());
}

TEST(RewardScorerTest, LongResponsesAreScoredWithoutCrashing) {
  auto scorer = RewardScorer::Create({});
  grail::v1::ScoreRequest req;
  for (size_t n : {size_t{24000}, size_t{32768}, size_t{1} << 20, size_t{4} << 20}) {
    auto* it = req.add_items();
    it->set_verifier("math");
    it->set_response(std::string(n, '7'));
    it->set_answer("7");
  }
  auto* mixed = req.add_items();  // many short numbers, the last one right
  mixed->set_verifier("math");
  std::string text;
  for (int i = 0; i < 200000; ++i) text += "1, ";
  mixed->set_response(text + "so 12");
  mixed->set_answer("12");
  auto* fmt = req.add_items();
  fmt->set_verifier("format");
  fmt->set_response(std::string(1 << 20, '{') + "#### 5");
  auto res = (*scorer)->Score(req);
  ASSERT_TRUE(res.ok()) << res.status();
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(res->scores(i).failed());
    EXPECT_FALSE(res->scores(i).correct()) << i;  // a huge number is not 7
  }
  EXPECT_TRUE(res->scores(4).correct());
  EXPECT_TRUE(res->scores(5).correct());
}

}  // namespace
}  // namespace grail::reward
