#include "learner/experience_tensors.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tensor_validation.h"
#include "model/tensor_convert.h"

namespace grail::learner {

torch::Tensor AlignedLogProbs(model::CausalLm& model, const torch::Tensor& ids, torch::Tensor* entropy,
                              double temperature, torch::Tensor* max_log_probs) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto logits = model->Logits(model->Hidden(ids, positions, valid)).narrow(1, 0, T - 1);
  if (temperature > 0 && temperature != 1.0) logits = logits / temperature;
  auto log_softmax = torch::log_softmax(logits, -1);
  auto lp = log_softmax.gather(-1, ids.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
  if (entropy != nullptr) {
    auto ent = -(log_softmax.exp() * log_softmax).sum(-1);
    *entropy = torch::cat({torch::zeros({B, 1}), ent}, 1);
  }
  if (max_log_probs != nullptr) {
    *max_log_probs = torch::cat({torch::zeros({B, 1}), std::get<0>(log_softmax.max(-1))}, 1);
  }
  return torch::cat({torch::zeros({B, 1}), lp}, 1);
}

torch::Tensor AlignedValues(model::CausalLm& critic, const torch::Tensor& ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto v = critic->Values(critic->Hidden(ids, positions, valid)).narrow(1, 0, T - 1);
  return torch::cat({torch::zeros({B, 1}), v}, 1);
}

absl::StatusOr<torch::Tensor> FloatMatrixLike(const grail::v1::Tensor& t, const std::string& field,
                                              const torch::Tensor& like) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_FLOAT32}));
  ASSIGN_OR_RETURN(torch::Tensor out, model::TensorFromProto(t, field));
  if (out.sizes() != like.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: must equal input_ids.shape"));
  }
  if (!torch::isfinite(out).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains NaN or Inf"));
  }
  return out;
}

absl::StatusOr<torch::Tensor> TokenIds(const grail::v1::Tensor& t, const std::string& field, int64_t vocab,
                                       int64_t context) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_INT64}));
  ASSIGN_OR_RETURN(torch::Tensor ids, model::TensorFromProto(t, field));
  if (ids.size(0) == 0 || ids.size(1) < 2) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: need at least 1 row and 2 columns"));
  }
  if (ids.size(1) > context) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".shape[1]: ", ids.size(1), " exceeds the model context ", context));
  }
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": token ids must be in [0, ", vocab, ")"));
  }
  return ids;
}

absl::StatusOr<ExperienceTensors> DecodeExperience(const grail::v1::Experience& e, int64_t vocab, int64_t context) {
  ExperienceTensors x;
  ASSIGN_OR_RETURN(x.ids, TokenIds(e.input_ids(), "experience.input_ids", vocab, context));
  ASSIGN_OR_RETURN(x.mask, FloatMatrixLike(e.response_mask(), "experience.response_mask", x.ids));
  ASSIGN_OR_RETURN(x.old_log_probs, FloatMatrixLike(e.old_log_probs(), "experience.old_log_probs", x.ids));
  ASSIGN_OR_RETURN(x.advantages, FloatMatrixLike(e.advantages(), "experience.advantages", x.ids));
  if (e.has_ref_log_probs()) {
    ASSIGN_OR_RETURN(x.ref_log_probs, FloatMatrixLike(e.ref_log_probs(), "experience.ref_log_probs", x.ids));
  }
  if (e.has_returns() || e.has_values()) {
    ASSIGN_OR_RETURN(x.returns, FloatMatrixLike(e.returns(), "experience.returns", x.ids));
    ASSIGN_OR_RETURN(x.old_values, FloatMatrixLike(e.values(), "experience.values", x.ids));
  }
  return x;
}

}  // namespace grail::learner
