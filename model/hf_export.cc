#include "model/hf_export.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace grail::model {

namespace {

namespace fs = std::filesystem;

absl::StatusOr<std::string> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// float32 -> bfloat16, rounding to nearest even (NaN stays a quiet NaN).
uint16_t ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float FromBf16(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The tensor's values as float32 bytes (F32 as is, BF16 widened).
absl::StatusOr<std::string> AsF32(const std::string& name, const SafetensorsTensor& t) {
  if (t.dtype == "F32") return std::string(t.data);
  if (t.dtype == "BF16") {
    std::string out(t.data.size() * 2, '\0');
    for (size_t i = 0; i < t.data.size() / 2; ++i) {
      uint16_t h;
      std::memcpy(&h, t.data.data() + 2 * i, 2);
      const float f = FromBf16(h);
      std::memcpy(out.data() + 4 * i, &f, 4);
    }
    return out;
  }
  return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has dtype ", t.dtype,
                                                 " (export converts F32 and BF16)"));
}

constexpr char kPeftPrefix[] = "base_model.model.";

std::string Bf16Bytes(const std::string& f32) {
  std::string bytes(f32.size() / 2, '\0');
  for (size_t i = 0; i < f32.size() / 4; ++i) {
    float f;
    std::memcpy(&f, f32.data() + 4 * i, 4);
    const uint16_t h = ToBf16(f);
    std::memcpy(bytes.data() + 2 * i, &h, 2);
  }
  return bytes;
}

absl::Status WritePeftAdapter(const ModelConfig& config,
                              const std::map<std::string, std::pair<std::vector<int64_t>, std::string>>& tensors,
                              const std::string& out, const std::string& dtype) {
  std::map<std::string, std::string> bytes;
  std::map<std::string, SafetensorsTensor> adapter;
  for (const auto& [name, st] : tensors) {
    if (name.find(".lora_A.") == std::string::npos && name.find(".lora_B.") == std::string::npos) continue;
    const std::string peft = kPeftPrefix + name;
    bytes[peft] = dtype == "bfloat16" ? Bf16Bytes(st.second) : st.second;
    adapter[peft] = {dtype == "bfloat16" ? "BF16" : "F32", st.first, bytes[peft]};
  }
  if (adapter.empty()) return absl::InvalidArgumentError("weights: grail_lora is set but no lora_A/lora_B tensor is");
  nlohmann::ordered_json cfg;
  cfg["peft_type"] = "LORA";
  cfg["task_type"] = "CAUSAL_LM";
  cfg["r"] = config.lora.r;
  cfg["lora_alpha"] = config.lora.alpha;
  cfg["lora_dropout"] = config.lora.dropout;
  cfg["use_rslora"] = config.lora.use_rslora;
  std::vector<std::string> targets;
  for (const auto& t : config.lora.targets) targets.push_back(t + "_proj");
  cfg["target_modules"] = targets;
  cfg["bias"] = "none";
  cfg["fan_in_fan_out"] = false;
  cfg["inference_mode"] = true;
  cfg["base_model_name_or_path"] = "";
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(out, ": cannot create: ", ec.message()));
  ASSIGN_OR_RETURN(std::string blob, SerializeSafetensors(adapter, {{"format", "pt"}}));
  RETURN_IF_ERROR(WriteFileAtomically(out + "/adapter_model.safetensors", blob));
  return WriteFileAtomically(out + "/adapter_config.json", cfg.dump(2));
}

// A prompt-tuned checkpoint as PEFT writes one: adapter_config.json (PROMPT_TUNING) and
// adapter_model.safetensors holding "prompt_embeddings". The base is not written: it is the
// model the run started from.
absl::Status WritePeftPromptTuning(const ModelConfig& config,
                                   const std::map<std::string, std::pair<std::vector<int64_t>, std::string>>& tensors,
                                   const std::string& out) {
  auto it = tensors.find("prompt_embeddings");
  if (it == tensors.end()) return absl::InvalidArgumentError("weights: grail_num_virtual_tokens set, no prompt_embeddings");
  nlohmann::ordered_json cfg;
  cfg["peft_type"] = "PROMPT_TUNING";
  cfg["task_type"] = "CAUSAL_LM";
  cfg["num_virtual_tokens"] = config.num_virtual_tokens;
  cfg["token_dim"] = config.hidden_size;
  cfg["num_transformer_submodules"] = 1;
  cfg["prompt_tuning_init"] = "RANDOM";
  cfg["inference_mode"] = true;
  cfg["base_model_name_or_path"] = "";
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(out, ": cannot create: ", ec.message()));
  std::map<std::string, SafetensorsTensor> part = {{"prompt_embeddings", {"F32", it->second.first, it->second.second}}};
  ASSIGN_OR_RETURN(std::string blob, SerializeSafetensors(part, {{"format", "pt"}}));
  RETURN_IF_ERROR(WriteFileAtomically(out + "/adapter_model.safetensors", blob));
  return WriteFileAtomically(out + "/adapter_config.json", cfg.dump(2));
}

}  // namespace

