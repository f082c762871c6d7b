#include "model/transformer.h"

#include <cmath>
#include <cstring>
#include <map>
#include <mutex>

#include <ATen/Parallel.h>

#include "model/cpu_kernels.h"

namespace grail::model {
namespace {

torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

torch::Tensor RotateHalf(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// The projection `name` (q, k, v, o, gate, up, down), with an adapter if config.lora names it.
Projection MakeProjection(const ModelConfig& c, const std::string& name, int64_t in, int64_t out, bool bias) {
  const bool adapter = c.lora.Targets(name);
  return Projection(in, out, bias, adapter ? c.lora.r : 0, adapter ? c.lora.scale() : 0, c.lora.dropout);
}

bool IsAdapterParameter(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

// True while CheckpointedLayer's forward runs a layer without recording gradients for a
// pass that does train: LoRA dropout must draw its masks there as the recomputation will.
thread_local bool in_checkpointed_forward = false;

// Large negative instead of -inf so that fully masked rows (padding queries) stay finite.
constexpr float kMaskValue = -1e30f;

// Inference on float32 CPU tensors (no gradient recorded: sampling, scoring) takes the CPU
// kernels (model/cpu_kernels.h) for the elementwise parts, one pass each instead of a
// chain of operators with a temporary per step.
bool UseInferenceKernels(const torch::Tensor& x) {
  return !torch::GradMode::is_enabled() && x.is_cpu() && x.scalar_type() == torch::kFloat32;
}

// RoPE in place on x [B, T, heads, D] (contiguous) with cos/sin [B, T, D].
void RopeInPlace(torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  auto c = cos.contiguous(), s = sin.contiguous();
  Rope(x.data_ptr<float>(), c.data_ptr<float>(), s.data_ptr<float>(), x.size(0) * x.size(1), x.size(2), x.size(3));
}

// y = x W^T (+ bias) through W's packed copy; x [..., k] float32 on the CPU.
torch::Tensor PackedLinear(const torch::Tensor& x, const PackedWeight& w, const torch::Tensor& bias) {
  TORCH_CHECK(x.size(-1) == w.k(), "packed projection: input has ", x.size(-1), " features, weight ", w.k());
  auto in = x.reshape({-1, w.k()}).contiguous();
  auto sizes = x.sizes().vec();
  sizes.back() = w.n();
  auto y = torch::empty(sizes, x.options());
  const torch::Tensor b = bias.defined() ? bias.contiguous() : bias;
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  const int64_t m = in.size(0);
  at::parallel_for(0, w.panels(), 1, [&](int64_t begin, int64_t end) {
    w.Multiply(in.data_ptr<float>(), m, bp, y.data_ptr<float>(), begin, end);
  });
  return y;
}

bool UsePackedWeights(const torch::Tensor& x) { return UseInferenceKernels(x) && !in_checkpointed_forward; }

}  // namespace

bool PackedCopy::FreshFor(const torch::Tensor& weight) const {
  return packed != nullptr && weight.defined() && weight.dim() == 2 && weight.data_ptr() == source &&
         static_cast<int64_t>(weight._version()) == source_version && weight.size(0) == packed->n() &&
         weight.size(1) == packed->k();
}

bool PackedCopy::Refresh(const torch::Tensor& weight) {
  if (FreshFor(weight)) return true;
  *this = PackedCopy{};
  if (!weight.defined() || weight.dim() != 2 || !weight.is_cpu() || weight.scalar_type() != torch::kFloat32 ||
      weight.numel() == 0) {
    return false;
  }
  try {
    auto w = weight.detach().contiguous();
    packed = std::make_shared<const PackedWeight>(w.data_ptr<float>(), w.size(0), w.size(1));
  } catch (const std::bad_alloc&) {
    return false;  // no room for a copy: this weight keeps computing through BLAS
  }
  source = weight.data_ptr();
  source_version = static_cast<int64_t>(weight._version());
  return true;
}

void PackedCopy::Update(const torch::Tensor& weight, const std::map<const void*, PackedCopy>* shared) {
  if (FreshFor(weight)) return;
  if (shared != nullptr && weight.defined() && weight.dim() == 2) {
    // The same storage packed by another model (whose tensor has a version counter of its
    // own): adopt that copy as of this tensor's version.
    auto it = shared->find(weight.data_ptr());
    if (it != shared->end() && it->second.packed->n() == weight.size(0) && it->second.packed->k() == weight.size(1)) {
      *this = it->second;
      source_version = static_cast<int64_t>(weight._version());
      return;
    }
  }
  Refresh(weight);
}

ProjectionImpl::ProjectionImpl(int64_t in, int64_t out, bool has_bias, int64_t lora_r, double lora_scale,
                               double lora_dropout)
    : scale_(lora_scale), dropout_(lora_dropout) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (has_bias) bias = register_parameter("bias", torch::zeros({out}));
  if (lora_r > 0) {
    lora_a_module_ = register_module("lora_A", MakeLinear(in, lora_r, false));
    lora_b_module_ = register_module("lora_B", MakeLinear(lora_r, out, false));
    lora_a_ = lora_a_module_->weight;
    lora_b_ = lora_b_module_->weight;
    torch::NoGradGuard no_grad;
    lora_b_.zero_();
  }
}

torch::Tensor ProjectionImpl::forward(const torch::Tensor& x) {
  torch::Tensor y;
  if (nf4_.defined()) {
    y = Nf4Linear(x, nf4_, bias);
  } else if (packed_.packed != nullptr && UsePackedWeights(x) && packed_.FreshFor(weight)) {
    y = PackedLinear(x, *packed_.packed, bias);
  } else {
    y = torch::nn::functional::linear(x, weight, bias);
  }
  if (!has_adapter() || !adapter_enabled_) return y;
  // Dropout on the adapter's input only while training with gradients (never when sampling
  // or scoring, which run without them).
  torch::Tensor in = x;
  if (dropout_ > 0 && is_training() && (torch::GradMode::is_enabled() || in_checkpointed_forward)) {
    in = torch::nn::functional::dropout(x, torch::nn::functional::DropoutFuncOptions().p(dropout_).training(true));
  }
  // y + scale (in A^T) B^T as one GEMM that accumulates into y (no separate scale and add).
  const int64_t out = y.size(-1);
  auto y2 = y.reshape({-1, out});
  auto mid = in.reshape({-1, in.size(-1)}).mm(lora_a_.t());
  return torch::addmm(y2, mid, lora_b_.t(), /*beta=*/1, /*alpha=*/scale_).view(y.sizes());
}

torch::Tensor ProjectionImpl::MergedWeight() const {
  if (!has_adapter()) return DenseWeight().detach().clone();
  return (DenseWeight() + torch::matmul(lora_b_, lora_a_) * scale_).detach();
}

void ProjectionImpl::PackForInference(const std::map<const void*, PackedCopy>* shared) {
  if (nf4_.defined()) {
    packed_ = PackedCopy{};
    return;
  }
  packed_.Update(weight, shared);
}

torch::Tensor ProjectionImpl::DenseWeight() const { return nf4_.defined() ? DequantizeNf4(nf4_) : weight; }

void ProjectionImpl::QuantizeWeight(bool double_quant) {
  if (nf4_.defined() || weight.requires_grad()) return;
  nf4_ = QuantizeNf4(weight, double_quant);
  weight.set_data(torch::empty({0}));
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  if (UseInferenceKernels(x) && weight_.is_contiguous()) {
    auto in = x.contiguous();
    auto out = torch::empty_like(in);
    const int64_t dim = in.size(-1);
    RmsNorm(in.data_ptr<float>(), weight_.data_ptr<float>(), in.numel() / dim, dim, static_cast<float>(eps_),
            out.data_ptr<float>());
    return out;
  }
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps_) * weight_;
}

AttentionImpl::AttentionImpl(const ModelConfig& c) : config_(c) {
  const int64_t d = c.head_dim();
  q_proj_ = register_module("q_proj", MakeProjection(c, "q", c.hidden_size, c.num_attention_heads * d, c.attention_bias));
  k_proj_ = register_module("k_proj", MakeProjection(c, "k", c.hidden_size, c.num_key_value_heads * d, c.attention_bias));
  v_proj_ = register_module("v_proj", MakeProjection(c, "v", c.hidden_size, c.num_key_value_heads * d, c.attention_bias));
  o_proj_ = register_module("o_proj", MakeProjection(c, "o", c.num_attention_heads * d, c.hidden_size, false));
  if (c.qk_norm) {
    q_norm_ = register_module("q_norm", RMSNorm(d, c.rms_norm_eps));
    k_norm_ = register_module("k_norm", RMSNorm(d, c.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                     const torch::Tensor& sin, const torch::Tensor& mask,
                                     KVCache* cache, int64_t layer, const torch::Tensor& write_index) {
  const int64_t B = x.size(0), T = x.size(1), D = config_.head_dim();
  const int64_t H = config_.num_attention_heads, KV = config_.num_key_value_heads;
  auto q = q_proj_(x).view({B, T, H, D});
  auto k = k_proj_(x).view({B, T, KV, D});
  if (config_.qk_norm) {  // Qwen3: RMSNorm over each head's query and key, before RoPE
    q = q_norm_(q);
    k = k_norm_(k);
  }
  auto v = v_proj_(x).view({B, T, KV, D}).transpose(1, 2);
  if (UseInferenceKernels(x)) {
    q = q.contiguous();
    k = k.contiguous();
    RopeInPlace(q, cos, sin);
    RopeInPlace(k, cos, sin);
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
  } else {
    q = q.transpose(1, 2);
    k = k.transpose(1, 2);
    auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
    q = q * c + RotateHalf(q) * s;
    k = k * c + RotateHalf(k) * s;
  }
  if (cache != nullptr && write_index.defined()) {
    if (UseInferenceKernels(x) && cache->keys[layer].is_contiguous() && cache->values[layer].is_contiguous() &&
        write_index.is_cpu() && write_index.scalar_type() == torch::kInt64) {
      // Each row's key and value, per head, copied to its own index (no indexing operator).
      auto kc = k.contiguous(), vc = v.contiguous();  // [B, KV, 1, D]
      auto wi = write_index.contiguous();
      const int64_t capacity = cache->capacity();
      const int64_t* index = wi.data_ptr<int64_t>();
      const float* new_keys = kc.data_ptr<float>();
      const float* new_values = vc.data_ptr<float>();
      float* keys = cache->keys[layer].data_ptr<float>();
      float* values = cache->values[layer].data_ptr<float>();
      for (int64_t b = 0; b < B; ++b) {
        TORCH_CHECK(index[b] >= 0 && index[b] < capacity, "KV cache write index ", index[b], " outside [0, ",
                    capacity, ")");
        for (int64_t j = 0; j < KV; ++j) {
          const int64_t to = ((b * KV + j) * capacity + index[b]) * D, from = (b * KV + j) * D;
          std::memcpy(keys + to, new_keys + from, D * sizeof(float));
          std::memcpy(values + to, new_values + from, D * sizeof(float));
        }
      }
    } else {
      using torch::indexing::Slice;
      auto rows = torch::arange(B, write_index.options());
      cache->keys[layer].index_put_({rows, Slice(), write_index}, k.squeeze(2));
      cache->values[layer].index_put_({rows, Slice(), write_index}, v.squeeze(2));
    }
    // Only the filled part of the cache: DecodeHidden's mask spans it.
    k = cache->keys[layer].narrow(2, 0, mask.size(-1));
    v = cache->values[layer].narrow(2, 0, mask.size(-1));
  } else if (cache != nullptr) {
    cache->keys[layer].narrow(2, cache->length, T).copy_(k);
    cache->values[layer].narrow(2, cache->length, T).copy_(v);
    k = cache->keys[layer].narrow(2, 0, cache->length + T);
    v = cache->values[layer].narrow(2, 0, cache->length + T);
  }
  if (cache != nullptr && write_index.defined() && !torch::GradMode::is_enabled() && q.is_cpu() &&
      q.scalar_type() == torch::kFloat32 && cache->keys[layer].is_contiguous()) {
    // A decoding step (one query per row): the CPU kernel, free of per-(row, head) matmul
    // dispatch and BLAS packing.
    auto qc = q.contiguous();
    auto m = mask.reshape({B, mask.size(-1)}).contiguous();
    auto out = torch::empty({B, H, D}, q.options());
    DecodeAttentionShape shape{B, H, KV, D, cache->capacity(), mask.size(-1)};
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    DecodePrefixes prefixes;
    const bool shared = !cache->prefix_of.empty();
    if (shared) {
      TORCH_CHECK(static_cast<int64_t>(cache->prefix_of.size()) == B &&
                      static_cast<int64_t>(cache->prefix_length.size()) == B,
                  "KV cache: prefix_of and prefix_length must have one entry per row");
      const auto& pk = cache->prefix_keys[layer];
      TORCH_CHECK(pk.is_contiguous() && cache->prefix_values[layer].is_contiguous() && pk.size(1) == KV &&
                      pk.size(3) == D,
                  "KV cache: prefix keys and values must be contiguous [NP, KV, capacity, D]");
      for (int64_t b = 0; b < B; ++b) {
        TORCH_CHECK(cache->prefix_of[b] < pk.size(0) && cache->prefix_length[b] <= pk.size(2),
                    "KV cache: row ", b, "'s prefix is outside the prefix store");
      }
      prefixes = DecodePrefixes{pk.data_ptr<float>(), cache->prefix_values[layer].data_ptr<float>(), pk.size(2),
                                cache->prefix_of.data(), cache->prefix_length.data()};
    }
    at::parallel_for(0, B * KV, 1, [&](int64_t begin, int64_t end) {
      DecodeAttention(shape, qc.data_ptr<float>(), cache->keys[layer].data_ptr<float>(),
                      cache->values[layer].data_ptr<float>(), m.data_ptr<bool>(), m.size(1), scale,
                      out.data_ptr<float>(), begin, end, shared ? &prefixes : nullptr);
    });
    return o_proj_(out.view({B, T, H * D}));
  }
  // The operator form reads every row's own entries only; the sampler shares prefixes only
  // where the kernel above runs (CPU float32, no gradient).
  TORCH_CHECK(cache == nullptr || cache->prefix_of.empty(),
              "KV cache: shared prefixes are read only by the CPU decoding kernel (float32, no gradient)");
  // Grouped-query attention without repeating keys and values: the G query heads that share
  // a key/value head are G x T rows of one matmul against it.
  const int64_t G = H / KV, S = k.size(2);
  auto scores = torch::matmul(q.reshape({B, KV, G * T, D}), k.transpose(-2, -1))
                    .mul_(1.0 / std::sqrt(static_cast<double>(D)))
                    .view({B, KV, G, T, S});
  scores.masked_fill_(mask.logical_not().unsqueeze(1), kMaskValue);
  auto out = torch::matmul(torch::softmax(scores, -1).view({B, KV, G * T, S}), v).view({B, H, T, D});
  return o_proj_(out.transpose(1, 2).reshape({B, T, H * D}));
}

MlpImpl::MlpImpl(const ModelConfig& c) {
  gate_proj_ = register_module("gate_proj", MakeProjection(c, "gate", c.hidden_size, c.intermediate_size, false));
  up_proj_ = register_module("up_proj", MakeProjection(c, "up", c.hidden_size, c.intermediate_size, false));
  down_proj_ = register_module("down_proj", MakeProjection(c, "down", c.intermediate_size, c.hidden_size, false));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  if (UseInferenceKernels(x)) {  // in place on the fresh gate projection
    auto gate = gate_proj_(x);
    return down_proj_(torch::silu_(gate).mul_(up_proj_(x)));
  }
  return down_proj_(torch::silu(gate_proj_(x)) * up_proj_(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c) {
  input_layernorm_ = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  self_attn_ = register_module("self_attn", Attention(c));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
  mlp_ = register_module("mlp", Mlp(c));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                        const torch::Tensor& sin, const torch::Tensor& mask,
                                        KVCache* cache, int64_t layer, const torch::Tensor& write_index) {
  auto h = x + self_attn_(input_layernorm_(x), cos, sin, mask, cache, layer, write_index);
  return h + mlp_(post_attention_layernorm_(h));
}

DecoderBodyImpl::DecoderBodyImpl(const ModelConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
}

CausalLmImpl::CausalLmImpl(const ModelConfig& c) : config_(c) {
  body_ = register_module("model", DecoderBody(c));
  if (!c.tie_word_embeddings) {
    lm_head_ = register_module("lm_head", MakeLinear(c.hidden_size, c.vocab_size, false));
  }
  if (c.value_head) score_ = register_module("score", MakeLinear(c.hidden_size, 1, false));
  const int64_t d = c.head_dim();
  auto inv_freq = 1.0 / torch::pow(torch::tensor(c.rope_theta, torch::kFloat64),
                                   torch::arange(0, d, 2, torch::kFloat64) / static_cast<double>(d));
  if (c.rope_type == "llama3") {
    // Llama 3.1's frequency-dependent scaling: long wavelengths slowed by `factor`, short
    // ones kept, the band between interpolated.
    const double old_len = static_cast<double>(c.rope_original_max_position_embeddings);
    const double low_wavelen = old_len / c.rope_low_freq_factor, high_wavelen = old_len / c.rope_high_freq_factor;
    auto wavelen = 2 * M_PI / inv_freq;
    auto scaled = torch::where(wavelen > low_wavelen, inv_freq / c.rope_factor, inv_freq);
    auto smooth = (old_len / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
    auto smoothed = (1 - smooth) * scaled / c.rope_factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv_freq = torch::where(medium, smoothed, scaled);
  }
  inv_freq_ = register_buffer("inv_freq", inv_freq.to(torch::kFloat32));
  if (c.num_virtual_tokens > 0) {
    prompt_embeddings_ = register_parameter("prompt_embeddings", torch::zeros({c.num_virtual_tokens, c.hidden_size}));
  }
  InitWeights(0);
}

void CausalLmImpl::InitWeights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    if (IsAdapterParameter(name)) continue;  // InitAdapters below, from its own generator
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      p.zero_();
    } else if (p.dim() == 1) {
      p.fill_(1.0);
    } else {
      p.normal_(0.0, 0.02, gen);
    }
  }
  InitAdapters(seed ^ 0x9E3779B97F4A7C15ull);
}

void CausalLmImpl::InitAdapters(uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    if (name.find(".lora_A.") != std::string::npos) {
      const double bound = 1.0 / std::sqrt(static_cast<double>(p.size(1)));
      p.uniform_(-bound, bound, gen);
    } else if (name.find(".lora_B.") != std::string::npos) {
      p.zero_();
    }
  }
}

void CausalLmImpl::QuantizeFrozen(bool double_quant) {
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* p = m->as<ProjectionImpl>(); p != nullptr) p->QuantizeWeight(double_quant);
  }
  if (config_.hidden_size % kNf4Block != 0) return;
  torch::Tensor& embed = body_->embed_tokens->weight;
  if (!embed_nf4_.defined() && !embed.requires_grad()) {
    embed_nf4_ = QuantizeNf4(embed, double_quant);
    embed.set_data(torch::empty({0}));
  }
  if (lm_head_ && !lm_head_nf4_.defined() && !lm_head_->weight.requires_grad()) {
    lm_head_nf4_ = QuantizeNf4(lm_head_->weight, double_quant);
    lm_head_->weight.set_data(torch::empty({0}));
  }
}

std::vector<std::pair<std::string, torch::Tensor>> CausalLmImpl::ExportedParameters() {
  std::map<std::string, const Nf4Tensor*> quantized;
  for (const auto& named : named_modules()) {
    if (auto* p = named.value()->as<ProjectionImpl>(); p != nullptr && p->nf4().defined()) {
      quantized[named.key() + ".weight"] = &p->nf4();
    }
  }
  if (embed_nf4_.defined()) quantized["model.embed_tokens.weight"] = &embed_nf4_;
  if (lm_head_nf4_.defined()) quantized["lm_head.weight"] = &lm_head_nf4_;
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters()) {
    auto it = quantized.find(item.key());
    if (it == quantized.end()) {
      out.emplace_back(item.key(), item.value());
    } else {
      torch::Tensor dense = DequantizeNf4(*it->second);
      dense.set_requires_grad(false);
      out.emplace_back(item.key(), dense);
    }
  }
  return out;
}

