#include "reward/verifiers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::reward {
namespace {

TEST(ExtractAnswerTest, FindsBoxedHashesOrLastNumber) {
  EXPECT_EQ(*ExtractAnswer("so \\boxed{\\frac{1}{2}} done"), "\\frac{1}{2}");
  EXPECT_EQ(*ExtractAnswer("work 3+4\n#### 1,234\n"), "1,234");
  EXPECT_EQ(*ExtractAnswer("12+30=42"), "42");
  EXPECT_EQ(*ExtractAnswer("it is -3.5 now"), "-3.5");
  EXPECT_FALSE(ExtractAnswer("no digits here").has_value());
  EXPECT_FALSE(ExtractAnswer("\\boxed{12").has_value());
  EXPECT_FALSE(ExtractAnswer("####   ").has_value());
}

TEST(ParseNumberTest, EquivalentSpellings) {
  EXPECT_TRUE(AnswersEquivalent("1,234", "1234"));
  EXPECT_TRUE(AnswersEquivalent("0.5", "1/2"));
  EXPECT_TRUE(AnswersEquivalent("\\frac{3}{4}", ".75"));
  EXPECT_TRUE(AnswersEquivalent("$12.50", "12.5"));
  EXPECT_TRUE(AnswersEquivalent("7.", "7"));
  EXPECT_TRUE(AnswersEquivalent("-2", "-2.000"));
  EXPECT_TRUE(AnswersEquivalent("50%", "50"));
  EXPECT_FALSE(AnswersEquivalent("12", "13"));
  EXPECT_FALSE(AnswersEquivalent("1,23", "123"));  // not a thousands separator
  EXPECT_FALSE(AnswersEquivalent("1/0", "1"));
  EXPECT_TRUE(AnswersEquivalent("Paris", " paris "));
  EXPECT_FALSE(AnswersEquivalent("", ""));
  EXPECT_FALSE(ParseNumber("99999999999999999999999999999999999999999").has_value());
}

TEST(VerifyMathTest, ScoresOneOnlyForTheRightAnswer) {
  EXPECT_EQ(VerifyMath("The answer is #### 72", "72").score, 1);
  EXPECT_TRUE(VerifyMath("\\boxed{0.25}", "1/4").correct);
  EXPECT_EQ(VerifyMath("45", "46").score, 0);
  EXPECT_EQ(VerifyMath("", "46").score, 0);
}

TEST(VerifyFormatTest, NeedsAnExplicitMarker) {
  EXPECT_TRUE(VerifyFormat("#### 3").correct);
  EXPECT_TRUE(VerifyFormat("\\boxed{x}").correct);
  EXPECT_FALSE(VerifyFormat("3").correct);
}

TEST(VerifyConstraintsTest, EachConstraint) {
  auto all = VerifyConstraints("Hello world, grail rocks.", R"({"min_words":3,"max_words":4,
      "keyword":"GRAIL","forbidden_char":"!","ends_with":"rocks."})");
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->correct);
  auto half = VerifyConstraints("one two!", R"({"min_words":3,"forbidden_char":"!","max_words":5,"keyword":"two"})");
  EXPECT_DOUBLE_EQ(half->score, 0.5);
  EXPECT_FALSE(half->correct);
  EXPECT_TRUE(VerifyConstraints(R"({"a": 1})", R"({"json":true})")->correct);
  EXPECT_FALSE(VerifyConstraints("not json", R"({"json":true})")->correct);
  auto bad = VerifyConstraints("x", R"({"max_word":3})");
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("constraints_json.max_word"));
  EXPECT_FALSE(VerifyConstraints("x", R"({"min_words":"3"})").ok());
  EXPECT_FALSE(VerifyConstraints("x", "[1]").ok());
}

TEST(OverlongPenaltyTest, MatchesDapo) {
  EXPECT_DOUBLE_EQ(OverlongPenalty(10, 20, 4, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(16, 20, 4, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(18, 20, 4, 1.0), -0.5);
  EXPECT_DOUBLE_EQ(OverlongPenalty(20, 20, 4, 2.0), -2.0);
  EXPECT_DOUBLE_EQ(OverlongPenalty(30, 20, 0, 1.0), 0.0);
}

}  // namespace
}  // namespace grail::reward
