#include "model/model_config.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace grail::model {

absl::Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int64_t v) -> absl::Status {
    if (v <= 0) return absl::InvalidArgumentError(absl::StrCat(name, ": must be > 0, got ", v));
    return absl::OkStatus();
  };
  for (auto [name, v] : {std::pair<const char*, int64_t>{"vocab_size", vocab_size},
                         {"hidden_size", hidden_size},
                         {"intermediate_size", intermediate_size},
                         {"num_hidden_layers", num_hidden_layers},
                         {"num_attention_heads", num_attention_heads},
                         {"num_key_value_heads", num_key_value_heads},
                         {"max_position_embeddings", max_position_embeddings}}) {
    absl::Status s = positive(name, v);
    if (!s.ok()) return s;
  }
  if (head_dim_override <= 0 && hidden_size % num_attention_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("hidden_size: ", hidden_size,
                                                   " is not divisible by num_attention_heads ",
                                                   num_attention_heads));
  }
  if (head_dim() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size: head dimension ", head_dim(), " must be even for RoPE"));
  }
  if (num_attention_heads % num_key_value_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("num_key_value_heads: ", num_key_value_heads,
                                                   " does not divide num_attention_heads ",
                                                   num_attention_heads));
  }
  if (!(rope_theta > 0)) return absl::InvalidArgumentError("rope_theta: must be > 0");
  if (architecture != "LlamaForCausalLM" && architecture != "Qwen2ForCausalLM" && architecture != "Qwen3ForCausalLM") {
    return absl::InvalidArgumentError(absl::StrCat("architecture: ", architecture,
                                                   " is not LlamaForCausalLM, Qwen2ForCausalLM or Qwen3ForCausalLM"));
  }
  if (head_dim_override < 0 || head_dim_override % 2 != 0) {
    return absl::InvalidArgumentError("head_dim: must be a positive even number (or 0)");
  }
  if (!(rms_norm_eps > 0)) return absl::InvalidArgumentError("rms_norm_eps: must be > 0");
  if (lora.r < 0 || lora.r > 4096) return absl::InvalidArgumentError("lora.r: must be in [0, 4096]");
  if (num_virtual_tokens < 0 || num_virtual_tokens > 1024) {
    return absl::InvalidArgumentError("num_virtual_tokens: must be in [0, 1024]");
  }
  if (lora.enabled()) {
    if (!(lora.alpha > 0) || !std::isfinite(lora.alpha)) return absl::InvalidArgumentError("lora.alpha: must be > 0");
    if (!(lora.dropout >= 0 && lora.dropout < 1)) return absl::InvalidArgumentError("lora.dropout: must be in [0, 1)");
    if (lora.targets.empty()) return absl::InvalidArgumentError("lora.target_modules: names no projection");
    for (const auto& t : lora.targets) {
      if (t != "q" && t != "k" && t != "v" && t != "o" && t != "gate" && t != "up" && t != "down") {
        return absl::InvalidArgumentError(
            absl::StrCat("lora.target_modules: '", t.substr(0, 64), "' is not one of q, k, v, o, gate, up, down"));
      }
    }
  }
  return absl::OkStatus();
}

