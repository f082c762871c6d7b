#include "learner/preference_step.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tensor_validation.h"
#include "learner/preference_losses.h"
#include "model/tensor_convert.h"

namespace grail::learner {
namespace {

// A finite float32 [rows, 1] column as a [rows] vector.
absl::StatusOr<torch::Tensor> Column(const grail::v1::Tensor& t, const std::string& field, int64_t rows) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_FLOAT32}));
  ASSIGN_OR_RETURN(torch::Tensor out, model::TensorFromProto(t, field));
  if (out.size(0) != rows || out.size(1) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: must be [", rows, ", 1]"));
  }
  if (!torch::isfinite(out).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains NaN or Inf"));
  }
  return out.view({rows});
}

double Mean(const torch::Tensor& t) { return t.detach().to(torch::kFloat64).mean().item<double>(); }

}  // namespace

absl::StatusOr<PreferenceBatch> DecodePreferenceBatch(const grail::v1::PreferenceStepRequest& request,
                                                      grail::v1::PreferenceObjective objective,
                                                      const torch::Tensor& ids, const torch::Tensor& mask) {
  const int64_t rows = ids.size(0);
  if (rows % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("input_ids.shape: ", rows, " rows; need 2B (chosen, then rejected)"));
  }
  PreferenceBatch b;
  b.pairs = rows / 2;
  if (!(mask.eq(0) | mask.eq(1)).all().item<bool>()) {
    return absl::InvalidArgumentError("completion_mask: values must be 0 or 1");
  }
  b.lengths = mask.sum(1);
  const auto empty = b.lengths.lt(1).nonzero();
  if (empty.size(0) > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("completion_mask: row ", empty[0][0].item<int64_t>(), " has no completion token"));
  }
  const bool needs_ref = objective == grail::v1::PREFERENCE_OBJECTIVE_DPO ||
                         objective == grail::v1::PREFERENCE_OBJECTIVE_KTO;
  if ((needs_ref && !request.eval_only()) || request.has_ref_log_probs()) {
    ASSIGN_OR_RETURN(b.ref, Column(request.ref_log_probs(), "ref_log_probs", rows));
  }
  if (request.has_margins()) {
    ASSIGN_OR_RETURN(b.margins, Column(request.margins(), "margins", b.pairs));
  }
  if (objective == grail::v1::PREFERENCE_OBJECTIVE_KTO && !request.eval_only()) {
    ASSIGN_OR_RETURN(b.labels, Column(request.labels(), "labels", b.pairs));
    if (!(b.labels.eq(0) | b.labels.eq(1)).all().item<bool>()) {
      return absl::InvalidArgumentError("labels: values must be 0 (undesirable) or 1 (desirable)");
    }
  }
  return b;
}

torch::Tensor LastTokenScores(model::CausalLm& model, const torch::Tensor& ids, const torch::Tensor& mask) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto values = model->Values(model->Hidden(ids, positions, valid));  // [B, T]
  // Right padding: the last completion token is the last column where the mask is 1.
  auto last = (mask * torch::arange(T, mask.options())).argmax(1, /*keepdim=*/true);
  return values.gather(1, last).squeeze(1);
}

absl::StatusOr<PreferenceObjectiveResult> PreferenceObjective(const grail::v1::PreferenceSpec& spec,
                                                             const torch::Tensor& seq, const PreferenceBatch& batch,
                                                             bool evaluation) {
  const int64_t B = batch.pairs;
  PreferenceObjectiveResult out;
  auto& m = out.metrics;
  const torch::Tensor first = seq.slice(0, 0, B), second = seq.slice(0, B, 2 * B);
  const bool kto = spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_KTO;
  if (kto && !evaluation) {
    auto r = KtoLoss(spec.beta(), spec.desirable_weight(), spec.undesirable_weight(), first,
                     batch.ref.slice(0, 0, B), batch.labels, second.detach(), batch.ref.slice(0, B, 2 * B));
    out.loss = r.loss;
    m["kl"] = r.kl;
    const auto x = (first - batch.ref.slice(0, 0, B)).detach();
    const auto desirable = batch.labels.gt(0.5);
    // The implicit reward's sign agrees with the label.
    m["reward_accuracy"] = Mean(torch::where(desirable, x.gt(r.kl), x.lt(r.kl)).to(torch::kFloat64));
    m["logp"] = Mean(first);
    return out;
  }
  m["preference_accuracy"] = Mean(first.gt(second).to(torch::kFloat64));
  if (spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL) {
    // `seq` holds scores: Bradley-Terry on chosen minus rejected (minus the pair's margin).
    auto r = BtRewardLoss(first, second, batch.margins, spec.center_rewards_coefficient());
    out.loss = r.loss;
    m["reward_accuracy"] = r.accuracy;
    m["chosen_rewards"] = Mean(first);
    m["rejected_rewards"] = Mean(second);
    m["reward_margin"] = Mean(first - second);
    return out;
  }
  PairLogps pair;
  pair.policy_chosen = first;
  pair.policy_rejected = second;
  pair.chosen_lengths = batch.lengths.slice(0, 0, B).to(seq.scalar_type());
  pair.rejected_lengths = batch.lengths.slice(0, B, 2 * B).to(seq.scalar_type());
  m["logp_chosen"] = Mean(first);
  m["logp_rejected"] = Mean(second);
  if (kto && batch.ref.defined()) {
    // KTO's implicit reward is DPO's, log pi/pi_ref: on held-out pairs, the share it ranks
    // chosen first.
    m["reward_accuracy"] =
        Mean((first - batch.ref.slice(0, 0, B)).gt(second - batch.ref.slice(0, B, 2 * B)).to(torch::kFloat64));
  }
  if (kto || (spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_DPO && !batch.ref.defined())) return out;
  if (spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_ORPO) {
    auto r = OrpoLoss(spec.lambda(), pair);
    out.loss = r.loss;
    m["log_odds_ratio"] = r.log_odds_ratio;
    m["nll"] = r.nll;
    m["reward_accuracy"] = r.reward_accuracy;
    return out;
  }
  PreferenceLossResult r;
  if (spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_SIMPO) {
    r = SimpoLoss(spec.beta(), spec.gamma(), pair);
  } else if (spec.objective() == grail::v1::PREFERENCE_OBJECTIVE_DPO) {
    pair.ref_chosen = batch.ref.slice(0, 0, B);
    pair.ref_rejected = batch.ref.slice(0, B, 2 * B);
    DpoLossType type = DpoLossType::kSigmoid;
    switch (spec.loss_type()) {
      case grail::v1::DPO_LOSS_TYPE_IPO: type = DpoLossType::kIpo; break;
      case grail::v1::DPO_LOSS_TYPE_HINGE: type = DpoLossType::kHinge; break;
      case grail::v1::DPO_LOSS_TYPE_SIGMOID_NORM: type = DpoLossType::kSigmoidNorm; break;
      default: break;
    }
    r = DpoLoss(type, spec.beta(), spec.label_smoothing(), pair);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("preference.objective: ", spec.objective(), " is not supported"));
  }
  out.loss = r.loss;
  m["chosen_rewards"] = Mean(r.chosen_rewards);
  m["rejected_rewards"] = Mean(r.rejected_rewards);
  m["reward_margin"] = Mean(r.chosen_rewards - r.rejected_rewards);
  m["reward_accuracy"] = r.reward_accuracy;
  return out;
}

}  // namespace grail::learner
