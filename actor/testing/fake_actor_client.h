#ifndef GRAIL_ACTOR_TESTING_FAKE_ACTOR_CLIENT_H_
#define GRAIL_ACTOR_TESTING_FAKE_ACTOR_CLIENT_H_

// In-process fake of an actor, for testing its callers without a network or LibTorch. Thread-safe.

#include <algorithm>
#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "actor/actor_client.h"
#include "common/weights_stream.h"
#include "tokenizer/char_tokenizer.h"

namespace grail::actor::testing {

// Answers "A+B=" prompts: samples with an even index g get the right sum, odd ones the
// wrong A+B+g (so every group is informative and its samples differ), unless `all_correct` makes every group uniform. Can
// fail after emitting `fail_after` samples of a call, to exercise retries.
class FakeActorClient : public ::grail::actor::ActorClient {
 public:
  std::atomic<int> fail_after{-1};      // -1: never fail
  std::atomic<bool> all_correct{false};
  // When set, evaluation requests (greedy, one sample per prompt) answer A+B right exactly
  // when this says so.
  std::function<bool(int64_t a, int64_t b)> greedy_right;
  std::atomic<int> generate_calls{0};
  std::atomic<int> failed_calls{0};
  std::atomic<int64_t> version{-1};
  std::atomic<int> fail_loads{0};  // the next N LoadWeights calls fail (UNAVAILABLE)
  std::atomic<bool> has_frozen_part{false};  // "frozen-part" loaded (FakeLearnerClient::frozen_parts)

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
        const bool evaluation = greedy_right && request.sampling().temperature() == 0 && request.group_size() == 1;
        const bool right = evaluation ? greedy_right(a, b) : (all_correct || g % 2 == 0);
        auto ids = *tok_.Encode(absl::StrCat(right ? a + b : a + b + std::max(g, 1)));
        ids.push_back(::grail::tokenizer::CharTokenizer::kEos);
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
    // Parts of a model with frozen parameters, as VersionedModel takes them.
    if (blob == "frozen-part") {
      has_frozen_part = true;
      grail::v1::LoadWeightsResponse r;
      r.set_version(version);
      return r;
    }
    if (absl::StartsWith(blob, "trainable-") && !has_frozen_part) {
      return absl::FailedPreconditionError(absl::StrCat("fake actor: no frozen part (", kNeedsFrozenPart, ")"));
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
  ::grail::tokenizer::CharTokenizer tok_;
  absl::Mutex mu_;
  std::vector<int64_t> generate_versions_;
};

}  // namespace grail::actor::testing

#endif  // GRAIL_ACTOR_TESTING_FAKE_ACTOR_CLIENT_H_
