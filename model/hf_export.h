#ifndef GRAIL_MODEL_HF_EXPORT_H_
#define GRAIL_MODEL_HF_EXPORT_H_

// Exports a model directory (a grail checkpoint, or any directory LoadModelDir reads) as a
// Hugging Face model directory: config.json with architectures and torch_dtype, the weights
// under their HF names in the asked dtype, sharded past a size threshold with
// model.safetensors.index.json, and tokenizer files copied alongside. Torch-free.

#include <cstdint>
#include <string>

#include <map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_config.h"

namespace grail::model {

struct HfExportOptions {
  std::string dtype = "float32";         // float32 or bfloat16 (round to nearest even)
  int64_t max_shard_bytes = int64_t{5} << 30;  // transformers' default of 5 GB
  std::string tokenizer_dir;             // copy tokenizer.json, tokenizer_config.json, ... from here
  // A checkpoint with LoRA adapters (model.peft): false writes the adapters alone in the
  // PEFT library's format; true merges them into their projections (W + s B A) and writes a
  // plain model directory.
  bool merge_adapters = false;
};

// `src` holds config.json and model.safetensors (or shards with their index); `out` is
// created (and must not exist). Errors name the file.
absl::Status ExportHfDir(const std::string& src, const std::string& out, const HfExportOptions& options);

// A PEFT LoRA adapter directory: adapter_config.json (peft_type LORA, r, lora_alpha,
// lora_dropout, use_rslora, target_modules as q_proj, ..., task_type CAUSAL_LM) and
// adapter_model.safetensors with the library's names
// (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight).
struct PeftAdapter {
  LoraConfig lora;
  // grail's names (model.layers.0.self_attn.q_proj.lora_A.weight) -> shape and float32 bytes.
  std::map<std::string, std::pair<std::vector<int64_t>, std::string>> tensors;
};
absl::StatusOr<PeftAdapter> ReadPeftAdapterDir(const std::string& dir);

}  // namespace grail::model

#endif  // GRAIL_MODEL_HF_EXPORT_H_
