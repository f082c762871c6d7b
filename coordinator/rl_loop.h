#ifndef GRAIL_COORDINATOR_RL_LOOP_H_
#define GRAIL_COORDINATOR_RL_LOOP_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor_client.h"
#include "coordinator/advantages.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/dataset.h"
#include "learner/learner_client.h"
#include "model/char_tokenizer.h"
#include "proto/grail/v1/coordinator.pb.h"
#include "reference/reference_client.h"
#include "reward/reward_client.h"

namespace grail::coordinator {

// The services one run talks to. Clients are shared with the run manager.
struct ServiceClients {
  std::vector<std::shared_ptr<actor::ActorClient>> actors;
  std::shared_ptr<reward::RewardClient> reward;
  std::shared_ptr<reference::ReferenceClient> reference;
  std::shared_ptr<learner::LearnerClient> learner;
  // How long a run waits for a restarted reference scorer or learner to serve again before
  // it fails.
  absl::Duration recovery_timeout = absl::Minutes(2);
};

// Runs one RL run (DESIGN.md, "One RL step"): learner init, supervised warm-up, weight sync,
// held-out evaluation, then steps of generate -> score -> dynamic sampling -> reference
// log-probs -> advantages -> train -> weight sync, and a final evaluation. Every sample is
// counted exactly once.
//
// trainer.max_staleness = k > 0 overlaps generation with training: a producer thread
// generates step b's batch with exactly the weights after step b-1-k while the learner
// trains earlier steps, so every sample is exactly k policy versions old when trained (fewer
// in the first steps) and a run is reproducible. k = 0 is the synchronous loop.
//
// Weights: after every step the loop keeps the learner's weights (a versioned blob) and
// brings each actor to the version the next batch needs before it generates; an actor whose
// update failed serves nothing until a later attempt brings it up to date. The coordinator
// knows every actor's version (grail_coordinator_actor_weights_version).
//
// Not thread-safe; one loop per run, driven by the run manager's thread.
class RlLoop {
 public:
  using ReportFn = std::function<void(const grail::v1::StepReport&)>;

  RlLoop(std::string run_id, grail::v1::RunSpec spec, Splits data, ServiceClients clients,
         CoordinatorMetrics* metrics, ReportFn report, const std::atomic<bool>* cancelled);

  // Returns OK when the run completes, CANCELLED when cancelled, or the error that ended it
  // (e.g. "generate: every actor failed: ...").
  absl::Status Run();

  // Results so far: heldout_accuracy_before/after, wall_seconds, sample counts.
  const std::map<std::string, double>& summary() const { return summary_; }

 private:
  struct Row {  // a prompt to sample
    int64_t prompt_id;
    const Problem* problem;
    std::vector<int> tokens;
  };
  struct Group {  // the scored samples of one prompt
    Row row;
    std::vector<grail::v1::Sample> samples;
    std::vector<double> scores;
    std::vector<bool> correct;
  };

  // One step's training batch and what sampling it took.
  struct CollectedBatch {
    std::vector<Group> groups;
    std::map<std::string, double> times;  // time_generate, time_score
    std::map<std::string, double> stats;  // sampling statistics for the step report
    std::vector<double> scores;           // every sampled response's score
    double generated_tokens = 0;
    std::vector<std::vector<float>> ref_log_probs;  // per trained sample, aligned like input_ids
  };
  using WeightsPtr = std::shared_ptr<const learner::LearnerClient::Weights>;

