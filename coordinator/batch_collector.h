#ifndef GRAIL_COORDINATOR_BATCH_COLLECTOR_H_
#define GRAIL_COORDINATOR_BATCH_COLLECTOR_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor_client.h"
#include "common/clock.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/dataset.h"
#include "coordinator/reference_session.h"
#include "coordinator/weights_tracker.h"
#include "proto/grail/v1/coordinator.pb.h"
#include "reward/reward_client.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {

// The scored samples of one prompt.
struct Group {
  int64_t prompt_id = 0;
  const Problem* problem = nullptr;
  std::vector<grail::v1::Sample> samples;
  std::vector<double> scores;
  std::vector<bool> correct;
  // Per sample scored by a reward model whose row has an answer, the math verifier's verdict
  // (ItemScore.answer_correct: 1 correct, 0 wrong); -1 for every other sample.
  std::vector<int> answer_verdicts;
};

// Preference pairs from one prompt's scored samples (preference.sampled_pairs), with the
// prompt as sampled. One pair: the first best-scored sample chosen, the first worst-scored
// rejected. `all_pairs`: every pair of distinct responses (by token ids; the first sample of
// each) whose scores differ, the higher-scored chosen, in sample order. None when every
// score ties.
std::vector<PreferenceRow> PairsFromGroup(const Group& group, bool all_pairs);

// One step's training batch and what sampling it took.
struct CollectedBatch {
  std::vector<Group> groups;
  std::map<std::string, double> times;  // time_generate, time_score, time_reference
  std::map<std::string, double> stats;  // sampling statistics for the step report
  std::vector<double> scores;           // every sampled response's score (trained or not)
  double generated_tokens = 0;
  // Per trained sample, aligned like input_ids; empty on a step that skips the reference
  // (StepNeedsReference).
  std::vector<std::vector<float>> ref_log_probs;

  // The trained samples in batch order, with their scores and prompt ids.
  SamplePtrs Samples() const;
};

// The rollout side of a step: draws prompts, samples groups across the actors that hold the
// wanted weights (failing over between them), scores them, applies dynamic sampling, and
// gets reference log-probs. Owns the prompt order, prompt ids and the de-duplication of
// samples, so that every sample is counted exactly once. Thread-safe: a pipelined run
// collects batches on a producer thread while the trainer evaluates and checkpoints.
class BatchCollector {
 public:
  struct Peers {
    std::vector<std::shared_ptr<actor::ActorClient>> actors;
    std::shared_ptr<reward::RewardClient> reward;  // retrying (RetryingRewardClient)
    WeightsTracker* weights = nullptr;
    ReferenceSession* reference = nullptr;
    Clock* clock = Clock::Real();  // the pause between failover attempts
  };
  // `spec` is resolved (algo::ResolveDefaults).
  BatchCollector(std::string run_id, const grail::v1::RunSpec& spec, const Splits& data,
                 const tokenizer::Tokenizer& tokenizer, Peers peers, CoordinatorMetrics* metrics);

  // Batch `step`, sampled with exactly `weights_version`.
  absl::StatusOr<CollectedBatch> Collect(int step, int64_t weights_version);

  // Greedy accuracy on the held-out split with whatever weights the actors hold.
  absl::StatusOr<double> Evaluate();

  // Each prompt's greedy response (token ids) with whatever weights the actors hold; not
  // scored (learning-dynamics probes).
  absl::StatusOr<std::vector<std::vector<int>>> GreedyResponses(const std::vector<std::vector<int>>& prompts);

  // `samples` responses to each problem with whatever weights the actors hold, at the run's
  // sampling with `seed`, scored as held-out rows are (the task's verifier); not training
  // samples (preference.sampled_pairs).
  absl::StatusOr<std::vector<Group>> SampleScored(const std::vector<const Problem*>& problems, int samples,
                                                  uint64_t seed);

  // The collector's state as batch `step` started (or now, if it has not started), for a
  // checkpoint after step - 1; states of earlier batches are dropped.
  grail::v1::LoopState StateBefore(int step);
  // Continues from a checkpoint's state.
  void Restore(const grail::v1::LoopState& state);

  // The step of the batch being collected (what a run event is reported at).
  int current_step() const { return current_step_; }

 private:
  struct Row {  // a prompt to sample
    int64_t prompt_id;
    const Problem* problem;
    std::vector<int> tokens;
  };
  absl::StatusOr<Row> NewRow(const Problem& problem, bool heldout);
  // Samples G responses for each row across the actors holding `weights_version` (-1: any
  // actor with weights, for an evaluation) and scores them.
  absl::StatusOr<std::vector<Group>> SampleGroups(const std::vector<Row>& rows, int group_size,
                                                  const grail::v1::SamplingParams& sampling, uint64_t seed,
                                                  std::map<std::string, double>* times, int64_t weights_version,
                                                  bool score = true);
  // `heldout`: an evaluation (the rm verifier gives way to math for rows with answers).
  absl::Status ScoreGroups(std::vector<Group>* groups, bool heldout);

  const std::string run_id_;
  const grail::v1::RunSpec& spec_;
  const Splits& data_;
  const tokenizer::Tokenizer& tokenizer_;
  const Peers peers_;
  CoordinatorMetrics* const metrics_;
  std::atomic<int> current_step_{0};

  absl::Mutex mu_;
  DatasetCursor train_cursor_ ABSL_GUARDED_BY(mu_);
  int64_t next_prompt_id_ ABSL_GUARDED_BY(mu_) = 0;
  double filtered_estimate_ ABSL_GUARDED_BY(mu_) = 0.2;  // dynamic sampling: expected filtered fraction
  std::set<std::pair<int64_t, int>> seen_ ABSL_GUARDED_BY(mu_);  // (prompt_id, sample_index)
  std::map<int, grail::v1::LoopState> states_ ABSL_GUARDED_BY(mu_);  // batch step -> state as it started
};

// A seed derived from two others (splitmix-style).
uint64_t MixSeed(uint64_t a, uint64_t b);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_BATCH_COLLECTOR_H_
