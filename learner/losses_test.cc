// Properties of the objectives checked directly (the shared conformance vectors cover their
// values through grail-algo; these pin behaviour a refactor could silently change).
#include "learner/losses.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::learner {
namespace {

torch::Tensor T(std::vector<std::vector<double>> rows) {
  const int64_t r = static_cast<int64_t>(rows.size()), c = static_cast<int64_t>(rows[0].size());
  auto t = torch::zeros({r, c}, torch::kFloat64);
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < c; ++j) t[i][j] = rows[i][j];
  }
  return t;
}

TEST(LossesTest, AggregationModesWeighTokensAndRowsAsDocumented) {
  // Row 0 has three valid tokens, row 1 one.
  auto loss = T({{1, 2, 3}, {10, 0, 0}});
  auto mask = T({{1, 1, 1}, {1, 0, 0}});
  EXPECT_NEAR(AggregateLoss(loss, mask, LossAgg::kTokenMean).item<double>(), 16.0 / 4, 1e-6);
  EXPECT_NEAR(AggregateLoss(loss, mask, LossAgg::kSeqMeanTokenSum).item<double>(), (6.0 + 10) / 2, 1e-6);
  EXPECT_NEAR(AggregateLoss(loss, mask, LossAgg::kSeqMeanTokenMean).item<double>(), (2.0 + 10) / 2, 1e-6);
  EXPECT_NEAR(AggregateLoss(loss, mask, LossAgg::kSeqMeanTokenSumNorm).item<double>(), 16.0 / 3, 1e-6);
}

TEST(LossesTest, PpoClipsTheRatioOnTheSideTheAdvantagePushes) {
  const ClipOptions clip;  // 0.2 / 0.28 / 3.0
  auto old_lp = T({{0, 0}});
  auto mask = T({{1, 1}});
  // Ratio e^0.5 ~ 1.65 with a positive advantage: clipped at 1.28, no gradient.
  auto lp = T({{0.5, 0.5}}).requires_grad_(true);
  auto r = PolicyLoss(PolicyLossKind::kPpo, old_lp, lp, T({{1, 1}}), mask, LossAgg::kTokenMean, clip);
  EXPECT_NEAR(r.loss.item<double>(), -1.28, 1e-6);
  EXPECT_NEAR(r.clipfrac, 1.0, 1e-6);  // masked means carry +1e-8 in the denominator
  r.loss.backward();
  EXPECT_NEAR(lp.grad().abs().sum().item<double>(), 0.0, 1e-12);
  // The same ratio with a negative advantage is not clipped: the loss pushes it down.
  auto lp2 = T({{0.5, 0.5}}).requires_grad_(true);
  auto neg = PolicyLoss(PolicyLossKind::kPpo, old_lp, lp2, T({{-1, -1}}), mask, LossAgg::kTokenMean, clip);
  EXPECT_NEAR(neg.loss.item<double>(), std::exp(0.5), 1e-6);
  neg.loss.backward();
  EXPECT_GT(lp2.grad()[0][0].item<double>(), 0);
  // Dual clip: a huge ratio with a negative advantage is bounded by clip_ratio_c.
  auto lp3 = T({{3.0, 3.0}}).requires_grad_(true);
  auto dual = PolicyLoss(PolicyLossKind::kPpo, old_lp, lp3, T({{-1, -1}}), mask, LossAgg::kTokenMean, clip);
  EXPECT_NEAR(dual.loss.item<double>(), 3.0, 1e-6);
  EXPECT_NEAR(dual.clipfrac_lower, 1.0, 1e-6);
}

TEST(LossesTest, OnPolicyGradientsOfEveryObjectiveAscendTheAdvantage) {
  // At ratio 1 (on-policy) every objective's gradient is -A * d(log_prob) up to positive
  // weights: a positive-advantage token's log-prob must go up, a negative one's down.
  for (auto kind : {PolicyLossKind::kPpo, PolicyLossKind::kGspo, PolicyLossKind::kGmpo, PolicyLossKind::kCispo}) {
    auto lp = T({{-1, -2}, {-1, -2}}).requires_grad_(true);
    auto old_lp = T({{-1, -2}, {-1, -2}});
    auto adv = T({{1, 1}, {-1, -1}});
    auto mask = T({{1, 1}, {1, 1}});
    auto agg = kind == PolicyLossKind::kGspo ? LossAgg::kSeqMeanTokenMean : LossAgg::kTokenMean;
    auto r = PolicyLoss(kind, old_lp, lp, adv, mask, agg, ClipOptions{});
    r.loss.backward();
    EXPECT_LT(lp.grad()[0][0].item<double>(), 0) << static_cast<int>(kind);
    EXPECT_GT(lp.grad()[1][0].item<double>(), 0) << static_cast<int>(kind);
    EXPECT_NEAR(r.ppo_kl, 0.0, 1e-12);
    EXPECT_DOUBLE_EQ(r.clipfrac, 0.0);
  }
}

TEST(LossesTest, KlEstimatorsAreZeroAtTheReferenceAndPositiveAway) {
  auto ref = T({{-1.0, -2.0}});
  for (const char* name : {"k1", "k2", "k3", "abs"}) {
    auto kl_spec = *ParseKl(name);
    EXPECT_NEAR(KlPenalty(ref, ref, kl_spec).abs().sum().item<double>(), 0.0, 1e-12) << name;
    auto away = KlPenalty(T({{-0.5, -2.5}}), ref, kl_spec);
    if (std::string(name) != "k1") {
      EXPECT_GT(away[0][0].item<double>(), 0) << name;
      EXPECT_GT(away[0][1].item<double>(), 0) << name;
    }
  }
  // k1 is the plain log-ratio; k3 = exp(-k1) - 1 + k1.
  auto lp = T({{-0.5}});
  auto lr = T({{-1.0}});
  EXPECT_NEAR(KlPenalty(lp, lr, *ParseKl("k1")).item<double>(), 0.5, 1e-9);
  EXPECT_NEAR(KlPenalty(lp, lr, *ParseKl("k3")).item<double>(), std::exp(-0.5) - 1 + 0.5, 1e-9);
  EXPECT_FALSE(ParseKl("k4").ok());
  EXPECT_TRUE(ParseKl("k3+")->straight_through);
}

TEST(LossesTest, ValueLossClipsAroundTheOldValue) {
  auto old_v = T({{0.0}});
  auto ret = T({{1.0}});
  auto mask = T({{1.0}});
  // A prediction past the clip range from the old value: the clipped error is smaller, so
  // the max takes the unclipped one.
  auto v = ValueLoss(T({{2.0}}), ret, old_v, mask, 0.5, LossAgg::kTokenMean);
  EXPECT_NEAR(v.loss.item<double>(), 0.5 * 1.0, 1e-6);
  auto w = ValueLoss(T({{-1.0}}), ret, old_v, mask, 0.5, LossAgg::kTokenMean);
  EXPECT_NEAR(w.loss.item<double>(), 0.5 * 4.0, 1e-6);
  EXPECT_DOUBLE_EQ(w.clipfrac, 0.0);
}

}  // namespace
}  // namespace grail::learner