  absl::Status SupervisedWarmup();
  // Fetches the learner's current weights and keeps them as the weights after `step`
  // (reusing the previous blob when the version has not moved).
  absl::Status KeepWeights(int step);
  WeightsPtr WeightsAfter(int step);
  // Loads `weights` into every actor that holds an older version (with retries) and, when
  // asked, into the reference. Returns an error only when no actor holds weights->version
  // afterwards (or the reference failed).
  absl::Status SyncActors(const WeightsPtr& weights, bool include_reference);
  // Evaluates greedy accuracy on the held-out split with whatever weights the actors hold.
  absl::StatusOr<double> Evaluate();
  absl::Status RunSynchronous(int first_step);
  absl::Status RunPipelined(int max_staleness, int first_step);
  absl::Status AfterStep(int step, bool final_weights_on_actors);
  // InitModel with a version floor above every actor's version.
  absl::StatusOr<grail::v1::InitModelResponse> InitLearner(const grail::v1::RunSpec& spec);
  // trainer.resume: restores the reference weights and the loop's state from the
  // checkpoint's run_state; returns the step to continue after.
  absl::StatusOr<int> Resume(const grail::v1::InitModelResponse& init);
  // The loop's state before batch `step` is collected, as the run_state of a checkpoint.
  std::string RunStateBefore(int step);
  absl::Status SaveCheckpoint(int step);
  absl::StatusOr<CollectedBatch> CollectBatch(int step, int64_t weights_version);
  absl::Status TrainOnBatch(int step, CollectedBatch collected);
  // Samples G responses for each row across the actors holding `weights_version` (-1: any
  // actor with weights); scores them.
  absl::StatusOr<std::vector<Group>> SampleGroups(const std::vector<Row>& rows, int group_size,
                                                  const grail::v1::SamplingParams& sampling,
                                                  uint64_t seed, std::map<std::string, double>* times,
                                                  int64_t weights_version);
  absl::Status ScoreGroups(std::vector<Group>* groups);
  absl::StatusOr<std::vector<std::vector<float>>> ReferenceLogProbs(const std::vector<const grail::v1::Sample*>& samples);
  void Report(const std::string& phase, int step, std::map<std::string, double> metrics);
  absl::Status CheckCancelled() const;
  // Per-token advantages [B, max response length] with the run's estimator.
  // k1[b][t] is the behaviour-minus-reference log-prob of response token t; kl_coef > 0
  // puts -kl_coef * k1 into every token's reward.
  struct StepAdvantages {
    Matrix advantages;  // [B, max response length]
    Matrix returns;     // critic targets (gae only)
    Matrix values;      // the critic's values (gae only)
    bool has_critic = false;
  };
  absl::StatusOr<StepAdvantages> Advantages(int step, const std::vector<const grail::v1::Sample*>& samples,
                                    const std::vector<double>& scores,
                                    const std::vector<int64_t>& index,
                                    const std::vector<std::vector<double>>& k1, double kl_coef) const;

  const std::string run_id_;
  const grail::v1::RunSpec spec_;
  const Splits data_;
  ServiceClients clients_;
  CoordinatorMetrics* metrics_;
  ReportFn report_;
  const std::atomic<bool>* cancelled_;
  model::CharTokenizer tokenizer_;
  DatasetCursor train_cursor_;
  DatasetCursor sft_cursor_;
  KlController kl_controller_;
  // Owned by whichever thread collects batches (the producer in pipelined runs).
  double filtered_estimate_ = 0.2;  // dynamic sampling: expected fraction of filtered groups
  // What a checkpoint after step b-1 records: the collector's state as batch b started.
  struct CollectorState {
    DatasetCursor::State train_cursor;
    int64_t next_prompt_id = 0;
    double filtered_estimate = 0;
  };
  absl::Mutex collector_mu_;
  std::map<int, CollectorState> collector_states_ ABSL_GUARDED_BY(collector_mu_);
  std::string reference_checkpoint_;  // the checkpoint holding the weights RL started from
  std::atomic<int> current_step_{0};
  // Owned by the thread that trains.
  int64_t version_ = -1;
  std::map<std::string, double> summary_;
  std::chrono::steady_clock::time_point last_step_end_;

  absl::Mutex ids_mu_;  // training batches and evaluations draw prompt ids concurrently
  int64_t next_prompt_id_ ABSL_GUARDED_BY(ids_mu_) = 0;
  std::set<std::pair<int64_t, int>> seen_ ABSL_GUARDED_BY(ids_mu_);  // (prompt_id, sample_index)

  absl::Mutex actors_mu_;
  std::vector<int64_t> actor_versions_ ABSL_GUARDED_BY(actors_mu_);

  absl::Mutex weights_mu_;
  std::map<int, WeightsPtr> weights_by_step_ ABSL_GUARDED_BY(weights_mu_);  // step -> weights after it
  // The weights the reference scores with, kept to reload a reference scorer that restarted.
  WeightsPtr reference_weights_ ABSL_GUARDED_BY(weights_mu_);
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RL_LOOP_H_
