#include "coordinator/retrying_clients.h"

#include <utility>

namespace grail::coordinator {

namespace {

class RetryingReward : public reward::RewardClient {
 public:
  RetryingReward(std::shared_ptr<reward::RewardClient> inner, RetryPolicy policy, Clock* clock, RetryHooks hooks)
      : inner_(std::move(inner)), policy_(policy), clock_(clock), hooks_(std::move(hooks)) {}

  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) override {
    return CallWithRetries("reward", policy_, clock_, hooks_, [&] { return inner_->Score(request); });
  }
  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadRewardModel(const std::string& blob, int64_t version) override {
    return CallWithRetries("reward", policy_, clock_, hooks_, [&] { return inner_->LoadRewardModel(blob, version); });
  }

 private:
  const std::shared_ptr<reward::RewardClient> inner_;
  const RetryPolicy policy_;
  Clock* const clock_;
  const RetryHooks hooks_;
};

class RetryingActor : public actor::ActorClient {
 public:
  RetryingActor(std::shared_ptr<actor::ActorClient> inner, RetryPolicy policy, Clock* clock, RetryHooks hooks)
      : inner_(std::move(inner)), policy_(policy), clock_(clock), hooks_(std::move(hooks)) {}

  absl::Status Generate(const grail::v1::GenerateRequest& request,
                        const std::function<void(grail::v1::Sample)>& on_sample) override {
    return inner_->Generate(request, on_sample);
  }
  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob, int64_t version) override {
    return CallWithRetries("actor", policy_, clock_, hooks_, [&] { return inner_->LoadWeights(blob, version); });
  }
  absl::StatusOr<grail::v1::ActorInfo> GetInfo() override { return inner_->GetInfo(); }
  // No retries inside a stream: a failed stream-through load falls back to LoadWeights.
  std::unique_ptr<actor::WeightsUpload> StartWeightsUpload() override { return inner_->StartWeightsUpload(); }

 private:
  const std::shared_ptr<actor::ActorClient> inner_;
  const RetryPolicy policy_;
  Clock* const clock_;
  const RetryHooks hooks_;
};

}  // namespace

std::shared_ptr<reward::RewardClient> RetryingRewardClient(std::shared_ptr<reward::RewardClient> inner,
                                                           RetryPolicy policy, Clock* clock, RetryHooks hooks) {
  return std::make_shared<RetryingReward>(std::move(inner), policy, clock, std::move(hooks));
}

std::shared_ptr<actor::ActorClient> RetryingActorClient(std::shared_ptr<actor::ActorClient> inner,
                                                        RetryPolicy policy, Clock* clock, RetryHooks hooks) {
  return std::make_shared<RetryingActor>(std::move(inner), policy, clock, std::move(hooks));
}

}  // namespace grail::coordinator