int64_t CausalLmImpl::FrozenResidentBytes() {
  int64_t bytes = embed_nf4_.ResidentBytes() + lm_head_nf4_.ResidentBytes();
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* p = m->as<ProjectionImpl>(); p != nullptr) bytes += p->nf4().ResidentBytes();
  }
  for (const auto& p : parameters()) {
    if (!p.requires_grad()) bytes += p.numel() * static_cast<int64_t>(p.element_size());
  }
  return bytes;
}

void CausalLmImpl::InitPromptEmbeddings(uint64_t seed) {
  if (!prompt_embeddings_.defined()) return;
  torch::NoGradGuard no_grad;
  auto gen = at::detail::createCPUGenerator(seed);
  auto ids = torch::randint(0, config_.vocab_size, {config_.num_virtual_tokens}, gen, torch::kInt64);
  auto rows = embed_nf4_.defined() ? Nf4Rows(embed_nf4_, ids) : body_->embed_tokens->weight.index_select(0, ids);
  prompt_embeddings_.copy_(rows);
}

void CausalLmImpl::SetAdaptersEnabled(bool enabled) {
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* p = m->as<ProjectionImpl>(); p != nullptr) p->set_adapter_enabled(enabled);
  }
}

namespace {

// One decoder layer under activation recomputation: forward keeps the layer's input (and
// the RNG state when LoRA dropout draws from it) instead of its activations; backward runs
// the layer again with gradients and returns those of the input and of `params` (the
// layer's trainable parameters, inputs here so that their gradients flow back).
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, DecoderLayerImpl* layer, int64_t index,
                               bool replay_rng, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin, const torch::Tensor& mask, torch::TensorList params) {
    ctx->save_for_backward({x});
    // The layer outlives the graph: both belong to one training step of the model.
    ctx->saved_data["layer"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(layer));
    ctx->saved_data["index"] = index;
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["mask"] = mask;
    ctx->saved_data["num_params"] = static_cast<int64_t>(params.size());
    if (replay_rng) {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      ctx->saved_data["rng"] = gen.get_state();
    }
    struct Mark {
      Mark() { in_checkpointed_forward = true; }
      ~Mark() { in_checkpointed_forward = false; }
    } mark;
    return layer->forward(x, cos, sin, mask, nullptr, index);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* layer = reinterpret_cast<DecoderLayerImpl*>(static_cast<intptr_t>(ctx->saved_data["layer"].toInt()));
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    std::vector<torch::Tensor> inputs{x};
    for (auto& p : layer->parameters()) {
      if (p.requires_grad()) inputs.push_back(p);
    }
    TORCH_CHECK(static_cast<int64_t>(inputs.size()) - 1 == ctx->saved_data["num_params"].toInt(),
                "checkpointed layer: its trainable parameters changed between forward and backward");
    torch::Tensor replayed_from;
    if (ctx->saved_data.count("rng") > 0) {  // the same dropout masks as the forward pass
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      replayed_from = gen.get_state();
      gen.set_state(ctx->saved_data["rng"].toTensor());
    }
    torch::Tensor y;
    {
      torch::AutoGradMode grad(true);
      y = layer->forward(x, ctx->saved_data["cos"].toTensor(), ctx->saved_data["sin"].toTensor(),
                         ctx->saved_data["mask"].toTensor(), nullptr, ctx->saved_data["index"].toInt());
    }
    if (replayed_from.defined()) {
      auto gen = at::detail::getDefaultCPUGenerator();
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(replayed_from);
    }
    auto grads = torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    // One entry per forward argument: layer, index, replay_rng, x, cos, sin, mask, params...
    torch::autograd::variable_list out{torch::Tensor(), torch::Tensor(), torch::Tensor(), grads[0],
                                       torch::Tensor(), torch::Tensor(), torch::Tensor()};
    out.insert(out.end(), grads.begin() + 1, grads.end());
    return out;
  }
};

}  // namespace

