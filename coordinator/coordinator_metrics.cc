#include "coordinator/coordinator_metrics.h"

namespace grail::coordinator {
namespace {

struct GaugeSpec {
  const char* key;   // step report key
  const char* name;  // metric name
  const char* help;
};

constexpr GaugeSpec kStepGauges[] = {
    {"step", "grail_coordinator_step", "Last completed RL step."},
    {"policy_version", "grail_coordinator_policy_version", "Weights version after the last step."},
    {"reward_mean", "grail_coordinator_reward_mean", "Mean reward of the step's samples."},
    {"reward_std", "grail_coordinator_reward_std", "Std of the step's rewards."},
    {"accuracy", "grail_coordinator_accuracy_ratio", "Fraction of the step's samples judged correct."},
    {"answer_accuracy", "grail_coordinator_answer_accuracy_ratio", "Of the step's samples scored by a reward model, the fraction the math verifier judges correct against the row's answer."},
    {"answer_ranking_accuracy", "grail_coordinator_answer_ranking_accuracy_ratio", "Of the pairs of a correct and a wrong sample within a group scored by a reward model, the fraction it ranks correct first."},
    {"response_length_mean", "grail_coordinator_response_length_mean_tokens", "Mean response length."},
    {"response_length_max", "grail_coordinator_response_length_max_tokens", "Longest response."},
    {"truncation_ratio", "grail_coordinator_truncation_ratio", "Fraction of responses cut by the length limit."},
    {"filtered_group_ratio", "grail_coordinator_filtered_group_ratio", "Fraction of sampled groups dropped by dynamic sampling."},
    {"tokens_per_second", "grail_coordinator_tokens_per_second", "Generated tokens per second of step time."},
    {"heldout_accuracy", "grail_coordinator_heldout_accuracy_ratio", "Greedy accuracy on the held-out split at the last evaluation."},
    {"kl", "grail_coordinator_kl", "Mean k3 KL to the reference (from the learner)."},
    {"entropy", "grail_coordinator_entropy", "Mean token entropy of the policy (from the learner)."},
    {"pg_clipfrac", "grail_coordinator_pg_clipfrac_ratio", "Fraction of clipped policy-gradient tokens."},
    {"pg_clipfrac_lower", "grail_coordinator_pg_clipfrac_lower_ratio", "Fraction of dual-clipped tokens (negative advantages)."},
    {"explained_variance", "grail_coordinator_explained_variance", "Critic explained variance (gae runs)."},
    {"version_lag_max", "grail_coordinator_version_lag_max", "Largest policy-version lag among the last step's trained samples."},
    {"version_lag_bound", "grail_coordinator_version_lag_bound", "The run's trainer.max_staleness."},
    {"time_step", "grail_coordinator_step_duration_seconds", "Wall time of the last RL step."},
};

}  // namespace

CoordinatorMetrics::CoordinatorMetrics(prometheus::Registry& registry) {
  for (const auto& g : kStepGauges) {
    step_gauges_[g.key] = &prometheus::BuildGauge().Name(g.name).Help(g.help).Register(registry).Add({});
  }
  phase_ = &prometheus::BuildHistogram()
                .Name("grail_coordinator_phase_duration_seconds")
                .Help("Time of each phase of an RL step: generate, score, reference, train, weight_sync, eval.")
                .Register(registry);
  samples_ = &prometheus::BuildCounter()
                  .Name("grail_coordinator_samples_total")
                  .Help("Samples by outcome: generated, trained, filtered, failed.")
                  .Register(registry);
  run_state_ = &prometheus::BuildGauge()
                    .Name("grail_coordinator_run_state")
                    .Help("1 for the state of the most recent run.")
                    .Register(registry);
  version_lag_ = &prometheus::BuildHistogram()
                      .Name("grail_coordinator_version_lag")
                      .Help("Policy versions between each trained sample's behaviour policy and the learner.")
                      .Register(registry)
                      .Add({}, prometheus::Histogram::BucketBoundaries{0, 1, 2, 4, 8, 16});
  retries_ = &prometheus::BuildCounter()
                  .Name("grail_coordinator_rpc_retries_total")
                  .Help("Calls retried after a transient failure, by target.")
                  .Register(registry);
  for (const char* target : {"actor", "reward", "reference"}) retries_->Add({{"target", target}});
  recoveries_ = &prometheus::BuildCounter()
                     .Name("grail_coordinator_recoveries_total")
                     .Help("Recoveries without a person: runs resumed after a coordinator restart, restarted "
                           "reference scorers and learners re-initialised, by peer.")
                     .Register(registry);
  for (const char* peer : {"coordinator", "reference", "learner"}) recoveries_->Add({{"peer", peer}});
  actor_version_ = &prometheus::BuildGauge()
                        .Name("grail_coordinator_actor_weights_version")
                        .Help("Weights version the coordinator last confirmed on each actor (by index in --actors).")
                        .Register(registry);
  stale_actors_ = &prometheus::BuildGauge()
                       .Name("grail_coordinator_stale_actors")
                       .Help("Actors not holding the weights the next batch needs; they serve nothing until updated.")
                       .Register(registry)
                       .Add({});
}

void CoordinatorMetrics::SetActorVersion(int index, double version) {
  actor_version_->Add({{"actor", std::to_string(index)}}).Set(version);
}

void CoordinatorMetrics::SetStaleActors(double n) { stale_actors_->Set(n); }

void CoordinatorMetrics::ObserveVersionLag(double versions) { version_lag_->Observe(versions); }

void CoordinatorMetrics::CountRetry(const std::string& target) { retries_->Add({{"target", target}}).Increment(); }

void CoordinatorMetrics::CountRecovery(const std::string& peer) { recoveries_->Add({{"peer", peer}}).Increment(); }

void CoordinatorMetrics::SetStepGauge(const std::string& name, double value) {
  auto it = step_gauges_.find(name);
  if (it != step_gauges_.end()) it->second->Set(value);
}

void CoordinatorMetrics::ObservePhase(const std::string& phase, double seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                                    2.5,  5,    10,  30,   60,  300};
  phase_->Add({{"phase", phase}}, kBuckets).Observe(seconds);
}

void CoordinatorMetrics::CountSamples(const std::string& outcome, double n) {
  samples_->Add({{"outcome", outcome}}).Increment(n);
}

void CoordinatorMetrics::SetRunState(const std::string& state) {
  for (const char* s : {"pending", "running", "succeeded", "failed", "cancelled"}) {
    run_state_->Add({{"state", s}}).Set(state == s ? 1 : 0);
  }
}

}  // namespace grail::coordinator
