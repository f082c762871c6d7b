#ifndef GRAIL_MODEL_TRANSFORMER_H_
#define GRAIL_MODEL_TRANSFORMER_H_

// LibTorch code: include only from torch targets (model/, actor/, reference/, learner/).

#include <torch/torch.h>

#include <map>
#include <memory>
#include <vector>

#include "model/model_config.h"
#include "model/nf4.h"
#include "model/packed_gemm.h"

namespace grail::model {

// Keys and values of every layer for a batch, preallocated to `capacity` positions.
// Not thread-safe; one cache per generation batch.
struct KVCache {
  std::vector<torch::Tensor> keys;    // per layer [B, num_kv_heads, capacity, head_dim]
  std::vector<torch::Tensor> values;  // same
  torch::Tensor key_valid;            // [B, capacity] bool: false on padding
  int64_t length = 0;                 // positions filled so far
  // Shared prompt prefixes, for decoding steps (the sampler's, so that the samples of one
  // prompt reference its keys and values instead of copying them): row b's positions
  // [0, prefix_length[b]) are prefix_keys/prefix_values[layer][prefix_of[b]], where
  // prefix_of[b] >= 0; its own entries there are not read. Empty: no row has one.
  std::vector<torch::Tensor> prefix_keys;    // per layer [NP, num_kv_heads, prefix capacity, head_dim]
  std::vector<torch::Tensor> prefix_values;  // same
  std::vector<int64_t> prefix_of;            // per row: its prefix, or -1
  std::vector<int64_t> prefix_length;        // per row
  int64_t capacity() const { return key_valid.size(1); }
};

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor weight_;
  double eps_;
};
TORCH_MODULE(RMSNorm);

// A weight's packed copy (model/packed_gemm.h) and the weight it was made from: it serves
// only while that tensor still has the same storage and has not been written in place since.
struct PackedCopy {
  std::shared_ptr<const PackedWeight> packed;
  const void* source = nullptr;
  int64_t source_version = -1;

  bool FreshFor(const torch::Tensor& weight) const;
  // Packs `weight` [n, k] (float32 CPU) unless this copy is fresh for it; false (and no copy)
  // for any other weight, or when the copy does not fit in memory.
  bool Refresh(const torch::Tensor& weight);
  // Refresh, except that a copy in `shared` (keyed by the storage it was made from) of this
  // very storage with the same shape is adopted instead of packing again.
  void Update(const torch::Tensor& weight, const std::map<const void*, PackedCopy>* shared);
};

// A projection y = x W^T (+ b), HF names "weight" and "bias", with an optional LoRA adapter
// applied unmerged: y += scale * (dropout(x) A^T) B^T, names "lora_A.weight" [r, in] and
// "lora_B.weight" [out, r] as the PEFT library writes them. Unmerged, the base weight keeps
// its bits (a merge and unmerge in floating point would not restore them), so one base can
// serve every adapter version; the adapter costs two rank-r matmuls.
class ProjectionImpl : public torch::nn::Module {
 public:
  // lora_r 0: no adapter.
  ProjectionImpl(int64_t in, int64_t out, bool bias, int64_t lora_r = 0, double lora_scale = 0,
                 double lora_dropout = 0);
  torch::Tensor forward(const torch::Tensor& x);

  bool has_adapter() const { return lora_a_.defined(); }
  // W + scale * B A (the weight with the adapter merged in); W without an adapter.
  torch::Tensor MergedWeight() const;
  // The base weight stored in NF4 from now on (model.quantize; a frozen weight only): the
  // "weight" parameter keeps its name with no storage, and forward() dequantises inside the
  // matmul (Nf4Linear).
  void QuantizeWeight(bool double_quant);
  const Nf4Tensor& nf4() const { return nf4_; }
  // The weight as float32 (dequantised when stored in NF4).
  torch::Tensor DenseWeight() const;
  // false: forward() is the base projection alone (e.g. reference log-probs).
  void set_adapter_enabled(bool enabled) { adapter_enabled_ = enabled; }
  // From now on, inference (no gradient recorded, float32 on the CPU) multiplies by a packed
  // copy of the base weight instead of through BLAS, which packs the weight on every call.
  // A fresh copy in `shared` (keyed by the data it was made from) of this very storage (a
  // frozen part two models share) is taken instead of packing again; from then on only
  // writes through this model's tensor are noticed, which suits frozen weights. The copy costs the weight's size once more; it stops
  // serving when the weight is written in place, until the next call. An NF4 weight is not
  // packed.
  void PackForInference(const std::map<const void*, PackedCopy>* shared = nullptr);
  const PackedCopy& packed() const { return packed_; }

