#ifndef GRAIL_COORDINATOR_STEP_METRICS_H_
#define GRAIL_COORDINATOR_STEP_METRICS_H_

// Step metrics: pure tallies of what a step sampled and trained, for its StepReport.

#include <map>
#include <string>
#include <vector>

#include "proto/grail/v1/common.pb.h"

namespace grail::coordinator {

// What one batch's sampling produced: every sampled group, whether trained or not.
class SamplingTally {
 public:
  void AddGroup(const std::vector<grail::v1::Sample>& samples, const std::vector<double>& scores,
                const std::vector<bool>& correct);
  // A group's scores and, per sample, the math verifier's verdict behind a reward model's
  // score (1 correct, 0 wrong, -1 not checked: Group::answer_verdicts).
  void AnswerVerdicts(const std::vector<double>& scores, const std::vector<int>& verdicts);
  void Filtered(size_t samples) { ++filtered_groups_, filtered_ += samples; }
  void Discarded(size_t samples) { discarded_ += samples; }

  // accuracy, response_length_mean/max, truncation_ratio, filtered_group_ratio,
  // groups_trained, samples_generated/filtered/discarded, sampling_rounds, batch_underfilled,
  // behaviour_policy_version; when any sample was AnswerVerdicts-checked (the task's verdict
  // behind a reward model's scores), answer_accuracy, and answer_ranking_accuracy when a
  // group held a correct and a wrong sample: of those pairs within a group, the fraction the
  // scores rank correct above wrong (ties count half).
  std::map<std::string, double> Stats(int groups_trained, int target_groups, int rounds,
                                      int64_t weights_version) const;

  const std::vector<double>& scores() const { return scores_; }
  double generated_tokens() const { return tokens_; }
  int sampled_groups() const { return sampled_groups_; }

 private:
  std::vector<double> scores_;
  int sampled_groups_ = 0, filtered_groups_ = 0;
  double generated_ = 0, filtered_ = 0, discarded_ = 0;
  double answers_checked_ = 0, answers_correct_ = 0, ranked_pairs_ = 0, ranked_right_ = 0;
  double correct_ = 0, len_sum_ = 0, len_max_ = 0, truncated_ = 0, tokens_ = 0;
};

// reward_mean and reward_std (sample standard deviation) of every sampled score.
std::map<std::string, double> RewardStats(const std::vector<double>& scores);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_STEP_METRICS_H_