double LoraConfig::scale() const {
  if (r <= 0) return 0;
  return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool LoraConfig::Targets(const std::string& projection) const {
  return r > 0 && std::find(targets.begin(), targets.end(), projection) != targets.end();
}

ModelConfig ModelConfigFromProto(const grail::v1::ModelConfig& p) {
  ModelConfig c;
  if (p.vocab_size()) c.vocab_size = p.vocab_size();
  if (p.hidden_size()) c.hidden_size = p.hidden_size();
  if (p.intermediate_size()) c.intermediate_size = p.intermediate_size();
  if (p.num_hidden_layers()) c.num_hidden_layers = p.num_hidden_layers();
  if (p.num_attention_heads()) c.num_attention_heads = p.num_attention_heads();
  c.num_key_value_heads = p.num_key_value_heads() ? p.num_key_value_heads() : c.num_attention_heads;
  if (p.max_position_embeddings()) c.max_position_embeddings = p.max_position_embeddings();
  if (p.rope_theta()) c.rope_theta = p.rope_theta();
  if (p.rms_norm_eps()) c.rms_norm_eps = p.rms_norm_eps();
  if (!p.architecture().empty()) c.architecture = p.architecture();
  c.qk_norm = c.architecture == "Qwen3ForCausalLM";
  c.attention_bias = p.attention_bias() || c.architecture == "Qwen2ForCausalLM";
  c.tie_word_embeddings = p.tie_word_embeddings();
  c.head_dim_override = p.head_dim();
  return c;
}

grail::v1::ModelConfig ModelConfigToProto(const ModelConfig& c) {
  grail::v1::ModelConfig p;
  p.set_vocab_size(c.vocab_size);
  p.set_hidden_size(c.hidden_size);
  p.set_intermediate_size(c.intermediate_size);
  p.set_num_hidden_layers(c.num_hidden_layers);
  p.set_num_attention_heads(c.num_attention_heads);
  p.set_num_key_value_heads(c.num_key_value_heads);
  p.set_max_position_embeddings(c.max_position_embeddings);
  p.set_rope_theta(c.rope_theta);
  p.set_rms_norm_eps(c.rms_norm_eps);
  p.set_attention_bias(c.attention_bias);
  p.set_tie_word_embeddings(c.tie_word_embeddings);
  p.set_architecture(c.architecture);
  p.set_head_dim(static_cast<int32_t>(c.head_dim_override));
  return p;
}

absl::StatusOr<ModelConfig> ParseHfConfigJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError("config.json: not a JSON object");
  }
  ModelConfig c;
  auto get_int = [&](const char* key, int64_t* out, bool required) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      return required ? absl::InvalidArgumentError(absl::StrCat("config.json: missing ", key))
                      : absl::OkStatus();
    }
    if (!it->is_number_integer()) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " must be an integer"));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  auto get_num = [&](const char* key, double* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number()) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " must be a number"));
    }
    *out = it->get<double>();
    return absl::OkStatus();
  };
  auto get_bool = [&](const char* key, bool* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat("config.json: ", key, " must be a boolean"));
    }
    *out = it->get<bool>();
    return absl::OkStatus();
  };
  absl::Status s;
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"vocab_size", &c.vocab_size},
                          {"hidden_size", &c.hidden_size},
                          {"intermediate_size", &c.intermediate_size},
                          {"num_hidden_layers", &c.num_hidden_layers},
                          {"num_attention_heads", &c.num_attention_heads}}) {
    if (!(s = get_int(key, out, true)).ok()) return s;
  }
  c.num_key_value_heads = c.num_attention_heads;
  if (!(s = get_int("num_key_value_heads", &c.num_key_value_heads, false)).ok()) return s;
  if (!(s = get_int("max_position_embeddings", &c.max_position_embeddings, false)).ok()) return s;
  if (!(s = get_num("rope_theta", &c.rope_theta)).ok()) return s;
  if (!(s = get_num("rms_norm_eps", &c.rms_norm_eps)).ok()) return s;
  // The architecture, by name; anything else is refused rather than loaded wrongly.
  std::string arch = j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
                             j["architectures"][0].is_string()
                         ? j["architectures"][0].get<std::string>()
                         : "";
  const std::string model_type = j.value("model_type", "llama");
  if (arch.empty()) {
    arch = model_type == "qwen2" ? "Qwen2ForCausalLM" : model_type == "qwen3" ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
  }
  if (arch != "LlamaForCausalLM" && arch != "Qwen2ForCausalLM" && arch != "Qwen3ForCausalLM") {
    return absl::InvalidArgumentError(absl::StrCat(
        "config.json: architecture ", arch, " is not supported (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"));
  }
  c.architecture = arch;
  c.qk_norm = arch == "Qwen3ForCausalLM";
  if (!(s = get_int("head_dim", &c.head_dim_override, false)).ok()) return s;
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const auto& rs = j["rope_scaling"];
    if (!rs.is_object()) return absl::InvalidArgumentError("config.json: rope_scaling must be an object");
    const std::string type = rs.value("rope_type", rs.value("type", "default"));
    if (type != "llama3" && type != "default") {
      return absl::InvalidArgumentError(absl::StrCat("config.json: rope_scaling type ", type,
                                                     " is not supported (llama3)"));
    }
    c.rope_type = type;
    if (type == "llama3") {
      c.rope_factor = rs.value("factor", 8.0);
      c.rope_low_freq_factor = rs.value("low_freq_factor", 1.0);
      c.rope_high_freq_factor = rs.value("high_freq_factor", 4.0);
      c.rope_original_max_position_embeddings = rs.value("original_max_position_embeddings", int64_t{8192});
      if (!(c.rope_factor > 0) || !(c.rope_high_freq_factor > c.rope_low_freq_factor) ||
          c.rope_original_max_position_embeddings <= 0) {
        return absl::InvalidArgumentError("config.json: rope_scaling (llama3) parameters are out of range");
      }
    }
  }
  // Qwen2 always has q/k/v biases; Llama and Qwen3 say so with attention_bias.
  c.attention_bias = arch == "Qwen2ForCausalLM";
  if (!(s = get_bool("attention_bias", &c.attention_bias)).ok()) return s;
  if (!(s = get_bool("tie_word_embeddings", &c.tie_word_embeddings)).ok()) return s;
  if (!(s = get_bool("grail_value_head", &c.value_head)).ok()) return s;
  if (!(s = get_int("grail_num_virtual_tokens", &c.num_virtual_tokens, false)).ok()) return s;
  if (j.contains("grail_lora") && !j["grail_lora"].is_null()) {
    const auto& l = j["grail_lora"];
    if (!l.is_object() || !l.value("r", nlohmann::json()).is_number_integer() ||
        !l.value("alpha", nlohmann::json()).is_number() || !l.value("targets", nlohmann::json()).is_array()) {
      return absl::InvalidArgumentError("config.json: grail_lora needs integer r, number alpha and targets");
    }
    c.lora.r = l["r"].get<int64_t>();
    c.lora.alpha = l["alpha"].get<double>();
    c.lora.dropout = l.value("dropout", 0.0);
    c.lora.use_rslora = l.value("use_rslora", false);
    c.lora.targets.clear();
    for (const auto& t : l["targets"]) {
      if (!t.is_string()) return absl::InvalidArgumentError("config.json: grail_lora.targets must be strings");
      c.lora.targets.push_back(t.get<std::string>());
    }
  }
  if (!(s = c.Validate()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", s.message()));
  }
  return c;
}

std::string ToHfConfigJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {c.architecture};
  j["model_type"] = c.architecture == "Qwen3ForCausalLM" ? "qwen3" : c.architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  if (c.head_dim_override > 0) j["head_dim"] = c.head_dim_override;
  if (c.rope_type == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", c.rope_factor},
                         {"low_freq_factor", c.rope_low_freq_factor},
                         {"high_freq_factor", c.rope_high_freq_factor},
                         {"original_max_position_embeddings", c.rope_original_max_position_embeddings}};
  }
  j["attention_bias"] = c.attention_bias;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["grail_value_head"] = c.value_head;
  if (c.num_virtual_tokens > 0) j["grail_num_virtual_tokens"] = c.num_virtual_tokens;
  if (c.lora.enabled()) {
    j["grail_lora"] = {{"r", c.lora.r},
                       {"alpha", c.lora.alpha},
                       {"dropout", c.lora.dropout},
                       {"use_rslora", c.lora.use_rslora},
                       {"targets", c.lora.targets}};
  }
  return j.dump(2);
}

}  // namespace grail::model
