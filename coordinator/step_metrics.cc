#include "coordinator/step_metrics.h"

#include <algorithm>
#include <cmath>

namespace grail::coordinator {

void SamplingTally::AddGroup(const std::vector<grail::v1::Sample>& samples, const std::vector<double>& scores,
                             const std::vector<bool>& correct) {
  ++sampled_groups_;
  generated_ += samples.size();
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    scores_.push_back(scores[i]);
    correct_ += correct[i];
    len_sum_ += s.token_ids_size();
    len_max_ = std::max<double>(len_max_, s.token_ids_size());
    truncated_ += s.finish_reason() == grail::v1::FINISH_REASON_LENGTH;
    tokens_ += s.token_ids_size();
  }
}

void SamplingTally::AnswerVerdicts(const std::vector<double>& scores, const std::vector<int>& verdicts) {
  for (size_t i = 0; i < verdicts.size() && i < scores.size(); ++i) {
    if (verdicts[i] < 0) continue;
    ++answers_checked_;
    answers_correct_ += verdicts[i];
    if (verdicts[i] != 1) continue;
    for (size_t j = 0; j < verdicts.size() && j < scores.size(); ++j) {
      if (verdicts[j] != 0) continue;
      ++ranked_pairs_;
      ranked_right_ += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
    }
  }
}

std::map<std::string, double> SamplingTally::Stats(int groups_trained, int target_groups, int rounds,
                                                   int64_t weights_version) const {
  const double n = static_cast<double>(scores_.size());
  std::map<std::string, double> st;
  st["accuracy"] = n > 0 ? correct_ / n : 0;
  if (answers_checked_ > 0) st["answer_accuracy"] = answers_correct_ / answers_checked_;
  if (ranked_pairs_ > 0) st["answer_ranking_accuracy"] = ranked_right_ / ranked_pairs_;
  st["response_length_mean"] = n > 0 ? len_sum_ / n : 0;
  st["response_length_max"] = len_max_;
  st["truncation_ratio"] = n > 0 ? truncated_ / n : 0;
  st["filtered_group_ratio"] = sampled_groups_ ? static_cast<double>(filtered_groups_) / sampled_groups_ : 0;
  st["groups_trained"] = static_cast<double>(groups_trained);
  st["samples_generated"] = generated_;
  st["samples_filtered"] = filtered_;
  st["samples_discarded"] = discarded_;
  st["sampling_rounds"] = rounds;
  st["batch_underfilled"] = groups_trained < target_groups ? 1 : 0;
  st["behaviour_policy_version"] = static_cast<double>(weights_version);
  return st;
}

std::map<std::string, double> RewardStats(const std::vector<double>& scores) {
  const double n = static_cast<double>(scores.size());
  double mean = 0, var = 0;
  for (double s : scores) mean += s;
  mean = n > 0 ? mean / n : 0;
  for (double s : scores) var += (s - mean) * (s - mean);
  return {{"reward_mean", mean}, {"reward_std", n > 1 ? std::sqrt(var / (n - 1)) : 0}};
}

}  // namespace grail::coordinator