  torch::Tensor weight, bias;

 private:
  torch::nn::Linear lora_a_module_{nullptr}, lora_b_module_{nullptr};
  torch::Tensor lora_a_, lora_b_;
  Nf4Tensor nf4_;
  PackedCopy packed_;
  double scale_ = 0;
  double dropout_ = 0;
  bool adapter_enabled_ = true;
};
TORCH_MODULE(Projection);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  // x [B,T,C]; cos/sin [B,T,head_dim]; mask [B,1,T,S] bool (true = may attend).
  // With a cache, writes this step's keys/values at positions [length, length+T); with
  // `write_index` ([B] int64, T == 1) row b writes at write_index[b] instead and attends
  // over the cache positions [0, S) that `mask` [B,1,1,S] spans (DecodeHidden: the filled
  // part), through the CPU decoding kernel when no gradient is recorded.
  // Grouped-query heads share their key/value head without copies of it.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache, int64_t layer,
                        const torch::Tensor& write_index = {});

 private:
  ModelConfig config_;
  Projection q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  RMSNorm q_norm_{nullptr}, k_norm_{nullptr};  // Qwen3 only
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  Projection gate_proj_{nullptr}, up_proj_{nullptr}, down_proj_{nullptr};
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& mask, KVCache* cache, int64_t layer,
                        const torch::Tensor& write_index = {});

 private:
  RMSNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  Attention self_attn_{nullptr};
  Mlp mlp_{nullptr};
};
TORCH_MODULE(DecoderLayer);

// The "model." part of an HF checkpoint: embeddings, layers, final norm.
class DecoderBodyImpl : public torch::nn::Module {
 public:
  explicit DecoderBodyImpl(const ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderBody);

// Llama/Qwen2-style causal LM with an optional scalar value head. Parameter names match HF
// (model.layers.0.self_attn.q_proj.weight, lm_head.weight, score.weight). Not thread-safe
// for concurrent training; concurrent inference under NoGradGuard is fine.
class CausalLmImpl : public torch::nn::Module {
 public:
  explicit CausalLmImpl(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }

  // Re-initialises every parameter deterministically from `seed` (normal(0, 0.02) for
  // matrices, ones for norms, zeros for biases). LoRA adapters are set as InitAdapters does;
  // the other parameters get the same values as in a model without adapters.
  void InitWeights(uint64_t seed);
  // A fresh adapter: every lora_A uniform in +-1/sqrt(in) from `seed` (PEFT's default
  // kaiming-uniform bound), every lora_B zero, so the model's outputs do not change.
  void InitAdapters(uint64_t seed);
  // Adapters on (default) or off: off, the model computes with its base weights alone.
  void SetAdaptersEnabled(bool enabled);
  // Prompt tuning: the prompt embeddings set to the token embeddings of n token ids drawn
  // from `seed` (Lester et al.'s initialisation from the vocabulary).
  void InitPromptEmbeddings(uint64_t seed);

