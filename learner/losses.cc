#include "learner/losses.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace grail::learner {

absl::StatusOr<LossAgg> ParseLossAgg(const std::string& name) {
  if (name.empty() || name == "token-mean") return LossAgg::kTokenMean;
  if (name == "seq-mean-token-sum") return LossAgg::kSeqMeanTokenSum;
  if (name == "seq-mean-token-mean") return LossAgg::kSeqMeanTokenMean;
  if (name == "seq-mean-token-sum-norm") return LossAgg::kSeqMeanTokenSumNorm;
  return absl::InvalidArgumentError(absl::StrCat(
      "algorithm.loss_agg_mode: '", name,
      "' is not one of token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm"));
}

absl::StatusOr<PolicyLossKind> ParsePolicyLoss(const std::string& name) {
  if (name.empty() || name == "ppo") return PolicyLossKind::kPpo;
  if (name == "gspo") return PolicyLossKind::kGspo;
  if (name == "gmpo") return PolicyLossKind::kGmpo;
  if (name == "cispo") return PolicyLossKind::kCispo;
  return absl::InvalidArgumentError(
      absl::StrCat("algorithm.policy_loss: '", name, "' is not one of ppo, gspo, gmpo, cispo"));
}

absl::StatusOr<KlSpec> ParseKl(const std::string& name) {
  KlSpec kl;
  std::string base = name.empty() ? "k3" : name;
  if (absl::EndsWith(base, "+")) {
    kl.straight_through = true;
    base.pop_back();
  }
  if (base == "k1") {
    kl.estimator = KlEstimator::kK1;
  } else if (base == "k2") {
    kl.estimator = KlEstimator::kK2;
  } else if (base == "k3") {
    kl.estimator = KlEstimator::kK3;
  } else if (base == "abs") {
    kl.estimator = KlEstimator::kAbs;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.kl_estimator: '", name, "' is not one of k1, k2, k3, abs (optionally with +)"));
  }
  return kl;
}

torch::Tensor MaskedMean(const torch::Tensor& values, const torch::Tensor& mask) {
  return (values * mask).sum() / (mask.sum() + 1e-8);
}

torch::Tensor AggregateLoss(const torch::Tensor& loss, const torch::Tensor& mask, LossAgg agg) {
  switch (agg) {
    case LossAgg::kTokenMean:
      return MaskedMean(loss, mask);
    case LossAgg::kSeqMeanTokenSum:
      return (loss * mask).sum(-1).mean();
    case LossAgg::kSeqMeanTokenMean:
      return ((loss * mask).sum(-1) / (mask.sum(-1) + 1e-8)).mean();
    case LossAgg::kSeqMeanTokenSumNorm:
      return (loss * mask).sum() / static_cast<double>(mask.size(-1));
  }
  return MaskedMean(loss, mask);
}

