#ifndef GRAIL_COORDINATOR_RL_LOOP_H_
#define GRAIL_COORDINATOR_RL_LOOP_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "actor/actor_client.h"
#include "common/clock.h"
#include "algo/advantages.h"
#include "coordinator/batch_collector.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/dataset.h"
#include "coordinator/preference_batch.h"
#include "coordinator/probes.h"
#include "coordinator/reference_session.h"
#include "coordinator/weights_tracker.h"
#include "learner/learner_client.h"
#include "proto/grail/v1/coordinator.pb.h"
#include "reference/reference_client.h"
#include "reward/reward_client.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {

// The services one run talks to. Clients are shared with the run manager.
struct ServiceClients {
  std::vector<std::shared_ptr<actor::ActorClient>> actors;
  std::shared_ptr<reward::RewardClient> reward;
  std::shared_ptr<reference::ReferenceClient> reference;
  std::shared_ptr<learner::LearnerClient> learner;
  // How long a run waits for a restarted reference scorer, reward scorer or learner to serve
  // again before it fails.
  absl::Duration recovery_timeout = absl::Minutes(2);
  // What retries and recovery waits sleep on (a FakeClock in unit tests).
  Clock* clock = Clock::Real();
};

// Runs one RL run (DESIGN.md, "One RL step"): learner init, supervised warm-up, weight sync,
// held-out evaluation, then steps of collect (generate -> score -> dynamic sampling ->
// reference log-probs) -> advantages -> train -> keep weights, and a final evaluation.
//
// The parts, each the only owner of its state:
//   WeightsTracker    weights kept per step and every actor's version (weights_tracker.h)
//   BatchCollector    prompts, sampling, scoring, dynamic sampling (batch_collector.h)
//   ReferenceSession  the frozen reference and its recovery (reference_session.h)
//   experience.h      pure: advantages and the learner's requests
//   step_metrics.h    pure: the step report's tallies
//   run_state.h       the checkpoint codec of the loop's state
//
// trainer.max_staleness = k > 0 overlaps generation with training: a producer thread
// collects step b's batch with exactly the weights after step b-1-k while this thread trains
// earlier steps, so every sample is exactly k policy versions old when trained (fewer in
// the first steps) and a run is reproducible. k = 0 is the synchronous loop.
//
// Run() is called once, from one thread (the run manager's); the loop's own fields below
// belong to that thread. The parts above are thread-safe.
class RlLoop {
 public:
  using ReportFn = std::function<void(const grail::v1::StepReport&)>;

  // `spec` is resolved here (algo::ResolveDefaults) if it was not already.
  // `tokenizer`: the run's (model.tokenizer, resolved under the data root); null makes the
  // one model.tokenizer names without a data root (the built-in char tokenizer).
  RlLoop(std::string run_id, grail::v1::RunSpec spec, Splits data, ServiceClients clients,
         CoordinatorMetrics* metrics, ReportFn report, const std::atomic<bool>* cancelled,
         std::shared_ptr<const tokenizer::Tokenizer> tokenizer = nullptr);
  ~RlLoop();

  // Returns OK when the run completes, CANCELLED when cancelled, or the error that ended it
  // (e.g. "generate: every actor failed: ...").
  absl::Status Run();

  // Results so far: heldout_accuracy_before/after, wall_seconds, sample counts.
  const std::map<std::string, double>& summary() const { return summary_; }

