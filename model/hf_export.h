#ifndef GRAIL_MODEL_HF_EXPORT_H_
#define GRAIL_MODEL_HF_EXPORT_H_

// Exports a model directory (a grail checkpoint, or any directory LoadModelDir reads) as a
// Hugging Face model directory: config.json with architectures and torch_dtype, the weights
// under their HF names in the asked dtype, sharded past a size threshold with
// model.safetensors.index.json, and tokenizer files copied alongside. Torch-free.

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace grail::model {

struct HfExportOptions {
  std::string dtype = "float32";         // float32 or bfloat16 (round to nearest even)
  int64_t max_shard_bytes = int64_t{5} << 30;  // transformers' default of 5 GB
  std::string tokenizer_dir;             // copy tokenizer.json, tokenizer_config.json, ... from here
};

// `src` holds config.json and model.safetensors (or shards with their index); `out` is
// created (and must not exist). Errors name the file.
absl::Status ExportHfDir(const std::string& src, const std::string& out, const HfExportOptions& options);

}  // namespace grail::model

#endif  // GRAIL_MODEL_HF_EXPORT_H_
