#ifndef GRAIL_MODEL_CHECKPOINT_H_
#define GRAIL_MODEL_CHECKPOINT_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace grail::model {

// Metadata key under which a weights blob carries its HF config.json text.
inline constexpr char kConfigMetadataKey[] = "grail_config_json";

// Serializes every parameter under its HF name (float32 stays float32, bit for bit) and
// the model config as metadata, so that the blob alone rebuilds the model. `dtype`
// kBFloat16 rounds each parameter to bfloat16 (to nearest even) on the way out. `metadata`
// adds entries to the header's __metadata__ (e.g. a reward model's kTokenizerMetadataKey).
absl::StatusOr<std::string> ModelToSafetensors(CausalLm& model, torch::ScalarType dtype = torch::kFloat32,
                                               const std::map<std::string, std::string>& metadata = {});

// Metadata key under which a reward model's blob names its tokenizer (a directory under the
// reward scorer's --data_root holding tokenizer.json, or "char"; absent: "char").
inline constexpr char kTokenizerMetadataKey[] = "grail_tokenizer";

// Copies tensors into `model`'s parameters by name. Every parameter must be present with
// its exact shape; F32, F16, BF16 and F64 are converted to the parameter's dtype. Unexpected
// names are an error, except lm_head.weight on a model with tied embeddings.
absl::Status LoadParameters(const SafetensorsFile& file, CausalLm& model);

// Builds a model from a blob written by ModelToSafetensors.
absl::StatusOr<CausalLm> ModelFromSafetensors(const SafetensorsFile& file);

// HF checkpoint directory: config.json + model.safetensors, each written atomically.
absl::Status SaveModelDir(CausalLm& model, const std::string& dir);
absl::StatusOr<CausalLm> LoadModelDir(const std::string& dir);

// The safetensors dtype name for a torch dtype, or "" if unsupported.
std::string SafetensorsDType(torch::ScalarType type);

}  // namespace grail::model

#endif  // GRAIL_MODEL_CHECKPOINT_H_
