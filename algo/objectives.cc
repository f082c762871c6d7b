#include "algo/objectives.h"

#include "absl/strings/str_join.h"

namespace grail::algo {

namespace {

EstimatorOutput Grpo(const EstimatorInputs& in) {
  return {GrpoTokenAdvantages(in.rewards, in.mask, in.index, in.epsilon, /*norm_by_std=*/true), {}, {}, {}};
}

EstimatorOutput DrGrpo(const EstimatorInputs& in) {
  return {GrpoTokenAdvantages(in.rewards, in.mask, in.index, in.epsilon, /*norm_by_std=*/false), {}, {}, {}};
}

EstimatorOutput Rloo(const EstimatorInputs& in) { return {RlooTokenAdvantages(in.rewards, in.mask, in.index), {}, {}, {}}; }

EstimatorOutput ReinforcePp(const EstimatorInputs& in) {
  AdvantagesAndReturns r = ReinforcePlusPlus(in.rewards, in.mask, in.gamma);
  return {std::move(r.advantages), std::move(r.returns), {}, {}};
}

EstimatorOutput GfpoEstimator(const EstimatorInputs& in) {
  GfpoResult g = Gfpo(in.scores, in.lengths, in.index, in.gfpo_k, in.gfpo_metric, in.epsilon);
  EstimatorOutput out;
  out.advantages = Matrix(in.mask.rows, in.mask.cols);
  for (int64_t b = 0; b < in.mask.rows; ++b) {
    for (int64_t t = 0; t < in.mask.cols; ++t) out.advantages.at(b, t) = g.advantages[b] * in.mask.at(b, t);
  }
  out.row_advantages = std::move(g.advantages);
  out.kept = std::move(g.kept);
  return out;
}

EstimatorOutput Gae(const EstimatorInputs& in) {
  AdvantagesAndReturns r =
      DecoupledGaePerRow(in.rewards, *in.values, in.mask, in.gamma, in.lambda_actor, in.lambda_critic);
  return {std::move(r.advantages), std::move(r.returns), {}, {}};
}

template <typename E>
std::string NameOf(const google::protobuf::EnumDescriptor* type, E value) {
  const auto* v = type->FindValueByNumber(static_cast<int>(value));
  return v == nullptr ? "" : v->options().GetExtension(grail::v1::spec_name);
}

}  // namespace

const std::vector<Estimator>& Estimators() {
  static const auto* const kEstimators = [] {
    auto* all = new std::vector<Estimator>{
        {grail::v1::ADVANTAGE_ESTIMATOR_GRPO, "", false, true, Grpo},
        {grail::v1::ADVANTAGE_ESTIMATOR_DR_GRPO, "", false, true, DrGrpo},
        {grail::v1::ADVANTAGE_ESTIMATOR_RLOO, "", false, true, Rloo},
        {grail::v1::ADVANTAGE_ESTIMATOR_REINFORCE_PP, "", false, false, ReinforcePp},
        {grail::v1::ADVANTAGE_ESTIMATOR_GFPO, "", false, true, GfpoEstimator},
        {grail::v1::ADVANTAGE_ESTIMATOR_GAE, "", true, false, Gae},
    };
    for (auto& e : *all) e.name = SpecName(e.id);  // the proto's spec_name, one spelling
    return all;
  }();
  return *kEstimators;
}

const Estimator* FindEstimator(grail::v1::AdvantageEstimator id) {
  if (id == grail::v1::ADVANTAGE_ESTIMATOR_UNSPECIFIED) id = grail::v1::ADVANTAGE_ESTIMATOR_GRPO;
  for (const auto& e : Estimators()) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

const Estimator* FindEstimator(absl::string_view name) {
  for (const auto& e : Estimators()) {
    if (name == e.name) return &e;
  }
  return nullptr;
}

std::string SpecName(grail::v1::AdvantageEstimator v) { return NameOf(grail::v1::AdvantageEstimator_descriptor(), v); }
std::string SpecName(grail::v1::PolicyLoss v) { return NameOf(grail::v1::PolicyLoss_descriptor(), v); }
std::string SpecName(grail::v1::LossAggMode v) { return NameOf(grail::v1::LossAggMode_descriptor(), v); }
std::string SpecName(grail::v1::KlEstimator v) { return NameOf(grail::v1::KlEstimator_descriptor(), v); }
std::string SpecName(grail::v1::PreferenceObjective v) {
  return NameOf(grail::v1::PreferenceObjective_descriptor(), v);
}
std::string SpecName(grail::v1::DpoLossType v) { return NameOf(grail::v1::DpoLossType_descriptor(), v); }
std::string SpecName(grail::v1::StageKind v) { return NameOf(grail::v1::StageKind_descriptor(), v); }
std::string SpecName(grail::v1::PeftType v) { return NameOf(grail::v1::PeftType_descriptor(), v); }

std::string SpecNames(const google::protobuf::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    const std::string& n = type->value(i)->options().GetExtension(grail::v1::spec_name);
    if (!n.empty()) names.push_back(n);
  }
  return absl::StrJoin(names, ", ");
}

}  // namespace grail::algo
