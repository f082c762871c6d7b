#include "learner/preference_losses.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace grail::learner {
namespace {

namespace F = torch::nn::functional;

double Accuracy(const torch::Tensor& chosen, const torch::Tensor& rejected) {
  return chosen.gt(rejected).to(torch::kFloat64).mean().item<double>();
}

// log(1 - e^m) for m < 0, stable at both ends: log(-expm1(m)) near 0, log1p(-e^m) far below.
// Each branch sees an input clamped to its own side, so the unused one has no inf gradient.
torch::Tensor Log1mExp(const torch::Tensor& m) {
  const double split = -std::log(2.0);
  auto near = torch::log(-torch::expm1(m.clamp_min(split)));
  auto far = torch::log1p(-torch::exp(m.clamp_max(split)));
  return torch::where(m > split, near, far);
}

}  // namespace

absl::StatusOr<DpoLossType> ParseDpoLossType(const std::string& name) {
  if (name.empty() || name == "sigmoid") return DpoLossType::kSigmoid;
  if (name == "ipo") return DpoLossType::kIpo;
  if (name == "hinge") return DpoLossType::kHinge;
  if (name == "sigmoid_norm") return DpoLossType::kSigmoidNorm;
  return absl::InvalidArgumentError(
      absl::StrCat("loss_type '", name, "' is not one of sigmoid, ipo, hinge, sigmoid_norm"));
}

PreferenceLossResult DpoLoss(DpoLossType type, double beta, double label_smoothing, const PairLogps& in) {
  auto c = in.policy_chosen - in.ref_chosen;
  auto r = in.policy_rejected - in.ref_rejected;
  if (type == DpoLossType::kIpo || type == DpoLossType::kSigmoidNorm) {
    c = c / in.chosen_lengths;
    r = r / in.rejected_lengths;
  }
  const auto h = c - r;
  torch::Tensor per_pair;
  switch (type) {
    case DpoLossType::kSigmoid:
    case DpoLossType::kSigmoidNorm:
      per_pair = -(1 - label_smoothing) * F::logsigmoid(beta * h) - label_smoothing * F::logsigmoid(-beta * h);
      break;
    case DpoLossType::kIpo:
      per_pair = (h - 1 / (2 * beta)).pow(2);
      break;
    case DpoLossType::kHinge:
      per_pair = torch::relu(1 - beta * h);
      break;
  }
  PreferenceLossResult out;
  out.loss = per_pair.mean();
  out.chosen_rewards = (beta * c).detach();
  out.rejected_rewards = (beta * r).detach();
  out.reward_accuracy = Accuracy(out.chosen_rewards, out.rejected_rewards);
  return out;
}

PreferenceLossResult SimpoLoss(double beta, double gamma, const PairLogps& in) {
  const auto c = in.policy_chosen / in.chosen_lengths;
  const auto r = in.policy_rejected / in.rejected_lengths;
  PreferenceLossResult out;
  out.loss = (-F::logsigmoid(beta * (c - r) - gamma)).mean();
  out.chosen_rewards = (beta * c).detach();
  out.rejected_rewards = (beta * r).detach();
  out.reward_accuracy = Accuracy(out.chosen_rewards, out.rejected_rewards);
  return out;
}

OrpoResult OrpoLoss(double lambda, const PairLogps& in) {
  const auto mc = in.policy_chosen / in.chosen_lengths;
  const auto mr = in.policy_rejected / in.rejected_lengths;
  const auto lor = (mc - Log1mExp(mc)) - (mr - Log1mExp(mr));
  const auto nll = (-mc).mean();
  OrpoResult out;
  out.loss = nll + lambda * (-F::logsigmoid(lor)).mean();
  out.log_odds_ratio = lor.mean().item<double>();
  out.nll = nll.item<double>();
  out.reward_accuracy = lor.gt(0).to(torch::kFloat64).mean().item<double>();
  return out;
}

KtoResult KtoLoss(double beta, double desirable_weight, double undesirable_weight, const torch::Tensor& policy_logps,
                  const torch::Tensor& ref_logps, const torch::Tensor& label, const torch::Tensor& kl_policy_logps,
                  const torch::Tensor& kl_ref_logps) {
  const auto z0 = (kl_policy_logps - kl_ref_logps).mean().clamp_min(0).detach();
  const auto x = policy_logps - ref_logps;
  const auto desirable = label.gt(0.5).to(x.scalar_type());
  const auto per_row = desirable * desirable_weight * (1 - torch::sigmoid(beta * (x - z0))) +
                       (1 - desirable) * undesirable_weight * (1 - torch::sigmoid(beta * (z0 - x)));
  KtoResult out;
  out.loss = per_row.sum() / static_cast<double>(x.size(0));
  out.kl = z0.item<double>();
  return out;
}

BtResult BtRewardLoss(const torch::Tensor& chosen_scores, const torch::Tensor& rejected_scores,
                      const torch::Tensor& margin, double center_coef) {
  auto d = chosen_scores - rejected_scores;
  if (margin.defined()) d = d - margin;
  BtResult out;
  out.loss = (-F::logsigmoid(d)).mean();
  if (center_coef != 0) out.loss = out.loss + center_coef * (chosen_scores + rejected_scores).pow(2).mean();
  out.accuracy = Accuracy(chosen_scores.detach(), rejected_scores.detach());
  return out;
}

}  // namespace grail::learner
