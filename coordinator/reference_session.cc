#include "coordinator/reference_session.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace grail::coordinator {

ReferenceSession::ReferenceSession(std::shared_ptr<reference::ReferenceClient> client, CoordinatorMetrics* metrics,
                                   Options options)
    : client_(std::move(client)), metrics_(metrics), options_(std::move(options)) {}

absl::Status ReferenceSession::Load(WeightsPtr weights) {
  absl::Status loaded = CallWithRetries("reference", options_.load_retries, options_.clock, options_.hooks, [&] {
    return LoadWeightsInto([&](const std::string& blob, int64_t version) {
      return client_->LoadWeights(blob, version).status();
    }, *weights, options_.frozen_part);
  });
  if (!loaded.ok()) {
    return absl::Status(loaded.code(), absl::StrCat("reference: weight sync failed: ", loaded.message()));
  }
  absl::MutexLock lock(&mu_);
  weights_ = std::move(weights);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<float>>> ReferenceSession::LogProbs(const SamplePtrs& samples,
                                                                           float temperature, int pad_id) {
  const Packed packed = PackSequences(samples, pad_id);
  const size_t B = samples.size();
  grail::v1::LogProbsRequest req;
  *req.mutable_input_ids() = Int64Matrix(B, packed.width, packed.ids);
  *req.mutable_attention_mask() = Int64Matrix(B, packed.width, packed.valid);
  req.set_temperature(temperature);
  WeightsPtr expected;
  {
    absl::MutexLock lock(&mu_);
    expected = weights_;
  }
  // One try: a scorer that lost its weights (restarted) is reloaded and asked again; if
  // that fails, the try fails transiently so that the retry loop waits for the scorer.
  auto attempt = [&]() -> absl::StatusOr<grail::v1::LogProbsResponse> {
    auto resp = client_->ComputeLogProbs(req);
    const bool lost = expected != nullptr && (resp.ok() ? resp->weights_version() != expected->version
                                                        : absl::IsFailedPrecondition(resp.status()));
    if (!lost) return resp;
    absl::Status reloaded = LoadWeightsInto([&](const std::string& blob, int64_t version) {
      return client_->LoadWeights(blob, version).status();
    }, *expected, options_.frozen_part);
    if (!reloaded.ok()) return absl::UnavailableError(absl::StrCat("lost its weights; reload: ", reloaded.message()));
    metrics_->CountRecovery("reference");
    if (options_.on_recovered) {
      options_.on_recovered(
          absl::StrCat("reference scorer restarted; reloaded its weights (version ", expected->version, ")"));
    }
    resp = client_->ComputeLogProbs(req);
    if (resp.ok() && resp->weights_version() != expected->version) {
      return absl::UnavailableError("serves other weights");
    }
    return resp;
  };
  auto resp = CallWithRetries("reference", options_.call_retries, options_.clock, options_.hooks, attempt);
  if (!resp.ok()) {
    if (absl::StartsWith(resp.status().message(), "reference")) return resp.status();
    return absl::Status(resp.status().code(), absl::StrCat("reference: ", resp.status().message()));
  }
  return AlignedLogProbs(*resp, B, packed.width);
}

}  // namespace grail::coordinator
