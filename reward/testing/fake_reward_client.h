#ifndef GRAIL_REWARD_TESTING_FAKE_REWARD_CLIENT_H_
#define GRAIL_REWARD_TESTING_FAKE_REWARD_CLIENT_H_

// In-process fake of the reward scorer client (the real torch-free verifiers, in process). Thread-safe.

#include <atomic>
#include <memory>

#include "common/status_macros.h"
#include "reward/reward_client.h"
#include "reward/reward_scorer.h"

namespace grail::reward::testing {

// Scores with the real (torch-free) verifiers, in process. The next `fail_next` calls fail
// with `failure` instead.
class FakeRewardClient : public ::grail::reward::RewardClient {
 public:
  std::atomic<int> fail_next{0};
  std::atomic<int> calls{0};
  absl::Status failure = absl::UnavailableError("fake reward: connection refused");

  FakeRewardClient() : scorer_(*::grail::reward::RewardScorer::Create({})) {}
  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) override {
    ++calls;
    if (fail_next > 0) {
      --fail_next;
      return failure;
    }
    return scorer_->Score(request);
  }
  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadRewardModel(const std::string& blob, int64_t version) override {
    RETURN_IF_ERROR(scorer_->LoadRewardModel(blob, version));
    grail::v1::LoadWeightsResponse response;
    response.set_version(version);
    response.set_bytes_received(static_cast<int64_t>(blob.size()));
    return response;
  }

 private:
  std::unique_ptr<::grail::reward::RewardScorer> scorer_;
};

}  // namespace grail::reward::testing

#endif  // GRAIL_REWARD_TESTING_FAKE_REWARD_CLIENT_H_
