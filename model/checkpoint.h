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

// Which parameters a blob carries (README, "PEFT"): a model with frozen parameters
// (requires_grad false: a LoRA base, freeze-tuning) sends its frozen part once and then only
// its trainable part each version. Both name the frozen part by the SHA-256 of its blob as
// written without this digest (kFrozenDigestMetadataKey); the part is kWeightsPartMetadataKey
// ("frozen" or "trainable"; absent: the whole model).
enum class WeightsPart { kWhole, kTrainable, kFrozen };
inline constexpr char kWeightsPartMetadataKey[] = "grail_weights_part";
inline constexpr char kFrozenDigestMetadataKey[] = "grail_frozen_digest";

// The digest naming the frozen part: the SHA-256 (hex) of its blob written without it.
absl::StatusOr<std::string> FrozenPartDigest(CausalLm& model, torch::ScalarType dtype = torch::kFloat32);
// ModelToSafetensors of kTrainable or kFrozen, with both metadata keys (`frozen_digest`
// from FrozenPartDigest; computed once by callers, as the frozen part does not change).
absl::StatusOr<std::string> ModelPartToSafetensors(CausalLm& model, WeightsPart part, const std::string& frozen_digest,
                                                   torch::ScalarType dtype = torch::kFloat32,
                                                   const std::map<std::string, std::string>& metadata = {});

// Metadata key under which a reward model's blob names its tokenizer (a directory under the
// reward scorer's --data_root holding tokenizer.json, or "char"; absent: "char").
inline constexpr char kTokenizerMetadataKey[] = "grail_tokenizer";

// Copies tensors into `model`'s parameters by name. Every parameter must be present with
// its exact shape; F32, F16, BF16 and F64 are converted to the parameter's dtype. Unexpected
// names are an error, except lm_head.weight on a model with tied embeddings.
absl::Status LoadParameters(const SafetensorsFile& file, CausalLm& model);
// Copies the file's tensors into the parameters of the same names (each must be one, with
// its exact shape); parameters the file lacks are left as they are.
absl::Status LoadSomeParameters(const SafetensorsFile& file, CausalLm& model);

// Builds a model from a blob written by ModelToSafetensors.
absl::StatusOr<CausalLm> ModelFromSafetensors(const SafetensorsFile& file);

// HF checkpoint directory: config.json + model.safetensors, each written atomically.
absl::Status SaveModelDir(CausalLm& model, const std::string& dir);
absl::StatusOr<CausalLm> LoadModelDir(const std::string& dir);

// The safetensors dtype name for a torch dtype, or "" if unsupported.
std::string SafetensorsDType(torch::ScalarType type);

}  // namespace grail::model

#endif  // GRAIL_MODEL_CHECKPOINT_H_
