#ifndef GRAIL_ALGO_OBJECTIVES_H_
#define GRAIL_ALGO_OBJECTIVES_H_

// The one registry of advantage estimators: their run-spec names, what they need (a critic,
// groups of responses per prompt) and the function that computes them. Validation, the
// coordinator's loop and grail-algo's conformance evaluation all take estimators from here.
// Torch-free.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "algo/advantages.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::algo {

// Everything an estimator may read. Rows are responses; `index` groups them by prompt.
struct EstimatorInputs {
  Matrix rewards;  // [B, T] per-token rewards (the outcome score on the last response token)
  Matrix mask;     // [B, T] 1 on response tokens
  std::vector<int64_t> index;
  std::vector<double> scores;   // outcome score per row (gfpo)
  std::vector<double> lengths;  // response length per row (gfpo)
  const Matrix* values = nullptr;  // the critic's values [B, T] (gae)
  double epsilon = 1e-6;
  double gamma = 1.0;
  std::vector<double> lambda_actor;  // per row (gae)
  double lambda_critic = 1.0;
  int gfpo_k = 0;
  GfpoMetric gfpo_metric = GfpoMetric::kLength;
};

struct EstimatorOutput {
  Matrix advantages;  // [B, T]
  Matrix returns;     // critic targets (gae), returns (reinforce_pp); empty otherwise
  std::vector<double> row_advantages;  // gfpo: per row, before broadcasting over tokens
  std::vector<bool> kept;              // gfpo: the responses kept per group
};

struct Estimator {
  grail::v1::AdvantageEstimator id;
  std::string name;     // the run spec's name (the enum value's spec_name)
  bool needs_critic;    // gae: values from the learner's critic
  bool group_relative;  // baselines from the other responses to the same prompt (group_size >= 2)
  EstimatorOutput (*fn)(const EstimatorInputs&);
};

// Every estimator, in the enum's order.
const std::vector<Estimator>& Estimators();
// The registered estimator, or null. UNSPECIFIED resolves to grpo.
const Estimator* FindEstimator(grail::v1::AdvantageEstimator id);
const Estimator* FindEstimator(absl::string_view name);

// The run spec's name of an enum value (its spec_name option), e.g. "dr_grpo" or
// "seq-mean-token-sum"; "" for an unspecified or unknown value.
std::string SpecName(grail::v1::AdvantageEstimator value);
std::string SpecName(grail::v1::PolicyLoss value);
std::string SpecName(grail::v1::LossAggMode value);
std::string SpecName(grail::v1::KlEstimator value);
std::string SpecName(grail::v1::PreferenceObjective value);
std::string SpecName(grail::v1::DpoLossType value);
std::string SpecName(grail::v1::StageKind value);
std::string SpecName(grail::v1::PeftType value);

// "a, b, c": the spec names of every value of an enum, for error messages.
std::string SpecNames(const google::protobuf::EnumDescriptor* type);

// The value of enum E whose spec name is `name` (e.g. FromSpecName<grail::v1::PolicyLoss>("gspo")).
template <typename E>
absl::StatusOr<E> FromSpecName(absl::string_view name) {
  const google::protobuf::EnumDescriptor* type = google::protobuf::GetEnumDescriptor<E>();
  for (int i = 0; i < type->value_count(); ++i) {
    const auto* v = type->value(i);
    if (!name.empty() && v->options().GetExtension(grail::v1::spec_name) == name) return static_cast<E>(v->number());
  }
  return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not one of ", SpecNames(type)));
}

}  // namespace grail::algo

#endif  // GRAIL_ALGO_OBJECTIVES_H_
