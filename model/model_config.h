#ifndef GRAIL_MODEL_MODEL_CONFIG_H_
#define GRAIL_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::model {

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

  int64_t head_dim() const { return hidden_size / num_attention_heads; }

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