torch::Tensor CausalLmImpl::Hidden(const torch::Tensor& input_ids, const torch::Tensor& input_positions,
                                   const torch::Tensor& input_valid, KVCache* cache,
                                   const torch::Tensor& segment_ids) {
  TORCH_CHECK(!segment_ids.defined() || (cache == nullptr && !prompt_embeddings_.defined()),
              "packed rows (segment_ids) take no KV cache and no prompt tuning");
  auto h = embed_nf4_.defined() ? Nf4Rows(embed_nf4_, input_ids) : body_->embed_tokens(input_ids);
  torch::Tensor positions = input_positions, valid = input_valid;
  const int64_t n = prompt_embeddings_.defined() && (cache == nullptr || cache->length == 0) ? prompt_embeddings_.size(0) : 0;
  if (n > 0) {  // prompt tuning: the prompt embeddings first, everything else n positions on
    const int64_t B = input_ids.size(0);
    h = torch::cat({prompt_embeddings_.unsqueeze(0).expand({B, n, h.size(2)}), h}, 1);
    auto virtual_positions = torch::arange(n, input_positions.options()).unsqueeze(0).expand({B, n});
    positions = torch::cat({virtual_positions, input_positions + n}, 1);
    valid = torch::cat({torch::ones({B, n}, input_valid.options()), input_valid}, 1);
  }
  const int64_t T = h.size(1);
  const int64_t past = cache ? cache->length : 0;
  torch::Tensor key_valid;
  if (cache != nullptr) {
    TORCH_CHECK(past + T <= cache->capacity(), "KV cache overflow: ", past + T, " > ",
                cache->capacity());
    cache->key_valid.narrow(1, past, T).copy_(valid);
    key_valid = cache->key_valid.narrow(1, 0, past + T);
  } else {
    key_valid = valid;
  }
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(input_ids.device());
  auto q_pos = torch::arange(past, past + T, opts).unsqueeze(1);   // [T,1]
  auto k_pos = torch::arange(0, past + T, opts).unsqueeze(0);      // [1,S]
  auto mask = (k_pos <= q_pos).unsqueeze(0).unsqueeze(0) &
              key_valid.to(torch::kBool).unsqueeze(1).unsqueeze(1);  // [B,1,T,S]
  if (segment_ids.defined()) mask = mask & (segment_ids.unsqueeze(2) == segment_ids.unsqueeze(1)).unsqueeze(1);

  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq_;  // [B,T,D/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();

  const bool recompute = gradient_checkpointing_ && cache == nullptr && torch::GradMode::is_enabled();
  const bool replay_rng = recompute && config_.lora.dropout > 0 && is_training();
  for (size_t i = 0; i < body_->layers->size(); ++i) {
    auto* layer = body_->layers[i]->as<DecoderLayer>();
    if (recompute) {
      std::vector<torch::Tensor> params;
      for (auto& p : layer->parameters()) {
        if (p.requires_grad()) params.push_back(p);
      }
      h = CheckpointedLayer::apply(layer, static_cast<int64_t>(i), replay_rng, h, cos, sin, mask,
                                   torch::TensorList(params));
    } else {
      h = layer->forward(h, cos, sin, mask, cache, static_cast<int64_t>(i));
    }
  }
  if (cache != nullptr) cache->length += T;
  h = body_->norm(h);
  return n > 0 ? h.narrow(1, n, T - n) : h;
}

