#include "model/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/weights_stream.h"

namespace grail::model {
namespace {

absl::StatusOr<torch::ScalarType> TorchDType(const std::string& st) {
  if (st == "F32") return torch::kFloat32;
  if (st == "F16") return torch::kFloat16;
  if (st == "BF16") return torch::kBFloat16;
  if (st == "F64") return torch::kFloat64;
  if (st == "I64") return torch::kInt64;
  if (st == "I32") return torch::kInt32;
  if (st == "U8") return torch::kUInt8;
  if (st == "BOOL") return torch::kBool;
  return absl::InvalidArgumentError(absl::StrCat("unsupported safetensors dtype ", st));
}

}  // namespace

std::string SafetensorsDType(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat32: return "F32";
    case torch::kFloat16: return "F16";
    case torch::kBFloat16: return "BF16";
    case torch::kFloat64: return "F64";
    case torch::kInt64: return "I64";
    case torch::kInt32: return "I32";
    case torch::kUInt8: return "U8";
    case torch::kBool: return "BOOL";
    default: return "";
  }
}

namespace {

absl::StatusOr<std::string> Serialize(CausalLm& model, WeightsPart part, torch::ScalarType dtype,
                                      const std::map<std::string, std::string>& metadata) {
  std::map<std::string, SafetensorsTensor> tensors;
  std::vector<torch::Tensor> keep;  // contiguous CPU copies the views point into
  // A trainable parameter is never stored in NF4: the trainable part skips dequantising the
  // (quantised) frozen base, which it would not send anyway.
  std::vector<std::pair<std::string, torch::Tensor>> params;
  if (part == WeightsPart::kTrainable) {
    for (const auto& item : model->named_parameters()) {
      if (item.value().requires_grad()) params.emplace_back(item.key(), item.value());
    }
  } else {
    params = model->ExportedParameters();
  }
  for (const auto& [name, value] : params) {
    if (part == WeightsPart::kTrainable && !value.requires_grad()) continue;
    if (part == WeightsPart::kFrozen && value.requires_grad()) continue;
    torch::Tensor t = value.detach().to(torch::kCPU).to(dtype).contiguous();
    keep.push_back(t);
    SafetensorsTensor st;
    st.dtype = SafetensorsDType(t.scalar_type());
    if (st.dtype.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": unsupported dtype"));
    st.shape = t.sizes().vec();
    st.data = absl::string_view(static_cast<const char*>(t.data_ptr()), t.nbytes());
    tensors.emplace(name, st);
  }
  std::map<std::string, std::string> meta = metadata;
  meta[kConfigMetadataKey] = ToHfConfigJson(model->config());
  meta["format"] = "pt";
  return SerializeSafetensors(tensors, meta);
}

}  // namespace

absl::StatusOr<std::string> ModelToSafetensors(CausalLm& model, torch::ScalarType dtype,
                                               const std::map<std::string, std::string>& metadata) {
  return Serialize(model, WeightsPart::kWhole, dtype, metadata);
}

absl::StatusOr<std::string> FrozenPartDigest(CausalLm& model, torch::ScalarType dtype) {
  ASSIGN_OR_RETURN(std::string frozen, Serialize(model, WeightsPart::kFrozen, dtype, {}));
  return Sha256Hex(frozen);
}

absl::StatusOr<std::string> ModelPartToSafetensors(CausalLm& model, WeightsPart part, const std::string& frozen_digest,
                                                   torch::ScalarType dtype,
                                                   const std::map<std::string, std::string>& metadata) {
  if (part == WeightsPart::kWhole) return absl::InvalidArgumentError("weights: kWhole is ModelToSafetensors");
  std::map<std::string, std::string> meta = metadata;
  meta[kFrozenDigestMetadataKey] = frozen_digest;
  meta[kWeightsPartMetadataKey] = part == WeightsPart::kFrozen ? "frozen" : "trainable";
  return Serialize(model, part, dtype, meta);
}

