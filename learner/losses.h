#ifndef GRAIL_LEARNER_LOSSES_H_
#define GRAIL_LEARNER_LOSSES_H_

// The learner's objectives, written once and used by the trainer and by grail-algo's
// conformance evaluation. All per-token tensors are [B,T] with a 0/1 `mask`; any floating
// dtype works (grail-algo uses float64).

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace grail::learner {

enum class LossAgg { kTokenMean, kSeqMeanTokenSum, kSeqMeanTokenMean, kSeqMeanTokenSumNorm };
enum class PolicyLossKind { kPpo, kGspo, kGmpo, kCispo };
enum class KlEstimator { kK1, kK2, kK3, kAbs };

// "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
// ("" = token-mean); INVALID_ARGUMENT otherwise.
absl::StatusOr<LossAgg> ParseLossAgg(const std::string& name);
// "ppo", "gspo", "gmpo", "cispo" ("" = ppo).
absl::StatusOr<PolicyLossKind> ParsePolicyLoss(const std::string& name);

struct KlSpec {
  KlEstimator estimator = KlEstimator::kK3;
  bool straight_through = false;  // "+": forward value of the estimator, gradient of k2
};
// "k1", "k2", "k3", "abs", each optionally followed by "+" ("" = k3).
absl::StatusOr<KlSpec> ParseKl(const std::string& name);

// Aggregates a per-token loss: token-mean over all masked tokens; seq-mean-token-sum (mean
// over rows of each row's masked sum); seq-mean-token-mean (mean over rows of each row's
// masked mean); seq-mean-token-sum-norm (all masked sums divided by T).
torch::Tensor AggregateLoss(const torch::Tensor& loss, const torch::Tensor& mask, LossAgg agg);

// Masked mean over all elements (verl's masked_mean, with +1e-8 in the denominator).
torch::Tensor MaskedMean(const torch::Tensor& values, const torch::Tensor& mask);

struct ClipOptions {
  double clip_ratio_low = 0.2;
  double clip_ratio_high = 0.28;
  double clip_ratio_c = 3.0;
};

struct PolicyLossResult {
  torch::Tensor loss;  // scalar, differentiable in log_prob
  double clipfrac = 0;
  double clipfrac_lower = 0;  // ppo only: where the dual-clip bound was taken
  double ppo_kl = 0;          // masked mean of old - new log-prob
};

// ppo: asymmetric clip plus dual clip for negative advantages, log-ratio clamped to +-20.
// gspo: sequence-level ratio (token-mean log-ratio per row), always aggregated
//   seq-mean-token-mean. gmpo: geometric mean over each row of sign-aware log-space clipped
//   token ratios, times the row's mean advantage, mean over rows. cispo: stop-gradient
//   clipped importance weight times advantage times log_prob.
PolicyLossResult PolicyLoss(PolicyLossKind kind, const torch::Tensor& old_log_prob,
                            const torch::Tensor& log_prob, const torch::Tensor& advantages,
                            const torch::Tensor& mask, LossAgg agg, const ClipOptions& clip);

struct ValueLossResult {
  torch::Tensor loss;  // 0.5 * aggregated max(unclipped, clipped) squared error
  double clipfrac = 0;
};
ValueLossResult ValueLoss(const torch::Tensor& vpreds, const torch::Tensor& returns,
                          const torch::Tensor& old_values, const torch::Tensor& mask,
                          double cliprange_value, LossAgg agg);

// Per-token KL estimate between the policy and the reference.
torch::Tensor KlPenalty(const torch::Tensor& log_prob, const torch::Tensor& ref_log_prob, const KlSpec& kl);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_LOSSES_H_
