#include "coordinator/dataset.h"

#include <unistd.h>

#include <fstream>
#include <set>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

using ::testing::HasSubstr;

TEST(ArithmeticTest, SplitsAreSeededDisjointAndCorrect) {
  ArithmeticOptions o;
  o.seed = 3;
  o.max_digits = 2;
  o.heldout_size = 500;
  auto a = MakeArithmeticSplits(o);
  auto b = MakeArithmeticSplits(o);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->heldout.size(), 500u);
  EXPECT_EQ(a->train.size(), 10000u - 500u);
  std::set<std::string> heldout;
  for (const auto& p : a->heldout.problems()) heldout.insert(p.prompt);
  EXPECT_EQ(heldout.size(), 500u);
  for (const auto& p : a->train.problems()) EXPECT_FALSE(heldout.count(p.prompt)) << p.prompt;
  for (size_t i = 0; i < 50; ++i) EXPECT_EQ(a->train.Get(i).prompt, b->train.Get(i).prompt);
  const Problem& p = a->train.Get(7);
  int x, y;
  ASSERT_EQ(sscanf(p.prompt.c_str(), "%d+%d=", &x, &y), 2);
  EXPECT_EQ(p.answer, std::to_string(x + y));
  o.seed = 4;
  EXPECT_NE(MakeArithmeticSplits(o)->heldout.Get(0).prompt + MakeArithmeticSplits(o)->heldout.Get(1).prompt,
            a->heldout.Get(0).prompt + a->heldout.Get(1).prompt);
}

TEST(ArithmeticTest, LargeDigitCountsSampleWithoutEnumerating) {
  ArithmeticOptions o;
  o.max_digits = 6;
  o.train_size = 2000;
  o.heldout_size = 100;
  auto s = MakeArithmeticSplits(o);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->train.size(), 2000u);
  o.max_digits = 1;
  o.train_size = 0;
  o.heldout_size = 200;
  EXPECT_FALSE(MakeArithmeticSplits(o).ok());  // only 100 problems exist
}

TEST(ArithmeticTest, NineDigitsWithDefaultsStayBounded) {
  ArithmeticOptions o;
  o.max_digits = 9;  // 10^18 problems: an unset train_size takes kDefaultMaxTrain of them
  o.heldout_size = 10;
  auto s = MakeArithmeticSplits(o);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->train.size(), static_cast<size_t>(kDefaultMaxTrain));
  o.train_size = kMaxProblems;
  EXPECT_THAT(std::string(MakeArithmeticSplits(o).status().message()), HasSubstr("above the limit"));
}

TEST(DatasetCursorTest, DeterministicEpochsAndResume) {
  DatasetCursor a(10, 42);
  std::vector<size_t> first;
  for (int i = 0; i < 25; ++i) first.push_back(a.Next());
  std::set<size_t> epoch0(first.begin(), first.begin() + 10);
  EXPECT_EQ(epoch0.size(), 10u);  // a permutation
  EXPECT_NE(std::vector<size_t>(first.begin(), first.begin() + 10),
            std::vector<size_t>(first.begin() + 10, first.begin() + 20));
  DatasetCursor b(10, 42);
  for (int i = 0; i < 13; ++i) b.Next();
  DatasetCursor resumed(10, 42, b.state());
  for (int i = 13; i < 25; ++i) EXPECT_EQ(resumed.Next(), first[i]);
}

}  // namespace
}  // namespace grail::coordinator