absl::StatusOr<PeftAdapter> ReadPeftAdapterDir(const std::string& dir) {
  ASSIGN_OR_RETURN(std::string text, ReadAll(dir + "/adapter_config.json"));
  const auto cfg = nlohmann::json::parse(text, nullptr, false);
  if (!cfg.is_object()) return absl::InvalidArgumentError(absl::StrCat(dir, "/adapter_config.json: not a JSON object"));
  if (cfg.value("peft_type", "") != "LORA") {
    return absl::InvalidArgumentError(absl::StrCat(dir, "/adapter_config.json: peft_type is not LORA"));
  }
  PeftAdapter a;
  if (!cfg.value("r", nlohmann::json()).is_number_integer() || !cfg.value("lora_alpha", nlohmann::json()).is_number() ||
      !cfg.value("target_modules", nlohmann::json()).is_array()) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, "/adapter_config.json: needs integer r, number lora_alpha and a target_modules list"));
  }
  a.lora.r = cfg["r"].get<int64_t>();
  a.lora.alpha = cfg["lora_alpha"].get<double>();
  a.lora.dropout = cfg.value("lora_dropout", 0.0);
  a.lora.use_rslora = cfg.value("use_rslora", false);
  a.lora.targets.clear();
  for (const auto& t : cfg["target_modules"]) {
    std::string name = t.is_string() ? t.get<std::string>() : "";
    if (name.size() > 5 && name.compare(name.size() - 5, 5, "_proj") == 0) name.resize(name.size() - 5);
    a.lora.targets.push_back(name);
  }
  ModelConfig check;
  check.lora = a.lora;
  absl::Status valid = check.Validate();
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(dir, "/adapter_config.json: ", valid.message()));
  ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Read(dir + "/adapter_model.safetensors"));
  for (const auto& [name, t] : f.tensors()) {
    if (name.rfind(kPeftPrefix, 0) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(dir, "/adapter_model.safetensors: ", name, " is not under ",
                                                     kPeftPrefix));
    }
    std::string grail = name.substr(std::strlen(kPeftPrefix));
    // PEFT names tensors of the adapter "default" in memory, not on disk; accept either.
    for (const char* which : {".lora_A.default.", ".lora_B.default."}) {
      const size_t at = grail.find(which);
      if (at != std::string::npos) grail.replace(at, std::strlen(which), std::string(which).substr(0, 8));
    }
    ASSIGN_OR_RETURN(std::string f32, AsF32(name, t));
    a.tensors[grail] = {t.shape, std::move(f32)};
  }
  return a;
}

