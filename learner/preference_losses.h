#ifndef GRAIL_LEARNER_PREFERENCE_LOSSES_H_
#define GRAIL_LEARNER_PREFERENCE_LOSSES_H_

// The offline preference objectives (DPO family, SimPO, ORPO, KTO) and the Bradley-Terry
// reward-model loss, written once for the trainer and grail-algo's conformance evaluation
// (shared/conformance/FORMAT.md, "Preference objectives"). Inputs are per-sequence summed
// completion log-probs [B] (prompt tokens excluded) and completion token counts [B]; every
// loss is the mean over the batch, differentiable in the policy's log-probs (or scores).
// log σ is computed stably (softplus), so margins of hundreds of nats stay finite.

#include <torch/torch.h>

#include <string>

#include "absl/status/statusor.h"

namespace grail::learner {

enum class DpoLossType { kSigmoid, kIpo, kHinge, kSigmoidNorm };
// "sigmoid" ("" too), "ipo", "hinge", "sigmoid_norm".
absl::StatusOr<DpoLossType> ParseDpoLossType(const std::string& name);

struct PairLogps {
  torch::Tensor policy_chosen, policy_rejected;  // summed completion log-probs [B]
  torch::Tensor ref_chosen, ref_rejected;        // (undefined for reference-free objectives)
  torch::Tensor chosen_lengths, rejected_lengths;  // completion tokens [B], >= 1
};

struct PreferenceLossResult {
  torch::Tensor loss;              // scalar
  torch::Tensor chosen_rewards;    // [B], detached
  torch::Tensor rejected_rewards;  // [B], detached
  double reward_accuracy = 0;      // mean(chosen_rewards > rejected_rewards)
};

// dpo: h = c - r with c, r the policy-minus-reference log-ratios (each divided by its length
// for ipo and sigmoid_norm). sigmoid/sigmoid_norm: -(1-ε) log σ(βh) - ε log σ(-βh) (ε =
// label_smoothing, cDPO); ipo: (h - 1/(2β))^2; hinge: max(0, 1 - βh). Rewards β c and β r.
PreferenceLossResult DpoLoss(DpoLossType type, double beta, double label_smoothing, const PairLogps& in);

// simpo (reference-free): -log σ(β (πc/|c| - πr/|r|) - γ). Rewards β π/|y|.
PreferenceLossResult SimpoLoss(double beta, double gamma, const PairLogps& in);

struct OrpoResult {
  torch::Tensor loss;  // nll + λ mean(-log σ(lor))
  double log_odds_ratio = 0;  // mean(lor)
  double nll = 0;             // mean(-πc/|c|)
  double reward_accuracy = 0;  // mean(lor > 0)
};
// orpo (reference-free): m = π/|y|, log_odds = m - log(1 - e^m) (stable near m = 0).
OrpoResult OrpoLoss(double lambda, const PairLogps& in);

struct KtoResult {
  torch::Tensor loss;
  double kl = 0;  // z0, the reference point
};
// kto (unpaired): x = policy - ref per row; z0 = max(0, mean(kl_policy - kl_ref)) with no
// gradient; a desirable row (label 1) adds w_d (1 - σ(β (x - z0))), an undesirable one
// w_u (1 - σ(β (z0 - x))); loss = sum / B.
KtoResult KtoLoss(double beta, double desirable_weight, double undesirable_weight, const torch::Tensor& policy_logps,
                  const torch::Tensor& ref_logps, const torch::Tensor& label, const torch::Tensor& kl_policy_logps,
                  const torch::Tensor& kl_ref_logps);

struct BtResult {
  torch::Tensor loss;
  double accuracy = 0;  // mean(chosen > rejected)
};
// Bradley-Terry reward model: mean(-log σ(chosen - rejected - margin)) + center_coef ·
// mean((chosen + rejected)^2). `margin` undefined: 0.
BtResult BtRewardLoss(const torch::Tensor& chosen_scores, const torch::Tensor& rejected_scores,
                      const torch::Tensor& margin, double center_coef);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_PREFERENCE_LOSSES_H_