PolicyLossResult PolicyLoss(PolicyLossKind kind, const torch::Tensor& old_log_prob,
                            const torch::Tensor& log_prob, const torch::Tensor& adv,
                            const torch::Tensor& mask, LossAgg agg, const ClipOptions& o) {
  PolicyLossResult r;
  auto item = [](const torch::Tensor& t) { return t.detach().item<double>(); };
  auto flag = [&](const torch::Tensor& b) { return item(MaskedMean(b.to(mask.scalar_type()), mask)); };
  switch (kind) {
    case PolicyLossKind::kPpo: {
      auto neg_kl = (log_prob - old_log_prob).clamp(-20.0, 20.0);
      auto ratio = neg_kl.exp();
      auto loss1 = -adv * ratio;
      auto loss2 = -adv * ratio.clamp(1.0 - o.clip_ratio_low, 1.0 + o.clip_ratio_high);
      auto clipped = torch::maximum(loss1, loss2);
      auto loss3 = -adv * o.clip_ratio_c;
      auto dual = torch::minimum(loss3, clipped);
      r.loss = AggregateLoss(torch::where(adv < 0, dual, clipped), mask, agg);
      r.clipfrac = flag(loss2 > loss1);
      r.clipfrac_lower = flag((clipped > loss3) & (adv < 0));
      r.ppo_kl = item(MaskedMean(-neg_kl, mask));
      break;
    }
    case PolicyLossKind::kGspo: {
      auto neg_kl = log_prob - old_log_prob;
      auto lengths = mask.sum(-1).clamp_min(1.0);
      auto seq_kl = (neg_kl * mask).sum(-1) / lengths;
      // Token gradients, sequence-level value: log_prob - sg(log_prob) + sg(seq log-ratio).
      auto log_ratio = (log_prob - log_prob.detach() + seq_kl.detach().unsqueeze(-1)).clamp_max(10.0);
      auto ratio = log_ratio.exp();
      auto loss1 = -adv * ratio;
      auto loss2 = -adv * ratio.clamp(1.0 - o.clip_ratio_low, 1.0 + o.clip_ratio_high);
      r.loss = AggregateLoss(torch::maximum(loss1, loss2), mask, LossAgg::kSeqMeanTokenMean);
      r.clipfrac = flag(loss2 > loss1);
      r.ppo_kl = item(MaskedMean(-neg_kl, mask));
      break;
    }
    case PolicyLossKind::kGmpo: {
      auto neg_kl = (log_prob - old_log_prob).clamp(-20.0, 20.0);
      auto sign = adv.sign();
      auto neg_kl_clamped = neg_kl.clamp(-o.clip_ratio_low, o.clip_ratio_high);
      auto neg_kl_min = sign * torch::minimum(sign * neg_kl, sign * neg_kl_clamped);
      auto tokens = mask.sum(-1);
      auto ratio = ((neg_kl_min * mask).sum(-1) / (tokens + 1e-8)).exp();
      auto seq_adv = (adv * mask).sum(-1) / (tokens + 1e-8);
      r.loss = (-seq_adv * ratio).mean();
      auto clipped = neg_kl != neg_kl_clamped;
      r.clipfrac = flag(clipped & (((neg_kl > neg_kl_clamped) & (adv > 0)) | ((neg_kl < neg_kl_clamped) & (adv < 0))));
      r.ppo_kl = item(MaskedMean(-neg_kl, mask));
      break;
    }
    case PolicyLossKind::kCispo: {
      auto neg_kl = (log_prob - old_log_prob).clamp(-20.0, 20.0);
      auto ratio = neg_kl.exp();
      auto weight = ratio.clamp(1.0 - o.clip_ratio_low, 1.0 + o.clip_ratio_high).detach();
      r.loss = AggregateLoss(-adv * weight * log_prob, mask, agg);
      r.clipfrac = flag((ratio < 1.0 - o.clip_ratio_low) | (ratio > 1.0 + o.clip_ratio_high));
      r.ppo_kl = item(MaskedMean(-neg_kl, mask));
      break;
    }
  }
  return r;
}

ValueLossResult ValueLoss(const torch::Tensor& vpreds, const torch::Tensor& returns,
                          const torch::Tensor& old_values, const torch::Tensor& mask,
                          double cliprange_value, LossAgg agg) {
  auto clipped = torch::max(torch::min(vpreds, old_values + cliprange_value), old_values - cliprange_value);
  auto l1 = (vpreds - returns).square();
  auto l2 = (clipped - returns).square();
  ValueLossResult r;
  r.loss = 0.5 * AggregateLoss(torch::maximum(l1, l2), mask, agg);
  r.clipfrac = MaskedMean((l2 > l1).to(mask.scalar_type()), mask).item<double>();
  return r;
}

torch::Tensor KlPenalty(const torch::Tensor& log_prob, const torch::Tensor& ref_log_prob, const KlSpec& kl) {
  torch::Tensor forward;
  switch (kl.estimator) {
    case KlEstimator::kK1:
      forward = log_prob - ref_log_prob;
      break;
    case KlEstimator::kK2:
      forward = 0.5 * (log_prob - ref_log_prob).square();
      break;
    case KlEstimator::kAbs:
      forward = (log_prob - ref_log_prob).abs();
      break;
    case KlEstimator::kK3: {
      auto log_ratio = (ref_log_prob - log_prob).clamp(-20.0, 20.0);
      forward = (log_ratio.exp() - log_ratio - 1).clamp(-10.0, 10.0);
      break;
    }
  }
  if (!kl.straight_through) return forward;
  auto k2 = 0.5 * (log_prob - ref_log_prob).square();
  return k2 - k2.detach() + forward.detach();
}

}  // namespace grail::learner