torch::Tensor CausalLmImpl::DecodeHidden(const torch::Tensor& tokens, const torch::Tensor& positions,
                                         const torch::Tensor& lengths, KVCache* cache) {
  const int64_t B = tokens.size(0);
  const int64_t filled = lengths.max().item<int64_t>() + 1;  // attention spans [0, filled)
  TORCH_CHECK(filled <= cache->capacity(), "KV cache overflow");
  torch::Tensor mask;  // [B,1,1,S]: row b attends to its valid entries at indices <= lengths[b]
  if (lengths.is_cpu() && lengths.scalar_type() == torch::kInt64 && cache->key_valid.is_cpu() &&
      cache->key_valid.is_contiguous()) {
    auto len = lengths.contiguous();
    const int64_t* l = len.data_ptr<int64_t>();
    bool* valid = cache->key_valid.data_ptr<bool>();
    const int64_t capacity = cache->capacity();
    mask = torch::empty({B, 1, 1, filled}, cache->key_valid.options());
    bool* m = mask.data_ptr<bool>();
    for (int64_t b = 0; b < B; ++b) {
      TORCH_CHECK(l[b] >= 0, "decode length ", l[b], " < 0");
      valid[b * capacity + l[b]] = true;
      for (int64_t s = 0; s < filled; ++s) m[b * filled + s] = s <= l[b] && valid[b * capacity + s];
    }
  } else {
    auto rows = torch::arange(B, lengths.options());
    cache->key_valid.index_put_({rows, lengths}, true);
    auto k_pos = torch::arange(filled, lengths.options()).unsqueeze(0);  // [1,S]
    mask = ((k_pos <= lengths.unsqueeze(1)) & cache->key_valid.narrow(1, 0, filled)).unsqueeze(1).unsqueeze(1);
  }
  auto freqs = positions.to(torch::kFloat32).view({B, 1, 1}) * inv_freq_;  // [B,1,D/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto h = embed_nf4_.defined() ? Nf4Rows(embed_nf4_, tokens.view({B, 1})) : body_->embed_tokens(tokens.view({B, 1}));
  for (size_t i = 0; i < body_->layers->size(); ++i) {
    h = body_->layers[i]->as<DecoderLayer>()->forward(h, cos, sin, mask, cache,
                                                      static_cast<int64_t>(i), lengths);
  }
  return body_->norm(h).squeeze(1);
}

