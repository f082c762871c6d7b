#ifndef GRAIL_MODEL_MODEL_CONFIG_H_
#define GRAIL_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::model {

// LoRA adapters on the decoder's projections (README, "PEFT"): y = x W^T + scale (x A^T) B^T,
// A [r, in] seeded, B [out, r] zero at the start, so a fresh adapter changes nothing.
struct LoraConfig {
  int64_t r = 0;  // 0: no adapters
  double alpha = 16;
  double dropout = 0;  // on the adapter's input, while training only
  bool use_rslora = false;
  // Projections with an adapter: any of q, k, v, o, gate, up, down.
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};

  bool enabled() const { return r > 0; }
  double scale() const;  // alpha / r, or alpha / sqrt(r) with use_rslora
  bool Targets(const std::string& projection) const;
};

// Architecture of a Llama/Qwen2-style decoder. Field names follow HF config.json.
struct ModelConfig {
  int64_t vocab_size = 64;
  int64_t hidden_size = 64;
  int64_t intermediate_size = 172;
  int64_t num_hidden_layers = 2;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 2;      // grouped-query attention when < num_attention_heads
  int64_t max_position_embeddings = 128;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool attention_bias = false;          // Qwen2 uses a bias on q/k/v
  bool tie_word_embeddings = false;
  bool value_head = false;              // scalar head ("score.weight") for critics and RMs
  // Hugging Face architecture: LlamaForCausalLM (model_type llama), Qwen2ForCausalLM (qwen2,
  // QKV bias), Qwen3ForCausalLM (qwen3: per-head RMSNorm of q and k, no QKV bias).
  std::string architecture = "LlamaForCausalLM";
  bool qk_norm = false;                 // Qwen3: q_norm / k_norm over each head
  int64_t head_dim_override = 0;        // config.json head_dim (0: hidden_size / heads)
  // rope_scaling: "default" (none) or "llama3" with its four parameters.
  std::string rope_type = "default";
  double rope_factor = 1.0, rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_max_position_embeddings = 8192;
  LoraConfig lora;  // grail's, kept in config.json as "grail_lora" while adapters are attached
  // Prompt tuning: trained embeddings ("prompt_embeddings" [n, hidden]) ahead of every input,
  // at positions 0..n-1 (real tokens start at n). grail's, "grail_num_virtual_tokens".
  int64_t num_virtual_tokens = 0;

  int64_t head_dim() const { return head_dim_override > 0 ? head_dim_override : hidden_size / num_attention_heads; }

  // INVALID_ARGUMENT naming the field when the sizes cannot form a model.
  absl::Status Validate() const;
};

// Fields left at 0 in the proto keep the defaults above.
ModelConfig ModelConfigFromProto(const grail::v1::ModelConfig& proto);
grail::v1::ModelConfig ModelConfigToProto(const ModelConfig& config);

// HF config.json (LlamaForCausalLM / Qwen2ForCausalLM keys). Unknown keys are ignored, as
// HF files carry many that do not change the architecture; missing required sizes are errors.
absl::StatusOr<ModelConfig> ParseHfConfigJson(const std::string& text);
std::string ToHfConfigJson(const ModelConfig& config);

}  // namespace grail::model

#endif  // GRAIL_MODEL_MODEL_CONFIG_H_
