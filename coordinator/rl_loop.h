#ifndef GRAIL_COORDINATOR_RL_LOOP_H_
#define GRAIL_COORDINATOR_RL_LOOP_H_

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
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
};

// Runs one synchronous RL run (DESIGN.md, "One RL step"): learner init, supervised warm-up,
// weight sync, held-out evaluation, then steps of generate -> score -> dynamic sampling ->
// reference log-probs -> group-relative advantages -> train -> weight sync, and a final
// evaluation. Every sample is counted exactly once. Not thread-safe; one loop per run,
// driven by the run manager's thread.
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

  absl::Status SupervisedWarmup();
  absl::Status SyncWeights(bool include_reference);
  absl::StatusOr<double> Evaluate();
  absl::Status RlStep(int step);
  // Samples G responses for each row across the actors; scores them.
  absl::StatusOr<std::vector<Group>> SampleGroups(const std::vector<Row>& rows, int group_size,
                                                  const grail::v1::SamplingParams& sampling,
                                                  uint64_t seed, std::map<std::string, double>* times);
  absl::Status ScoreGroups(std::vector<Group>* groups);
  absl::StatusOr<std::vector<std::vector<float>>> ReferenceLogProbs(const std::vector<const grail::v1::Sample*>& samples);
  void Report(const std::string& phase, int step, std::map<std::string, double> metrics);
  absl::Status CheckCancelled() const;
  double CarriedSamples() const;
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
  int64_t next_prompt_id_ = 0;
  int current_step_ = 0;
  int64_t version_ = -1;
  std::vector<Group> carry_over_;
  std::map<std::string, double> summary_;
  std::set<std::pair<int64_t, int>> seen_;  // (prompt_id, sample_index) of every sample
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RL_LOOP_H_