int64_t CausalLmImpl::PackForInference(const CausalLmImpl* share_from) {
  std::map<const void*, PackedCopy> shared;
  if (share_from != nullptr) {
    for (const auto& m : share_from->modules(/*include_self=*/false)) {
      const auto* p = m->as<ProjectionImpl>();
      if (p != nullptr && p->packed().FreshFor(p->weight)) shared[p->packed().source] = p->packed();
    }
    const torch::Tensor& from_head =
        share_from->config_.tie_word_embeddings ? share_from->body_->embed_tokens->weight : share_from->lm_head_->weight;
    if (share_from->lm_head_packed_.FreshFor(from_head)) shared[from_head.data_ptr()] = share_from->lm_head_packed_;
  }
  int64_t bytes = 0;
  for (const auto& m : modules(/*include_self=*/false)) {
    auto* p = m->as<ProjectionImpl>();
    if (p == nullptr) continue;
    p->PackForInference(&shared);
    if (p->packed().packed != nullptr) bytes += p->packed().packed->bytes();
  }
  const torch::Tensor& head = config_.tie_word_embeddings ? body_->embed_tokens->weight : lm_head_->weight;
  if (embed_nf4_.defined() || lm_head_nf4_.defined() || !head.defined()) {
    lm_head_packed_ = PackedCopy{};
  } else {
    lm_head_packed_.Update(head, &shared);
  }
  if (lm_head_packed_.packed != nullptr) bytes += lm_head_packed_.packed->bytes();
  return bytes;
}

