#include "reward/reward_scorer.h"

#include "absl/strings/str_cat.h"
#include "reward/verifiers.h"

namespace grail::reward {

absl::StatusOr<std::unique_ptr<RewardScorer>> RewardScorer::Create(const RewardScorerOptions& options) {
  if (options.max_items_per_request <= 0) {
    return absl::InvalidArgumentError("max_items_per_request: must be > 0");
  }
  return std::unique_ptr<RewardScorer>(new RewardScorer(options));
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
        return absl::InvalidArgumentError(absl::StrCat("items[", i, "].", r.status().message()));
      }
      verdict = *r;
    } else if (v == "rm") {
      // Reported per item, never as a zero reward.
      out->set_failed(true);
      out->set_error("no reward model is loaded in this scorer");
      continue;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("items[", i, "].verifier: '", v,
                                                     "' is not one of math, format, ifeval, rm"));
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

}  // namespace grail::reward
