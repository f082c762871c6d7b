#include "reward/reward_scorer.h"

#include "absl/strings/str_cat.h"

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
  for (int i = 0; i < request.items_size(); ++i) {
    const auto& v = request.items(i).verifier();
    if (v != "math" && v != "format" && v != "ifeval" && v != "rm") {
      return absl::InvalidArgumentError(absl::StrCat("items[", i, "].verifier: '", v,
                                                     "' is not one of math, format, ifeval, rm"));
    }
  }
  return absl::UnimplementedError("reward verifiers are not implemented yet");
}

}  // namespace grail::reward
