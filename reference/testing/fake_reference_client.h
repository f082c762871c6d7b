#ifndef GRAIL_REFERENCE_TESTING_FAKE_REFERENCE_CLIENT_H_
#define GRAIL_REFERENCE_TESTING_FAKE_REFERENCE_CLIENT_H_

// In-process fake of the reference scorer client. Thread-safe.

#include <atomic>
#include <vector>

#include "reference/reference_client.h"

namespace grail::reference::testing {

// Returns log-prob -1 for every scored token.
// Serves the version it was last given, like the real scorer; Restart() forgets it (a
// restarted process), and `down` answers UNAVAILABLE.
class FakeReferenceClient : public ::grail::reference::ReferenceClient {
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

}  // namespace grail::reference::testing

#endif  // GRAIL_REFERENCE_TESTING_FAKE_REFERENCE_CLIENT_H_
