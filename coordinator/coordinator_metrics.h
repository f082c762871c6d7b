#ifndef GRAIL_COORDINATOR_COORDINATOR_METRICS_H_
#define GRAIL_COORDINATOR_COORDINATOR_METRICS_H_

#include <map>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace grail::coordinator {

// The coordinator's RL metrics (grail_coordinator_*), built once from the registry that
// main owns. Thread-safe (prometheus-cpp metrics are).
class CoordinatorMetrics {
 public:
  explicit CoordinatorMetrics(prometheus::Registry& registry);

  // Sets the per-step gauge `name` (a key of the step report's metrics, e.g. reward_mean).
  // Unknown names are ignored, so only the documented, bounded set is exported.
  void SetStepGauge(const std::string& name, double value);
  void ObservePhase(const std::string& phase, double seconds);
  void CountSamples(const std::string& outcome, double n);  // generated, trained, filtered, failed
  void SetRunState(const std::string& state);  // one-hot over run states
  // Policy versions between a trained sample's behaviour policy and the learner's.
  void ObserveVersionLag(double versions);
  void CountRetry(const std::string& target);  // actor, reward, reference
  // A recovery without a person: a run resumed after a coordinator restart ("coordinator"),
  // a restarted reference scorer or learner re-initialised ("reference", "learner").
  void CountRecovery(const std::string& peer);
  // The weights version the coordinator last confirmed on actor `index` (-1: none), and the
  // number of actors not holding the version the next batch needs.
  void SetActorVersion(int index, double version);
  void SetStaleActors(double n);

 private:
  std::map<std::string, prometheus::Gauge*> step_gauges_;
  prometheus::Family<prometheus::Histogram>* phase_;
  prometheus::Family<prometheus::Counter>* samples_;
  prometheus::Family<prometheus::Gauge>* run_state_;
  prometheus::Histogram* version_lag_;
  prometheus::Family<prometheus::Counter>* retries_;
  prometheus::Family<prometheus::Counter>* recoveries_;
  prometheus::Family<prometheus::Gauge>* actor_version_;
  prometheus::Gauge* stale_actors_;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_COORDINATOR_METRICS_H_