torch::Tensor CausalLmImpl::Logits(const torch::Tensor& hidden) {
  if (lm_head_packed_.packed != nullptr && UsePackedWeights(hidden)) {
    const torch::Tensor& head = config_.tie_word_embeddings ? body_->embed_tokens->weight : lm_head_->weight;
    if (lm_head_packed_.FreshFor(head)) return PackedLinear(hidden, *lm_head_packed_.packed, {});
  }
  if (config_.tie_word_embeddings) {
    if (embed_nf4_.defined()) return Nf4Linear(hidden, embed_nf4_);
    return torch::matmul(hidden, body_->embed_tokens->weight.t());
  }
  if (lm_head_nf4_.defined()) return Nf4Linear(hidden, lm_head_nf4_);
  return lm_head_(hidden);
}

torch::Tensor CausalLmImpl::Values(const torch::Tensor& hidden) {
  TORCH_CHECK(score_, "model has no value head");
  return score_(hidden).squeeze(-1);
}

KVCache CausalLmImpl::NewCache(int64_t batch, int64_t capacity) const {
  KVCache cache;
  auto opts = inv_freq_.options();
  for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
    cache.keys.push_back(torch::zeros({batch, config_.num_key_value_heads, capacity, config_.head_dim()}, opts));
    cache.values.push_back(torch::zeros_like(cache.keys.back()));
  }
  cache.key_valid = torch::zeros({batch, capacity}, opts.dtype(torch::kBool));
  return cache;
}

int64_t CausalLmImpl::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

torch::Tensor PositionsFromValid(const torch::Tensor& valid) {
  return (valid.to(torch::kInt64).cumsum(1) - 1).clamp_min(0);
}

torch::Tensor PositionsFromSegments(const torch::Tensor& segment_ids) {
  const int64_t T = segment_ids.size(1);
  auto index = torch::arange(T, segment_ids.options().dtype(torch::kInt64)).unsqueeze(0).expand_as(segment_ids);
  auto starts = torch::ones_like(segment_ids, torch::kBool);
  if (T > 1) starts.narrow(1, 1, T - 1).copy_(segment_ids.narrow(1, 1, T - 1) != segment_ids.narrow(1, 0, T - 1));
  auto segment_start = std::get<0>(torch::cummax(torch::where(starts, index, torch::zeros_like(index)), 1));
  return index - segment_start;
}

torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1);
}

}  // namespace grail::model
