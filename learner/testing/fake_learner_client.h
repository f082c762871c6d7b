#ifndef GRAIL_LEARNER_TESTING_FAKE_LEARNER_CLIENT_H_
#define GRAIL_LEARNER_TESTING_FAKE_LEARNER_CLIENT_H_

// In-process fake of the learner client: no LibTorch, deterministic versions. Thread-safe.

#include <algorithm>
#include <atomic>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "learner/learner_client.h"

namespace grail::learner::testing {

// Counts steps, bumps the version on each, and keeps every TrainStep request.
class FakeLearnerClient : public ::grail::learner::LearnerClient {
 public:
  using LearnerClient::InitModel;
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) override {
    absl::MutexLock lock(&mu_);
    grail::v1::InitModelResponse r;
    version_ = std::max<int64_t>(version_ + 1, request.min_weights_version());
    if (!request.spec().model().path().empty()) {
      auto it = saved_states_.find(request.spec().model().path());
      if (it != saved_states_.end()) {
        r.set_run_state(it->second.first);
        version_ = std::max(version_, it->second.second);
      }
    }
    init_requests_.push_back(request);
    r.set_weights_version(version_);
    r.set_num_parameters(1);
    return r;
  }
  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(const grail::v1::SupervisedStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    supervised_requests_.push_back(request);
    grail::v1::TrainStepResponse r;
    r.set_weights_version(request.eval_only() ? version_ : ++version_);
    (*r.mutable_metrics())["sft_loss"] = request.eval_only() ? 2.0 : 1.0;
    return r;
  }
  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(const grail::v1::PreferenceStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    preference_requests_.push_back(request);
    grail::v1::TrainStepResponse r;
    if (!request.eval_only()) ++version_;
    r.set_weights_version(version_);
    (*r.mutable_metrics())["loss"] = 0.5;
    (*r.mutable_metrics())["preference_accuracy"] = request.eval_only() ? 0.5 : 1.0;
    return r;
  }
  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    if (request.step() == fail_at_step) {
      fail_at_step = -1;  // dies once; the restarted learner serves again
      return absl::UnavailableError("learner 127.0.0.1:2: Socket closed");
    }
    steps_.push_back(request);
    grail::v1::TrainStepResponse r;
    r.set_weights_version(request.critic_only() ? version_ : ++version_);
    (*r.mutable_metrics())["loss"] = 0.0;
    return r;
  }
  // With `frozen_parts` the fake's model has frozen parameters: the default part is
  // "trainable-<version>" and the frozen part "frozen-part" (FakeActorClient understands
  // both).
  std::atomic<bool> frozen_parts{false};
  std::atomic<int> frozen_part_fetches{0};
  using LearnerClient::GetWeights;
  absl::StatusOr<Weights> GetWeights(int64_t, grail::v1::WeightsPart part) override {
    absl::MutexLock lock(&mu_);
    if (frozen_parts && part == grail::v1::WEIGHTS_PART_FROZEN) {
      ++frozen_part_fetches;
      return Weights{"frozen-part", version_};
    }
    if (frozen_parts && part == grail::v1::WEIGHTS_PART_DEFAULT) {
      return Weights{absl::StrCat("trainable-", version_), version_};
    }
    return Weights{absl::StrCat("weights-", version_), version_};
  }
  // Values 0.25 everywhere (column 0 excepted, as the real learner does).
  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(const grail::v1::ComputeValuesRequest& request) override {
    const int64_t B = request.input_ids().shape(0), T = request.input_ids().shape(1);
    std::vector<float> v(B * T, 0.25f);
    for (int64_t b = 0; b < B; ++b) v[b * T] = 0;
    grail::v1::ComputeValuesResponse r;
    auto* t = r.mutable_values();
    t->set_dtype(grail::v1::DTYPE_FLOAT32);
    t->add_shape(B);
    t->add_shape(T);
    t->set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    return r;
  }
  // Log-probs -0.5 per token and the argmax's -0.25 (column 0: 0); records the request.
  absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(const grail::v1::ScoreSequencesRequest& request) override {
    {
      absl::MutexLock lock(&mu_);
      ++score_calls;
    }
    const int64_t B = request.input_ids().shape(0), T = request.input_ids().shape(1);
    grail::v1::ScoreSequencesResponse r;
    for (auto [t, value] : {std::pair{r.mutable_log_probs(), -0.5f}, std::pair{r.mutable_max_log_probs(), -0.25f}}) {
      std::vector<float> v(B * T, value);
      for (int64_t b = 0; b < B; ++b) v[b * T] = 0;
      t->set_dtype(grail::v1::DTYPE_FLOAT32);
      t->add_shape(B);
      t->add_shape(T);
      t->set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    }
    return r;
  }
  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    absl::MutexLock lock(&mu_);
    checkpoints_.push_back(dir);
    saved_states_[dir] = {run_state, version_};
    return dir;
  }
  absl::Status WaitUntilServing(absl::Duration) override {
    ++waits;
    if (never_serving) return absl::UnavailableError("learner 127.0.0.1:2: not serving");
    return absl::OkStatus();
  }
  int score_calls = 0;  // ScoreSequences calls (guarded by mu_ while counting)
  int fail_at_step = -1;  // TrainStep of this step fails once, UNAVAILABLE (a killed learner)
  bool never_serving = false;  // WaitUntilServing fails (a learner that does not come back)
  std::atomic<int> waits{0};
  std::vector<grail::v1::InitModelRequest> init_requests() {
    absl::MutexLock lock(&mu_);
    return init_requests_;
  }
  std::vector<std::string> checkpoints() {
    absl::MutexLock lock(&mu_);
    return checkpoints_;
  }
  std::vector<grail::v1::SupervisedStepRequest> supervised_requests() {
    absl::MutexLock lock(&mu_);
    return supervised_requests_;
  }
  std::vector<grail::v1::PreferenceStepRequest> preference_requests() {
    absl::MutexLock lock(&mu_);
    return preference_requests_;
  }
  std::vector<grail::v1::TrainStepRequest> steps() {
    absl::MutexLock lock(&mu_);
    return steps_;
  }

 private:
  absl::Mutex mu_;
  int64_t version_ = -1;
  std::vector<grail::v1::TrainStepRequest> steps_;
  std::vector<std::string> checkpoints_;
  std::map<std::string, std::pair<std::string, int64_t>> saved_states_;  // dir -> run state, version
  std::vector<grail::v1::InitModelRequest> init_requests_;
  std::vector<grail::v1::PreferenceStepRequest> preference_requests_;
  std::vector<grail::v1::SupervisedStepRequest> supervised_requests_;
};

}  // namespace grail::learner::testing

#endif  // GRAIL_LEARNER_TESTING_FAKE_LEARNER_CLIENT_H_
