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

TEST(RewardScorerTest, RejectsBadRequestsNamingTheItem) {
  auto scorer = RewardScorer::Create({});
  grail::v1::ScoreRequest req;
  req.add_items()->set_verifier("math");
  req.add_items()->set_verifier("magic");
  auto res = (*scorer)->Score(req);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(res.status().message()), ::testing::HasSubstr("items[1].verifier"));
  grail::v1::ScoreRequest bad_constraints;
  auto* it = bad_constraints.add_items();
  it->set_verifier("ifeval");
  it->set_constraints_json("{\"nope\":1}");
  EXPECT_THAT(std::string((*scorer)->Score(bad_constraints).status().message()),
              ::testing::HasSubstr("items[0].constraints_json.nope"));
}

}  // namespace
}  // namespace grail::reward
