#ifndef GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_
#define GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_

// In-process fakes of the service clients, for testing the coordinator without a network or
// LibTorch. Each is thread-safe.

#include <atomic>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor_client.h"
#include "learner/learner_client.h"
#include "tokenizer/char_tokenizer.h"
#include "reference/reference_client.h"
#include "reward/reward_client.h"
#include "reward/reward_scorer.h"

namespace grail::coordinator::testing {

// Answers "A+B=" prompts: samples with an even index g get the right sum, odd ones the
// wrong A+B+g (so every group is informative and its samples differ), unless `all_correct` makes every group uniform. Can
// fail after emitting `fail_after` samples of a call, to exercise retries.
class FakeActorClient : public actor::ActorClient {
 public:
  std::atomic<int> fail_after{-1};      // -1: never fail
  std::atomic<bool> all_correct{false};
  std::atomic<int> generate_calls{0};
  std::atomic<int> failed_calls{0};
  std::atomic<int64_t> version{-1};
  std::atomic<int> fail_loads{0};  // the next N LoadWeights calls fail (UNAVAILABLE)

  // The weights version of every Generate call, in order.
  std::vector<int64_t> generate_versions() {
    absl::MutexLock lock(&mu_);
    return generate_versions_;
  }

  absl::Status Generate(const grail::v1::GenerateRequest& request,
                        const std::function<void(grail::v1::Sample)>& on_sample) override {
    ++generate_calls;
    {
      absl::MutexLock lock(&mu_);
      generate_versions_.push_back(version);
    }
    int emitted = 0;
    for (const auto& p : request.prompts()) {
      const std::string text = tok_.Decode({p.token_ids().begin(), p.token_ids().end()});
      std::vector<std::string> parts = absl::StrSplit(text.substr(0, text.size() - 1), '+');
      int64_t a = 0, b = 0;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &a) || !absl::SimpleAtoi(parts[1], &b)) {
        return absl::InvalidArgumentError(absl::StrCat("fake actor: cannot read prompt '", text, "'"));
      }
      for (int g = 0; g < request.group_size(); ++g) {
        if (fail_after >= 0 && emitted >= fail_after) {
          ++failed_calls;
          return absl::UnavailableError("fake actor: connection reset");
        }
        const bool right = all_correct || g % 2 == 0;
        auto ids = *tok_.Encode(absl::StrCat(right ? a + b : a + b + g));
        ids.push_back(tokenizer::CharTokenizer::kEos);
        grail::v1::Sample s;
        s.set_run_id(request.run_id());
        s.set_step(request.step());
        s.set_prompt_id(p.prompt_id());
        s.set_sample_index(g);
        s.set_policy_version(version);
        *s.mutable_prompt_token_ids() = p.token_ids();
        for (int id : ids) {
          s.add_token_ids(id);
          s.add_behavior_log_probs(-0.5f);
        }
        s.set_finish_reason(grail::v1::FINISH_REASON_EOS);
        on_sample(std::move(s));
        ++emitted;
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob, int64_t v) override {
    if (fail_loads > 0) {
      --fail_loads;
      return absl::UnavailableError("fake actor: connection refused");
    }
    version = v;
    grail::v1::LoadWeightsResponse r;
    r.set_version(v);
    r.set_bytes_received(static_cast<int64_t>(blob.size()));
    return r;
  }

  absl::StatusOr<grail::v1::ActorInfo> GetInfo() override {
    grail::v1::ActorInfo info;
    info.set_weights_version(version);
    info.set_model_loaded(version >= 0);
    return info;
  }

 private:
  tokenizer::CharTokenizer tok_;
  absl::Mutex mu_;
  std::vector<int64_t> generate_versions_;
};

// Scores with the real (torch-free) verifiers, in process. The next `fail_next` calls fail
// with `failure` instead.
class FakeRewardClient : public reward::RewardClient {
 public:
  std::atomic<int> fail_next{0};
  std::atomic<int> calls{0};
  absl::Status failure = absl::UnavailableError("fake reward: connection refused");

  FakeRewardClient() : scorer_(*reward::RewardScorer::Create({})) {}
  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) override {
    ++calls;
    if (fail_next > 0) {
      --fail_next;
      return failure;
    }
    return scorer_->Score(request);
  }

 private:
  std::unique_ptr<reward::RewardScorer> scorer_;
};

// Returns log-prob -1 for every scored token.
// Serves the version it was last given, like the real scorer; Restart() forgets it (a
// restarted process), and `down` answers UNAVAILABLE.
class FakeReferenceClient : public reference::ReferenceClient {
 public:
  absl::StatusOr<grail::v1::LogProbsResponse> ComputeLogProbs(const grail::v1::LogProbsRequest& request) override {
    if (calls.fetch_add(1) + 1 == restart_at_call.load()) {
      Restart();
      if (stay_down) down = true;
    }
    if (down.load()) return absl::UnavailableError("reference 127.0.0.1:1: Connection refused");
    const int64_t version = version_.load();
    if (version < 0) return absl::FailedPreconditionError("reference 127.0.0.1:1: no model loaded");
    const int64_t B = request.input_ids().shape(0), T = request.input_ids().shape(1);
    grail::v1::LogProbsResponse r;
    r.set_weights_version(version);
    auto* lp = r.mutable_log_probs();
    lp->set_dtype(grail::v1::DTYPE_FLOAT32);
    lp->add_shape(B);
    lp->add_shape(T - 1);
    std::vector<float> v(B * (T - 1), -1.0f);
    lp->set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
    return r;
  }
  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view, int64_t v) override {
    if (down.load()) return absl::UnavailableError("reference 127.0.0.1:1: Connection refused");
    version_ = v;
    ++loads;
    grail::v1::LoadWeightsResponse r;
    r.set_version(v);
    return r;
  }
  void Restart() { version_ = -1; }

  std::atomic<bool> down{false};
  std::atomic<int> loads{0};
  std::atomic<int> calls{0};
  std::atomic<int> restart_at_call{-1};  // this ComputeLogProbs call finds a restarted scorer
  std::atomic<bool> stay_down{false};     // ... that then stays away

 private:
  std::atomic<int64_t> version_{-1};
};

// Counts steps, bumps the version on each, and keeps every TrainStep request.
class FakeLearnerClient : public learner::LearnerClient {
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
  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(const grail::v1::SupervisedStepRequest&) override {
    absl::MutexLock lock(&mu_);
    grail::v1::TrainStepResponse r;
    r.set_weights_version(++version_);
    (*r.mutable_metrics())["sft_loss"] = 1.0;
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
  absl::StatusOr<Weights> GetWeights(int64_t) override {
    absl::MutexLock lock(&mu_);
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
  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    absl::MutexLock lock(&mu_);
    checkpoints_.push_back(dir);
    saved_states_[dir] = {run_state, version_};
    return dir;
  }
  absl::Status WaitUntilServing(absl::Duration) override {
    ++waits;
    return absl::OkStatus();
  }
  int fail_at_step = -1;  // TrainStep of this step fails once, UNAVAILABLE (a killed learner)
  std::atomic<int> waits{0};
  std::vector<grail::v1::InitModelRequest> init_requests() {
    absl::MutexLock lock(&mu_);
    return init_requests_;
  }
  std::vector<std::string> checkpoints() {
    absl::MutexLock lock(&mu_);
    return checkpoints_;
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
};

}  // namespace grail::coordinator::testing

#endif  // GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_