 private:
  absl::Status SupervisedWarmup();
  // The warm-up's mean token loss over data_.sft_heldout (no update).
  absl::StatusOr<double> SupervisedHeldoutLoss(int step);
  absl::Status RunSynchronous(int first_step);
  absl::Status RunPipelined(int max_staleness, int first_step);
  // Preference runs (spec.preference; preference_loop.cc): the objective's steps on
  // data_.pairs, with the reference's log-probs of every completion, instead of RL.
  bool preference() const {
    return spec_.preference().objective() != grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED;
  }
  absl::Status RunPreference(int first_step);
  // pairs_: the dataset's training pairs, plus preference.sampled_pairs from the weights the
  // actors hold (the stage's starting weights), reported as phase "sampled_pairs".
  absl::Status MakeTrainingPairs(bool report);
  // Over data_.heldout_pairs: heldout_preference_accuracy (the policy's summed log-prob
  // ranks the chosen response first) and, for paired objectives, heldout_reward_accuracy
  // (the objective's implicit reward does).
  absl::StatusOr<std::map<std::string, double>> EvaluatePreference();
  // The summed reference completion log-probs of `seqs`' rows: those scored before from
  // reference_sums_, the others from the reference service (then kept). `*scored` counts
  // the rows the service scored.
  absl::StatusOr<std::vector<float>> ReferenceSums(const PreferenceSequences& seqs, int* scored = nullptr);
  absl::Status TrainOnBatch(int step, CollectedBatch collected);
  // Keeps the new weights, then checkpoints and evaluates when the run asks for it.
  absl::Status AfterStep(int step, bool final_weights_on_actors);
  // InitModel with a version floor above every actor's version.
  absl::StatusOr<grail::v1::InitModelResponse> InitLearner(const grail::v1::RunSpec& spec);
  // trainer.resume: restores the reference weights and the loop's state from the
  // checkpoint's run_state; returns the step to continue after.
  absl::StatusOr<int> Resume(const grail::v1::InitModelResponse& init);
  absl::Status SaveCheckpoint(int step);
  // reward.model: the reward model's checkpoint, through the learner, into the reward
  // scorer's rm verifier (before the run's own model is initialised).
  absl::Status LoadRewardModel();
  // preference.sampled_pairs.policy: that checkpoint through the learner into the actors,
  // and the training pairs from its samples (before the run's own model is initialised).
  absl::Status MakeTrainingPairsFromPolicy(bool report);
  // Probes (spec.probes): each probe's greedy response with the weights the actors hold (the
  // stage's starting weights), kept as one of the responses recorded.
  absl::Status TakeGreedyProbeResponses();
  // A recording of every probe response's log-probs under the learner's weights, reported
  // as phase "probe" when `step` is a recording step (every spec.probes.every, and `last`).
  absl::Status MaybeRecordProbes(int step, bool last);
  absl::Status KeepWeights(int step) { return weights_->Keep(step, version_); }
  absl::Status SyncActorsTo(int step) { return weights_->SyncActors(weights_->After(step)); }
  void Report(const std::string& phase, int step, std::map<std::string, double> metrics,
              const std::string& message = "");
  absl::Status CheckCancelled() const;

  const std::string run_id_;
  const grail::v1::RunSpec spec_;
  const Splits data_;
  ServiceClients clients_;  // reward and actors wrapped with retries
  CoordinatorMetrics* metrics_;
  ReportFn report_;
  const std::atomic<bool>* cancelled_;

  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  std::unique_ptr<WeightsTracker> weights_;
  std::unique_ptr<ReferenceSession> reference_;
  std::unique_ptr<BatchCollector> collector_;

  // The training thread's.
  DatasetCursor sft_cursor_;
  DatasetCursor preference_cursor_;       // over pairs_
  std::vector<PreferenceRow> pairs_;        // a preference run's training pairs
  // Summed reference completion log-probs by sequence (prompt and completion ids): the
  // reference is frozen within a run or stage, so each sequence is scored once (cleared
  // whenever the reference loads other weights).
  std::unordered_map<std::string, float> reference_sums_;
  algo::KlController kl_controller_;
  std::string reference_checkpoint_;  // the checkpoint holding the weights RL started from
  ProbeSequences probe_sequences_;     // with the greedy responses, once TakeGreedyProbeResponses ran
  int64_t version_ = -1;
  bool pairs_made_ = false;  // pairs_ holds the training pairs already (sampled_pairs.policy)
  std::map<std::string, double> summary_;
  std::chrono::steady_clock::time_point last_step_end_;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RL_LOOP_H_
