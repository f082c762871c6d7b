#include "learner/group_step.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace grail::learner {

double ShardWeights::For(LossAgg agg) const {
  switch (agg) {
    case LossAgg::kTokenMean:
      return tokens;
    case LossAgg::kSeqMeanTokenSum:
    case LossAgg::kSeqMeanTokenMean:
      return rows;
    case LossAgg::kSeqMeanTokenSumNorm:
      return 1.0;
  }
  return tokens;
}

double ShareOf(double local, double global) { return global > 0 ? local / global : 0.0; }

GroupStep::GroupStep(std::shared_ptr<Collective> group, std::function<void(const absl::Status&)> on_failure)
    : group_(std::move(group)), on_failure_(std::move(on_failure)) {}

absl::Status GroupStep::Check(absl::Status status) {
  if (status.ok() || !broken_.ok()) return status;
  broken_ = status;
  if (on_failure_) on_failure_(status);
  return status;
}

absl::StatusOr<std::vector<double>> GroupStep::Sum(const std::vector<double>& values) {
  if (group_->world_size() == 1 || values.empty()) return values;
  auto t = torch::tensor(values, torch::kFloat64);
  RETURN_IF_ERROR(Check(group_->AllReduceSum({t}, "metric sum")));
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

absl::StatusOr<std::vector<double>> GroupStep::AgreeAndSum(StepKind kind, int64_t step, int64_t version,
                                                           std::vector<double> counts) {
  const std::vector<double> fields = {static_cast<double>(kind), static_cast<double>(step),
                                      static_cast<double>(version)};
  const size_t n = counts.size();
  for (double f : fields) {
    counts.push_back(f);
    counts.push_back(f * f);
  }
  ASSIGN_OR_RETURN(std::vector<double> sum, Sum(counts));
  const double w = group_->world_size();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (sum[n + 2 * i] != w * fields[i] || sum[n + 2 * i + 1] != w * fields[i] * fields[i]) {
      static const char* const kNames[] = {"step kind", "step number", "weights version"};
      return Check(absl::FailedPreconditionError(absl::StrCat(
          "learner group: ranks disagree on the ", kNames[i], " (rank ", group_->rank(), " has ", fields[i],
          "): every rank must get the same sequence of calls")));
    }
  }
  sum.resize(n);
  return sum;
}

}  // namespace grail::learner
