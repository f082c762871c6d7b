#include "model/model_config.h"

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
  if (hidden_size % num_attention_heads != 0) {
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
  if (!(rms_norm_eps > 0)) return absl::InvalidArgumentError("rms_norm_eps: must be > 0");
  return absl::OkStatus();
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
  c.attention_bias = p.attention_bias();
  c.tie_word_embeddings = p.tie_word_embeddings();
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
  // Qwen2 always has q/k/v biases; Llama says so with attention_bias.
  c.attention_bias = j.value("model_type", "") == "qwen2";
  if (!(s = get_bool("attention_bias", &c.attention_bias)).ok()) return s;
  if (!(s = get_bool("tie_word_embeddings", &c.tie_word_embeddings)).ok()) return s;
  if (!(s = get_bool("grail_value_head", &c.value_head)).ok()) return s;
  if (!(s = c.Validate()).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("config.json: ", s.message()));
  }
  return c;
}

std::string ToHfConfigJson(const ModelConfig& c) {
  nlohmann::ordered_json j;
  j["architectures"] = {"LlamaForCausalLM"};
  j["model_type"] = "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["attention_bias"] = c.attention_bias;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  j["torch_dtype"] = "float32";
  j["grail_value_head"] = c.value_head;
  return j.dump(2);
}

}  // namespace grail::model
