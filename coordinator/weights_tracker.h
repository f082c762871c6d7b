#ifndef GRAIL_COORDINATOR_WEIGHTS_TRACKER_H_
#define GRAIL_COORDINATOR_WEIGHTS_TRACKER_H_

#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor_client.h"
#include "coordinator/coordinator_metrics.h"
#include "learner/learner_client.h"

namespace grail::coordinator {

using WeightsPtr = std::shared_ptr<const learner::LearnerClient::Weights>;

// Fetches the frozen part of the run's model (learner.proto, WEIGHTS_PART_FROZEN).
using FrozenPartFn = std::function<absl::StatusOr<std::shared_ptr<const std::string>>()>;

// Loads `weights` into one replica through `load`. When the replica answers that it lacks
// the frozen part that `weights` (a trainable part) completes, it gets the frozen part from
// `frozen` and then `weights` again.
absl::Status LoadWeightsInto(const std::function<absl::Status(const std::string& blob, int64_t version)>& load,
                             const learner::LearnerClient::Weights& weights, const FrozenPartFn& frozen);

// The only owner of weights versions in a run: the learner's weights kept per step (a
// versioned blob), and the version each actor holds. An actor whose update failed serves
// nothing until a later sync brings it up to date. Thread-safe: the trainer keeps weights
// while a pipelined producer syncs actors and picks those that may sample.
class WeightsTracker {
 public:
  // `actors` load with their own retries (RetryingActorClient). `max_staleness` bounds how
  // far back a batch's weights can be, so older ones are dropped.
  WeightsTracker(std::vector<std::shared_ptr<actor::ActorClient>> actors, learner::LearnerClient* learner,
                 CoordinatorMetrics* metrics, int max_staleness);

  // Every actor's version becomes unknown (-1): they are synced before they sample.
  void ForgetActorVersions();

  // Keeps the learner's weights at `version` as the weights after `step`, reusing the
  // previous blob when the version has not moved.
  absl::Status Keep(int step, int64_t version);
  // Keep, then SyncActors, with the new weights streamed through: each chunk goes on to
  // every actor behind as it arrives from the learner, so the actors receive while the
  // learner sends (no store-and-forward hop). The actors verify the digest and swap as a
  // LoadWeights does; the coordinator hashes the blob only when an actor did not take it
  // whole, and then a mismatch is the learner's DATA_LOSS. An actor whose streamed load
  // failed (or that needs the frozen part first) gets the kept blob through SyncActors.
  // For the synchronous loop: the actors end up on the newest weights.
  absl::Status KeepAndSync(int step, int64_t version);
  // The weights kept after `step`; null when none are.
  WeightsPtr After(int step) const;

  // Loads `weights` into every actor that holds an older version. Returns an error only
  // when no actor holds weights->version afterwards.
  absl::Status SyncActors(const WeightsPtr& weights);

  // The learner's frozen part (fetched once per tracker: it does not change within a run).
  absl::StatusOr<std::shared_ptr<const std::string>> FrozenPart();

  // The actors holding `version` (-1: any actor with weights), in index order.
  std::vector<size_t> ActorsHolding(int64_t version) const;
  int64_t NewestActorVersion() const;

 private:
  // Drops weights no batch can need any more (older than the step before step - 1 -
  // max_staleness); returns the newest kept before that.
  WeightsPtr Prune(int step);
  // Publishes every actor's version and the stale count to the metrics.
  void PublishActorVersions() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::vector<std::shared_ptr<actor::ActorClient>> actors_;
  learner::LearnerClient* const learner_;
  CoordinatorMetrics* const metrics_;
  const int max_staleness_;

  mutable absl::Mutex mu_;
  std::map<int, WeightsPtr> by_step_ ABSL_GUARDED_BY(mu_);  // step -> weights after it
  std::vector<int64_t> actor_versions_ ABSL_GUARDED_BY(mu_);
  absl::Mutex frozen_mu_;
  std::shared_ptr<const std::string> frozen_ ABSL_GUARDED_BY(frozen_mu_);
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_WEIGHTS_TRACKER_H_