absl::Status ExportHfDir(const std::string& src, const std::string& out, const HfExportOptions& o) {
  if (o.dtype != "float32" && o.dtype != "bfloat16") {
    return absl::InvalidArgumentError(absl::StrCat("dtype: ", o.dtype, " is not float32 or bfloat16"));
  }
  if (o.max_shard_bytes <= 0) return absl::InvalidArgumentError("max_shard_bytes: must be > 0");
  if (fs::exists(out)) return absl::AlreadyExistsError(absl::StrCat(out, ": already exists"));
  ASSIGN_OR_RETURN(std::string config_text, ReadAll(src + "/config.json"));
  ASSIGN_OR_RETURN(ModelConfig config, ParseHfConfigJson(config_text));
  // Every tensor of the source, from one file or its shards.
  std::vector<SafetensorsFile> files;
  if (fs::exists(src + "/model.safetensors.index.json")) {
    ASSIGN_OR_RETURN(std::string index_text, ReadAll(src + "/model.safetensors.index.json"));
    const auto index = nlohmann::json::parse(index_text, nullptr, false);
    if (!index.is_object() || !index.contains("weight_map")) {
      return absl::InvalidArgumentError(absl::StrCat(src, "/model.safetensors.index.json: no weight_map"));
    }
    std::map<std::string, bool> seen;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos) return absl::InvalidArgumentError("weight_map: shard is not a file name");
      if (seen[shard]) continue;
      seen[shard] = true;
      ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Read(src + "/" + shard));
      files.push_back(std::move(f));
    }
  } else {
    ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Read(src + "/model.safetensors"));
    files.push_back(std::move(f));
  }
  std::map<std::string, std::pair<std::vector<int64_t>, std::string>> tensors;  // name -> shape, f32 bytes
  for (const auto& f : files) {
    for (const auto& [name, t] : f.tensors()) {
      ASSIGN_OR_RETURN(std::string f32, AsF32(name, t));
      tensors[name] = {t.shape, std::move(f32)};
    }
  }
  if (config.num_virtual_tokens > 0) return WritePeftPromptTuning(config, tensors, out);
  if (config.lora.enabled() && !o.merge_adapters) return WritePeftAdapter(config, tensors, out, o.dtype);
  // LoRA adapters (a model.peft run's checkpoint) are merged into their projections, W + s B A,
  // and dropped: a Hugging Face model directory has no adapters.
  if (config.lora.enabled()) {
    const double scale = config.lora.scale();
    for (auto it = tensors.begin(); it != tensors.end();) {
      const std::string& name = it->first;
      const size_t at = name.find(".lora_A.weight");
      if (at == std::string::npos) {
        ++it;
        continue;
      }
      const std::string prefix = name.substr(0, at);
      auto b = tensors.find(prefix + ".lora_B.weight");
      auto w = tensors.find(prefix + ".weight");
      if (b == tensors.end() || w == tensors.end()) {
        return absl::InvalidArgumentError(absl::StrCat("weights: ", name, " has no lora_B or base weight beside it"));
      }
      const auto& a_shape = it->second.first;
      const auto& b_shape = b->second.first;
      const auto& w_shape = w->second.first;
      if (a_shape.size() != 2 || b_shape.size() != 2 || w_shape.size() != 2 || b_shape[1] != a_shape[0] ||
          w_shape[0] != b_shape[0] || w_shape[1] != a_shape[1]) {
        return absl::InvalidArgumentError(absl::StrCat("weights: ", prefix, ": adapter shapes do not match the weight"));
      }
      const int64_t out_dim = w_shape[0], in_dim = w_shape[1], r = a_shape[0];
      auto at_f = [](const std::string& bytes, int64_t i) {
        float f;
        std::memcpy(&f, bytes.data() + 4 * i, 4);
        return f;
      };
      std::string& wb = w->second.second;
      for (int64_t o = 0; o < out_dim; ++o) {
        for (int64_t i = 0; i < in_dim; ++i) {
          double delta = 0;
          for (int64_t k = 0; k < r; ++k) delta += at_f(b->second.second, o * r + k) * at_f(it->second.second, k * in_dim + i);
          float merged = at_f(wb, o * in_dim + i) + static_cast<float>(scale * delta);
          std::memcpy(wb.data() + 4 * (o * in_dim + i), &merged, 4);
        }
      }
      tensors.erase(b);
      it = tensors.erase(it);
    }
    config.lora = LoraConfig{};
  }
  // Converted bytes, then greedy shards in name order.
  const bool bf16 = o.dtype == "bfloat16";
  std::map<std::string, std::string> converted;
  int64_t total = 0;
  for (auto& [name, st] : tensors) {
    std::string bytes;
    if (bf16) {
      bytes.resize(st.second.size() / 2);
      for (size_t i = 0; i < st.second.size() / 4; ++i) {
        float f;
        std::memcpy(&f, st.second.data() + 4 * i, 4);
        const uint16_t h = ToBf16(f);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      }
    } else {
      bytes = std::move(st.second);
    }
    total += static_cast<int64_t>(bytes.size());
    converted[name] = std::move(bytes);
  }
  std::vector<std::vector<std::string>> shards(1);
  int64_t in_shard = 0;
  for (const auto& [name, bytes] : converted) {
    if (in_shard > 0 && in_shard + static_cast<int64_t>(bytes.size()) > o.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(name);
    in_shard += static_cast<int64_t>(bytes.size());
  }
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(out, ": cannot create: ", ec.message()));
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1 ? "model.safetensors"
                                                : absl::StrFormat("model-%05d-of-%05d.safetensors", s + 1, shards.size());
    std::map<std::string, SafetensorsTensor> part;
    for (const auto& name : shards[s]) {
      part[name] = {bf16 ? "BF16" : "F32", tensors[name].first, converted[name]};
      weight_map[name] = file;
    }
    ASSIGN_OR_RETURN(std::string blob, SerializeSafetensors(part, {{"format", "pt"}}));
    RETURN_IF_ERROR(WriteFileAtomically(out + "/" + file, blob));
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total}};
    index["weight_map"] = weight_map;
    RETURN_IF_ERROR(WriteFileAtomically(out + "/model.safetensors.index.json", index.dump(2)));
  }
  // config.json as grail writes it, with the exported dtype; unknown keys of the source's
  // config (e.g. bos_token_id) are kept.
  auto cfg = nlohmann::ordered_json::parse(ToHfConfigJson(config));
  auto src_cfg = nlohmann::ordered_json::parse(config_text, nullptr, false);
  if (src_cfg.is_object()) {
    for (auto it = src_cfg.begin(); it != src_cfg.end(); ++it) {
      if (!cfg.contains(it.key())) cfg[it.key()] = it.value();
    }
  }
  cfg["torch_dtype"] = o.dtype;
  cfg.erase("grail_lora");  // merged above
  cfg.erase("grail_value_head");
  if (config.value_head) cfg["grail_value_head"] = true;
  RETURN_IF_ERROR(WriteFileAtomically(out + "/config.json", cfg.dump(2)));
  const std::string tok_dir = o.tokenizer_dir.empty() ? src : o.tokenizer_dir;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "generation_config.json", "vocab.json", "merges.txt"}) {
    const std::string from = tok_dir + "/" + name;
    if (!fs::exists(from)) continue;
    ASSIGN_OR_RETURN(std::string bytes, ReadAll(from));
    RETURN_IF_ERROR(WriteFileAtomically(out + "/" + name, bytes));
  }
  return absl::OkStatus();
}

}  // namespace grail::model
