#ifndef GRAIL_LEARNER_GROUP_STEP_H_
#define GRAIL_LEARNER_GROUP_STEP_H_

// The data-parallel protocol of one trainer rank: the step header every rank agrees on, the
// weights of each rank's shard in the group's loss, and the latch that makes the group
// unusable after its first failed collective.

#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "learner/collective.h"
#include "learner/losses.h"

namespace grail::learner {

// What one rank's share of a batch weighs in the group's loss: local / global token count
// for token means, local / global row count for sequence means, 1 for
// seq-mean-token-sum-norm (a sum over rows with a constant divisor).
struct ShardWeights {
  double tokens = 1;
  double rows = 1;
  double For(LossAgg agg) const;
};

// local / global, 0 when the group has none.
double ShareOf(double local, double global);

// Step kinds in the collective step header.
enum class StepKind { kInit = 1, kSupervised = 2, kRl = 3, kCritic = 4, kPreference = 5 };

// Not thread-safe: the trainer calls it under its own lock.
class GroupStep {
 public:
  // `on_failure` is called once, with the first failed collective's status.
  GroupStep(std::shared_ptr<Collective> group, std::function<void(const absl::Status&)> on_failure);

  Collective& collective() { return *group_; }
  int world_size() const { return group_->world_size(); }

  // The first failed collective's status (OK while the group is usable).
  const absl::Status& broken() const { return broken_; }
  // Records `status` if it is the first collective failure; returns it.
  absl::Status Check(absl::Status status);

  // Sums `values` over the ranks.
  absl::StatusOr<std::vector<double>> Sum(const std::vector<double>& values);

  // The step header: checks that every rank is taking the same kind of step, with the same
  // step number, from the same weights version, and returns `counts` summed over ranks. The
  // check sums x and x*x of each field: both sums equal world_size times those of one rank
  // only if every rank has the same x.
  absl::StatusOr<std::vector<double>> AgreeAndSum(StepKind kind, int64_t step, int64_t version,
                                                  std::vector<double> counts);

 private:
  std::shared_ptr<Collective> group_;
  std::function<void(const absl::Status&)> on_failure_;
  absl::Status broken_;
};

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_GROUP_STEP_H_
