#include "reward/reward_scorer.h"

#include "absl/strings/str_cat.h"
#include "reward/verifiers.h"

namespace grail::reward {

absl::StatusOr<std::unique_ptr<RewardScorer>> RewardScorer::Create(const RewardScorerOptions& options,
                                                                   RewardModel* reward_model) {
  if (options.max_items_per_request <= 0) {
    return absl::InvalidArgumentError("max_items_per_request: must be > 0");
  }
  return std::unique_ptr<RewardScorer>(new RewardScorer(options, reward_model));
}

absl::StatusOr<grail::v1::ScoreResponse> RewardScorer::Score(const grail::v1::ScoreRequest& request) const {
  if (request.items_size() > options_.max_items_per_request) {
    return absl::InvalidArgumentError(absl::StrCat("items: ", request.items_size(),
                                                   " exceed the limit of ",
                                                   options_.max_items_per_request));
  }
  const auto& ol = request.overlong();
  if (ol.buffer_length() < 0 || (ol.buffer_length() > 0 && ol.max_response_length() < ol.buffer_length())) {
    return absl::InvalidArgumentError(
        "overlong: need 0 <= buffer_length <= max_response_length");
  }
  grail::v1::ScoreResponse response;
  // Reward-model items are scored together in one batch: prompt followed by response.
  std::vector<std::string> rm_texts;
  std::vector<int> rm_items;
  for (int i = 0; i < request.items_size(); ++i) {
    if (request.items(i).verifier() == "rm") {
      rm_texts.push_back(request.items(i).prompt() + request.items(i).response());
      rm_items.push_back(i);
    }
  }
  absl::StatusOr<std::vector<double>> rm_scores = std::vector<double>();
  if (!rm_texts.empty()) {
    rm_scores = reward_model_ != nullptr
                    ? reward_model_->Score(rm_texts)
                    : absl::FailedPreconditionError("this scorer has no reward model");
    if (!rm_scores.ok() && absl::IsInvalidArgument(rm_scores.status())) return rm_scores.status();
  }
  size_t next_rm = 0;
  for (int i = 0; i < request.items_size(); ++i) {
    const auto& item = request.items(i);
    const std::string& v = item.verifier();
    grail::v1::ItemScore* out = response.add_scores();
    Verdict verdict;
    if (v == "math") {
      verdict = VerifyMath(item.response(), item.answer());
    } else if (v == "format") {
      verdict = VerifyFormat(item.response());
    } else if (v == "ifeval") {
      auto r = VerifyConstraints(item.response(), item.constraints_json());
      if (!r.ok()) {
        // This item cannot be scored; the others still are.
        out->set_failed(true);
        out->set_error(absl::StrCat("items[", i, "].", r.status().message()));
        continue;
      }
      verdict = *r;
    } else if (v == "rm") {
      ++next_rm;
      if (!rm_scores.ok()) {
        // Reported per item, never as a zero reward.
        out->set_failed(true);
        out->set_error(std::string(rm_scores.status().message()));
        continue;
      }
      verdict.score = (*rm_scores)[next_rm - 1];
      verdict.correct = verdict.score > 0;
      if (!item.answer().empty()) {
        out->set_answer_checked(true);
        out->set_answer_correct(VerifyMath(item.response(), item.answer()).correct);
      }
    } else {
      out->set_failed(true);
      out->set_error(absl::StrCat("items[", i, "].verifier: '", v.substr(0, 64),
                                  "' is not one of math, format, ifeval, rm"));
      continue;
    }
    double score = verdict.score;
    if (ol.buffer_length() > 0) {
      score += OverlongPenalty(item.response_length(), ol.max_response_length(), ol.buffer_length(),
                               ol.penalty_factor());
    }
    out->set_score(static_cast<float>(score));
    out->set_correct(verdict.correct);
  }
  return response;
}

absl::Status RewardScorer::LoadRewardModel(std::string blob, int64_t version) {
  if (reward_model_ == nullptr) return absl::FailedPreconditionError("this scorer has no reward model backend");
  return reward_model_->Load(std::move(blob), version);
}

}  // namespace grail::reward