namespace {

// Copies tensors (by name, from one file or the shards of a checkpoint) into the model.
absl::Status LoadNamedTensors(const std::map<std::string, const SafetensorsTensor*>& tensors, CausalLm& model) {
  torch::NoGradGuard no_grad;
  std::set<std::string> seen;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: missing tensor ", name));
    }
    const SafetensorsTensor& st = *it->second;
    torch::Tensor& p = item.value();
    if (st.shape != p.sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has shape [",
                                                     absl::StrJoin(st.shape, ","), "], model wants [",
                                                     absl::StrJoin(p.sizes(), ","), "]"));
    }
    ASSIGN_OR_RETURN(torch::ScalarType type, TorchDType(st.dtype));
    if (!c10::isFloatingType(type)) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has dtype ", st.dtype));
    }
    // from_blob does not copy; the copy_ below does, converting dtype if needed.
    auto src = torch::from_blob(const_cast<char*>(st.data.data()), st.shape,
                                torch::TensorOptions().dtype(type));
    p.copy_(src);
    seen.insert(name);
  }
  for (const auto& [name, st] : tensors) {
    if (seen.count(name)) continue;
    if (name == "lm_head.weight" && model->config().tie_word_embeddings) continue;
    return absl::InvalidArgumentError(absl::StrCat("weights: unexpected tensor ", name));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status LoadParameters(const SafetensorsFile& file, CausalLm& model) {
  std::map<std::string, const SafetensorsTensor*> tensors;
  for (const auto& [name, t] : file.tensors()) tensors[name] = &t;
  return LoadNamedTensors(tensors, model);
}

absl::Status LoadSomeParameters(const SafetensorsFile& file, CausalLm& model) {
  torch::NoGradGuard no_grad;
  auto params = model->named_parameters();
  for (const auto& [name, st] : file.tensors()) {
    torch::Tensor* p = params.find(name);
    if (p == nullptr) return absl::InvalidArgumentError(absl::StrCat("weights: unexpected tensor ", name));
    if (st.shape != p->sizes().vec()) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has shape [", absl::StrJoin(st.shape, ","),
                                                     "], model wants [", absl::StrJoin(p->sizes(), ","), "]"));
    }
    ASSIGN_OR_RETURN(torch::ScalarType type, TorchDType(st.dtype));
    if (!c10::isFloatingType(type)) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has dtype ", st.dtype));
    }
    p->copy_(torch::from_blob(const_cast<char*>(st.data.data()), st.shape, torch::TensorOptions().dtype(type)));
  }
  return absl::OkStatus();
}

absl::StatusOr<CausalLm> ModelFromSafetensors(const SafetensorsFile& file) {
  auto it = file.metadata().find(kConfigMetadataKey);
  if (it == file.metadata().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights: metadata has no ", kConfigMetadataKey));
  }
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfigJson(it->second));
  try {
    CausalLm model(config);
    RETURN_IF_ERROR(LoadParameters(file, model));
    return model;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("weights: ", e.what_without_backtrace()));
  }
}

absl::Status SaveModelDir(CausalLm& model, const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("cannot create directory ", dir));
  }
  ASSIGN_OR_RETURN(std::string blob, ModelToSafetensors(model));
  RETURN_IF_ERROR(WriteFileAtomically(dir + "/model.safetensors", blob));
  return WriteFileAtomically(dir + "/config.json", ToHfConfigJson(model->config()));
}

absl::StatusOr<CausalLm> LoadModelDir(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string config_text, ReadFileToString(dir + "/config.json"));
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfigJson(config_text));
  // One model.safetensors, or shards listed by model.safetensors.index.json's weight_map.
  std::vector<SafetensorsFile> files;
  std::map<std::string, const SafetensorsTensor*> tensors;
  const std::string index_path = dir + "/model.safetensors.index.json";
  if (access(index_path.c_str(), F_OK) == 0) {
    ASSIGN_OR_RETURN(std::string index_text, ReadFileToString(index_path));
    const nlohmann::json index = nlohmann::json::parse(index_text, nullptr, /*allow_exceptions=*/false);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      return absl::InvalidArgumentError("model.safetensors.index.json: no weight_map");
    }
    std::map<std::string, size_t> shard_of;  // file name -> index in `files`
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) return absl::InvalidArgumentError("model.safetensors.index.json: bad weight_map entry");
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard.find("..") != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat("model.safetensors.index.json: shard name ", shard, " is not a file name"));
      }
      if (!shard_of.count(shard)) {
        ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Read(dir + "/" + shard));
        shard_of[shard] = files.size();
        files.push_back(std::move(f));
      }
    }
    for (const auto& f : files) {
      for (const auto& [name, t] : f.tensors()) {
        if (!tensors.emplace(name, &t).second) {
          return absl::InvalidArgumentError(absl::StrCat("weights: tensor ", name, " is in more than one shard"));
        }
      }
    }
  } else {
    ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Read(dir + "/model.safetensors"));
    files.push_back(std::move(file));
    for (const auto& [name, t] : files[0].tensors()) tensors[name] = &t;
  }
  try {
    CausalLm model(config);
    RETURN_IF_ERROR(LoadNamedTensors(tensors, model));
    return model;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(dir, ": ", e.what_without_backtrace()));
  }
}

}  // namespace grail::model