  // QLoRA (model.quantize nf4): every frozen projection, and the frozen embeddings and
  // lm_head when the hidden size is whole NF4 blocks, stored in NF4 and dequantised on the
  // fly. Their parameters keep their names with no storage; ExportedParameters gives them
  // dequantised.
  void QuantizeFrozen(bool double_quant);
  // Every parameter by name, quantised ones dequantised (what checkpoints and weight sync
  // write), each with its requires_grad.
  std::vector<std::pair<std::string, torch::Tensor>> ExportedParameters();
  // Bytes the frozen parameters occupy (NF4 codes and scales for quantised ones).
  int64_t FrozenResidentBytes();
  // Inference through packed weights (ProjectionImpl::PackForInference) for every
  // projection and the output projection (lm_head, or the embeddings when tied). Packed
  // copies of `share_from`'s weights that this model shares are taken, not made again.
  // Call again after loading new weights (copies of changed weights are stale and unused
  // until then). Returns the bytes the packed copies hold.
  int64_t PackForInference(const CausalLmImpl* share_from = nullptr);

  // input_ids [B,T] int64; positions [B,T] int64; valid [B,T] bool (false on padding).
  // Without a cache, attends causally within the input. With a cache, appends to it and
  // attends to everything cached so far. Returns final hidden states [B,T,C].
  // Prompt tuning (config().num_virtual_tokens = n): the n prompt embeddings go ahead of
  // the input at positions 0..n-1 and every position moves up by n; the returned states are
  // the input's only. With a cache, only the first call (an empty cache) adds them, filling
  // n + T entries; later calls and DecodeHidden take positions that count them.
  // Packed rows (`segment_ids` [B,T] int64, no cache, no prompt tuning): several sequences
  // share a row, and a token attends only to the earlier tokens of its own segment; the
  // caller restarts `positions` at each segment (PositionsFromSegments).
  torch::Tensor Hidden(const torch::Tensor& input_ids, const torch::Tensor& positions,
                       const torch::Tensor& valid, KVCache* cache = nullptr,
                       const torch::Tensor& segment_ids = {});
  // One decoding step in which every row has its own cache length (continuous batching):
  // row b feeds tokens[b] at RoPE position positions[b], writes its key/value at cache index
  // lengths[b], and attends to the valid cache entries at indices <= lengths[b]. Marks
  // that entry valid. Does not change cache->length. Returns hidden states [B,C].
  torch::Tensor DecodeHidden(const torch::Tensor& tokens, const torch::Tensor& positions,
                             const torch::Tensor& lengths, KVCache* cache);
  torch::Tensor Logits(const torch::Tensor& hidden);  // [B,T,V]
  torch::Tensor Values(const torch::Tensor& hidden);  // [B,T]; REQUIRES config().value_head

  // A cache for `batch` rows and `capacity` positions, on this model's device and dtype.
  KVCache NewCache(int64_t batch, int64_t capacity) const;

  int64_t NumParameters() const;

  // Activation recomputation (gradient checkpointing): with it on, a forward pass that
  // records gradients without a cache keeps only each decoder layer's input, and the
  // backward pass runs the layer again to get its gradients; the gradients are the same
  // (LoRA dropout draws the same mask again). Costs one more forward pass of the layers;
  // saves their activations, most of a long sequence's memory.
  void SetGradientCheckpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

 private:
  ModelConfig config_;
  DecoderBody body_{nullptr};
  torch::nn::Linear lm_head_{nullptr};
  torch::nn::Linear score_{nullptr};
  torch::Tensor inv_freq_;
  torch::Tensor prompt_embeddings_;     // [n, C] with prompt tuning
  Nf4Tensor embed_nf4_, lm_head_nf4_;  // QuantizeFrozen
  PackedCopy lm_head_packed_;           // PackForInference
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(CausalLm);

// Positions for right- or left-padded rows: the index of each token among the valid ones.
torch::Tensor PositionsFromValid(const torch::Tensor& valid);

// Positions that restart at 0 where each segment of a packed row begins.
torch::Tensor PositionsFromSegments(const torch::Tensor& segment_ids);

// log p(targets) under logits: [B,T,V] x [B,T] -> [B,T].
torch::Tensor TokenLogProbs(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace grail::model

#endif  // GRAIL_MODEL_TRANSFORMER_H_
