#ifndef GRAIL_COORDINATOR_REFERENCE_SESSION_H_
#define GRAIL_COORDINATOR_REFERENCE_SESSION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/retry.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/experience.h"
#include "coordinator/weights_tracker.h"
#include "reference/reference_client.h"

namespace grail::coordinator {

// A run's use of the reference scorer: it loads the frozen weights RL starts from, keeps
// them, and computes reference log-probs. A scorer that restarted (no model, or another
// version than it was given) gets its weights again; one that is away is waited for under
// the retry policy's recovery bound. Thread-safe.
class ReferenceSession {
 public:
  struct Options {
    RetryPolicy load_retries;  // LoadWeights
    RetryPolicy call_retries;  // ComputeLogProbs, with the recovery bound
    Clock* clock = Clock::Real();
    RetryHooks hooks;          // on_retry counts reference retries; check_cancelled
    // Called after a restarted scorer got its weights back (a run event).
    std::function<void(const std::string& message)> on_recovered;
    // The model's frozen part, for a scorer that lacks it (LoadWeightsInto).
    FrozenPartFn frozen_part;
  };
  ReferenceSession(std::shared_ptr<reference::ReferenceClient> client, CoordinatorMetrics* metrics, Options options);

  // Loads `weights` and keeps them as the reference's.
  absl::Status Load(WeightsPtr weights);

  // Per-sample reference log-probs aligned with the packed input_ids (AlignedLogProbs).
  absl::StatusOr<std::vector<std::vector<float>>> LogProbs(const SamplePtrs& samples, float temperature, int pad_id);

 private:
  const std::shared_ptr<reference::ReferenceClient> client_;
  CoordinatorMetrics* const metrics_;
  const Options options_;
  absl::Mutex mu_;
  WeightsPtr weights_ ABSL_GUARDED_BY(mu_);
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_REFERENCE_SESSION_H_
