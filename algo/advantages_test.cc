#include "algo/advantages.h"

#include <cmath>

#include "gtest/gtest.h"

namespace grail::algo {
namespace {

TEST(GrpoTest, NormalisesWithinGroups) {
  // Groups 7 = {1, 0, 1, 0}, 9 = {0.5} interleaved.
  std::vector<double> scores = {1, 0, 0.5, 1, 0};
  std::vector<int64_t> index = {7, 7, 9, 7, 7};
  auto adv = GrpoAdvantages(scores, index, 1e-6, true);
  const double std = std::sqrt(1.0 / 3.0);  // unbiased std of {1,0,1,0}
  EXPECT_NEAR(adv[0], 0.5 / (std + 1e-6), 1e-9);
  EXPECT_NEAR(adv[1], -0.5 / (std + 1e-6), 1e-9);
  EXPECT_NEAR(adv[2], 0.5 / (1 + 1e-6), 1e-9);  // group of one: mean 0, std 1
  auto dr = GrpoAdvantages(scores, index, 1e-6, false);
  EXPECT_DOUBLE_EQ(dr[0], 0.5);
  EXPECT_DOUBLE_EQ(dr[4], -0.5);
  EXPECT_DOUBLE_EQ(dr[2], 0.5);
}

TEST(GroupFilterTest, DropsAllEqualGroups) {
  std::vector<double> scores = {1, 1, 0, 1, 3, 2};
  std::vector<int64_t> index = {1, 1, 2, 2, 3, 4};
  auto kept = GroupFilter(scores, index);
  EXPECT_EQ(kept, (std::vector<bool>{false, false, true, true, true, true}));
}

}  // namespace
}  // namespace grail::algo
