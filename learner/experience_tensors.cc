#include "learner/experience_tensors.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/tensor_validation.h"
#include "model/tensor_convert.h"

namespace grail::learner {

namespace {

// Token rows per chunk of the vocabulary projection: a chunk's logits are
// kChunkRows x vocab floats (64 MB at a 150k vocabulary), never the whole [N, vocab].
constexpr int64_t kChunkRows = 128;

// log p(target) of every row of `hidden` [N, C] under logits hidden W^T / temperature, with
// W [V, C] the output projection, computed chunk by chunk: forward keeps only each row's
// log-normaliser, backward recomputes a chunk's logits to form its softmax. Full-vocabulary
// logits are never held for the graph. Forward also fills `entropy` and `max_log_probs`
// ([N] each, or empty when not wanted) with each row's entropy and most likely token's
// log-prob (no gradient flows through them).
class ChunkedTokenLogProbs : public torch::autograd::Function<ChunkedTokenLogProbs> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, double temperature,
                               torch::Tensor entropy, torch::Tensor max_log_probs) {
    const int64_t N = hidden.size(0);
    auto lse = torch::empty({N}, hidden.options());
    auto lp = torch::empty({N}, hidden.options());
    const double inv_t = 1.0 / temperature;
    for (int64_t begin = 0; begin < N; begin += kChunkRows) {
      const int64_t n = std::min(kChunkRows, N - begin);
      auto logits = torch::mm(hidden.narrow(0, begin, n), weight.t());
      if (inv_t != 1.0) logits.mul_(inv_t);
      auto chunk_lse = torch::logsumexp(logits, -1);
      lse.narrow(0, begin, n).copy_(chunk_lse);
      lp.narrow(0, begin, n).copy_(logits.gather(-1, targets.narrow(0, begin, n).unsqueeze(-1)).squeeze(-1) - chunk_lse);
      if (entropy.numel() > 0 || max_log_probs.numel() > 0) {
        auto log_p = logits.sub_(chunk_lse.unsqueeze(-1));
        if (max_log_probs.numel() > 0) max_log_probs.narrow(0, begin, n).copy_(std::get<0>(log_p.max(-1)));
        if (entropy.numel() > 0) entropy.narrow(0, begin, n).copy_(-(log_p.exp() * log_p).sum(-1));
      }
    }
    ctx->save_for_backward({hidden, weight, targets, lse});
    ctx->saved_data["inv_t"] = inv_t;
    return lp;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    const double inv_t = ctx->saved_data["inv_t"].toDouble();
    const torch::Tensor g = grads[0].contiguous();
    const bool want_h = ctx->needs_input_grad(0), want_w = ctx->needs_input_grad(1);
    torch::Tensor grad_h = want_h ? torch::empty_like(hidden) : torch::Tensor();
    torch::Tensor grad_w = want_w ? torch::zeros_like(weight) : torch::Tensor();
    const int64_t N = hidden.size(0);
    for (int64_t begin = 0; begin < N; begin += kChunkRows) {
      const int64_t n = std::min(kChunkRows, N - begin);
      auto h = hidden.narrow(0, begin, n);
      auto gc = g.narrow(0, begin, n);
      // d lp / d logits = onehot(target) - softmax, times the incoming gradient and 1/T.
      auto logits = torch::mm(h, weight.t());
      if (inv_t != 1.0) logits.mul_(inv_t);
      auto dlogits = logits.sub_(lse.narrow(0, begin, n).unsqueeze(-1)).exp_().mul_(-gc.unsqueeze(-1));
      dlogits.scatter_add_(-1, targets.narrow(0, begin, n).unsqueeze(-1), gc.unsqueeze(-1));
      if (inv_t != 1.0) dlogits.mul_(inv_t);
      if (want_h) grad_h.narrow(0, begin, n).copy_(torch::mm(dlogits, weight));
      if (want_w) grad_w.addmm_(dlogits.t(), h);
    }
    return {grad_h, grad_w, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// The output projection's weight [V, C] when it is a plain float32 matrix (lm_head, or the
// tied embeddings); undefined otherwise (an NF4 head: the caller takes the general path).
torch::Tensor OutputProjection(model::CausalLm& model) {
  const std::string name = model->config().tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const torch::Tensor* w = model->named_parameters().find(name);
  if (w == nullptr || w->dim() != 2 || w->scalar_type() != torch::kFloat32) return torch::Tensor();
  return *w;
}

}  // namespace

torch::Tensor AlignedLogProbs(model::CausalLm& model, const torch::Tensor& ids, torch::Tensor* entropy,
                              double temperature, torch::Tensor* max_log_probs, bool entropy_grad,
                              const torch::Tensor& segment_ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  torch::Tensor hidden;
  // Column t is kept where token t continues a sequence: everywhere but column 0, and in
  // packed rows not at a segment's first token either.
  torch::Tensor keep;
  if (segment_ids.defined()) {
    hidden = model->Hidden(ids, model::PositionsFromSegments(segment_ids), valid, nullptr, segment_ids);
    keep = (segment_ids.narrow(1, 1, T - 1) == segment_ids.narrow(1, 0, T - 1)).to(torch::kFloat32);
  } else {
    auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
    hidden = model->Hidden(ids, positions, valid);
  }
  hidden = hidden.narrow(1, 0, T - 1);
  auto aligned = [&](const torch::Tensor& x) {  // [B, T-1] -> [B, T]
    return torch::cat({torch::zeros({B, 1}), keep.defined() ? x * keep : x}, 1);
  };
  const double t = temperature > 0 ? temperature : 1.0;
  torch::Tensor weight = OutputProjection(model);
  if (weight.defined() && !(entropy != nullptr && entropy_grad)) {
    const int64_t C = hidden.size(2), N = B * (T - 1);
    torch::Tensor ent = torch::empty({entropy != nullptr ? N : 0});
    torch::Tensor max_lp = torch::empty({max_log_probs != nullptr ? N : 0});
    auto lp = ChunkedTokenLogProbs::apply(hidden.reshape({N, C}), weight, ids.narrow(1, 1, T - 1).reshape({N}), t,
                                          ent, max_lp);
    if (entropy != nullptr) *entropy = aligned(ent.view({B, T - 1}));
    if (max_log_probs != nullptr) *max_log_probs = aligned(max_lp.view({B, T - 1}));
    return aligned(lp.view({B, T - 1}));
  }
  // The general path (an entropy bonus needs its gradient; an NF4 output projection).
  auto logits = model->Logits(hidden);
  if (t != 1.0) logits = logits / t;
  auto log_softmax = torch::log_softmax(logits, -1);
  auto lp = log_softmax.gather(-1, ids.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
  if (entropy != nullptr) *entropy = aligned(-(log_softmax.exp() * log_softmax).sum(-1));
  if (max_log_probs != nullptr) *max_log_probs = aligned(std::get<0>(log_softmax.max(-1)).detach());
  return aligned(lp);
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

absl::StatusOr<torch::Tensor> SegmentIds(const grail::v1::Tensor& t, const std::string& field,
                                         const torch::Tensor& like) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_INT64}));
  ASSIGN_OR_RETURN(torch::Tensor segments, model::TensorFromProto(t, field));
  if (segments.sizes() != like.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: must match input_ids"));
  }
  return segments;
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
