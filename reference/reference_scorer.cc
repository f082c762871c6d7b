#include "reference/reference_scorer.h"

#include <cmath>

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "model/tensor_convert.h"
#include "model/versioned_model.h"

namespace grail::reference {
namespace {

class TorchReferenceScorer : public ReferenceScorer {
 public:
  explicit TorchReferenceScorer(const ReferenceScorerOptions& options) : options_(options) {}

  absl::Status LoadWeights(std::string blob, int64_t version) override {
    return model_.Load(std::move(blob), version);
  }

  absl::StatusOr<grail::v1::LogProbsResponse> ComputeLogProbs(
      const grail::v1::LogProbsRequest& request) override {
    RETURN_IF_ERROR(ValidateTensorAs(request.input_ids(), "input_ids", 2, {grail::v1::DTYPE_INT64}));
    ASSIGN_OR_RETURN(torch::Tensor ids, model::TensorFromProto(request.input_ids(), "input_ids"));
    if (ids.numel() > options_.max_tokens_per_request) {
      return absl::InvalidArgumentError(absl::StrCat("input_ids: ", ids.numel(),
                                                     " tokens exceed the per-request limit of ",
                                                     options_.max_tokens_per_request));
    }
    torch::Tensor valid = torch::ones_like(ids, torch::kBool);
    if (request.has_attention_mask()) {
      RETURN_IF_ERROR(ValidateTensorAs(request.attention_mask(), "attention_mask", 2,
                                       {grail::v1::DTYPE_BOOL, grail::v1::DTYPE_INT64}));
      ASSIGN_OR_RETURN(torch::Tensor mask,
                       model::TensorFromProto(request.attention_mask(), "attention_mask"));
      if (mask.sizes() != ids.sizes()) {
        return absl::InvalidArgumentError("attention_mask.shape: must equal input_ids.shape");
      }
      valid = mask.to(torch::kBool);
    }
    model::VersionedModel::Snapshot snap = model_.Get();
    if (snap.model == nullptr) {
      return absl::FailedPreconditionError("no model loaded: weights arrive through LoadWeights");
    }
    const int64_t vocab = (*snap.model)->config().vocab_size;
    if (ids.numel() > 0 && (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= vocab)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input_ids: token ids must be in [0, ", vocab, ")"));
    }
    if (ids.size(1) > (*snap.model)->config().max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("input_ids.shape[1]: ", ids.size(1),
                                                     " exceeds the model context"));
    }
    const float temperature = request.temperature();
    if (!std::isfinite(temperature) || temperature < 0 || temperature > 100) {
      return absl::InvalidArgumentError("temperature: must be a finite number in [0, 100]");
    }
    grail::v1::LogProbsResponse response;
    response.set_weights_version(snap.version);
    if (ids.size(1) < 2) {
      ASSIGN_OR_RETURN(*response.mutable_log_probs(),
                       model::TensorToProto(torch::zeros({ids.size(0), 0})));
      return response;
    }
    try {
      torch::NoGradGuard no_grad;
      auto& m = *snap.model;
      auto logits = m->Logits(m->Hidden(ids, model::PositionsFromValid(valid), valid));
      if (temperature > 0 && temperature != 1.0f) logits = logits / temperature;
      const int64_t T = ids.size(1);
      auto lp = model::TokenLogProbs(logits.narrow(1, 0, T - 1), ids.narrow(1, 1, T - 1));
      lp = lp.masked_fill(~(valid.narrow(1, 0, T - 1) & valid.narrow(1, 1, T - 1)), 0.0);
      ASSIGN_OR_RETURN(*response.mutable_log_probs(), model::TensorToProto(lp));
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("scoring failed: ", e.what_without_backtrace()));
    }
    return response;
  }

 private:
  ReferenceScorerOptions options_;
  model::VersionedModel model_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReferenceScorer>> ReferenceScorer::Create(
    const ReferenceScorerOptions& options) {
  if (options.num_threads <= 0) return absl::InvalidArgumentError("threads: must be > 0");
  at::set_num_threads(options.num_threads);
  return std::unique_ptr<ReferenceScorer>(new TorchReferenceScorer(options));
}

}  // namespace grail::reference
