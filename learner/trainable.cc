#include "learner/trainable.h"

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "model/hf_export.h"

namespace grail::learner {
namespace {

bool IsAdapter(const std::string& name) {
  return absl::StrContains(name, ".lora_A.") || absl::StrContains(name, ".lora_B.");
}

bool IsValueHead(const std::string& name) { return absl::StartsWith(name, "score."); }

// The model.trainable module name of a parameter: q, k, v, o, gate, up, down, norm (a
// layer's norms and the final norm), embed or lm_head.
std::string ModuleOf(const std::string& name) {
  if (absl::StartsWith(name, "model.embed_tokens.")) return "embed";
  if (absl::StartsWith(name, "lm_head.")) return "lm_head";
  if (absl::StrContains(name, "norm.")) return "norm";
  for (const char* p : {"q", "k", "v", "o", "gate", "up", "down"}) {
    if (absl::StrContains(name, absl::StrCat(".", p, "_proj."))) return p;
  }
  return "";
}

// The decoder layer of "model.layers.<i>....", or -1.
int LayerOf(const std::string& name) {
  if (!absl::StartsWith(name, "model.layers.")) return -1;
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  int i = -1;
  return parts.size() > 2 && absl::SimpleAtoi(parts[2], &i) ? i : -1;
}

}  // namespace

absl::StatusOr<std::shared_ptr<model::CausalLm>> WithAdapters(const grail::v1::ModelSpec& spec,
                                                             std::shared_ptr<model::CausalLm> model, uint64_t seed,
                                                             const std::string& adapter_dir) {
  const auto& p = spec.peft();
  if (p.type() == grail::v1::PEFT_TYPE_PROMPT_TUNING) {
    if (!adapter_dir.empty()) return absl::InvalidArgumentError("model.peft.path: prompt tuning loads no adapter");
    if ((*model)->config().num_virtual_tokens > 0) return model;  // a prompt-tuned checkpoint
    model::ModelConfig config = (*model)->config();
    config.num_virtual_tokens = p.num_virtual_tokens() > 0 ? p.num_virtual_tokens() : 8;
    absl::Status valid = config.Validate();
    if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("model.peft: ", valid.message()));
    auto tuned = std::make_shared<model::CausalLm>(config);
    CopyMatchingParameters(*model, *tuned);
    (*tuned)->InitPromptEmbeddings(seed);
    return tuned;
  }
  if (p.type() != grail::v1::PEFT_TYPE_LORA) return model;
  if ((*model)->config().lora.enabled()) {
    if (!adapter_dir.empty()) {
      return absl::InvalidArgumentError("model.peft.path: model.path has adapters already (a LoRA run's checkpoint)");
    }
    return model;
  }
  model::ModelConfig config = (*model)->config();
  std::optional<model::PeftAdapter> loaded;
  if (!adapter_dir.empty()) {
    auto read = model::ReadPeftAdapterDir(adapter_dir);
    if (!read.ok()) return absl::Status(read.status().code(), absl::StrCat("model.peft.path: ", read.status().message()));
    loaded = std::move(*read);
    config.lora = loaded->lora;  // the adapter's own settings
  } else {
    config.lora.r = p.r() > 0 ? p.r() : 8;
    config.lora.alpha = p.alpha() > 0 ? p.alpha() : 16;
    config.lora.dropout = p.dropout();
    config.lora.use_rslora = p.use_rslora();
    if (!p.target_modules().empty()) config.lora.targets.assign(p.target_modules().begin(), p.target_modules().end());
  }
  absl::Status valid = config.Validate();
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("model.peft: ", valid.message()));
  auto adapted = std::make_shared<model::CausalLm>(config);
  CopyMatchingParameters(*model, *adapted);
  (*adapted)->InitAdapters(seed);
  if (loaded.has_value()) {
    torch::NoGradGuard no_grad;
    auto params = (*adapted)->named_parameters();
    size_t copied = 0;
    for (const auto& [name, tensor] : loaded->tensors) {
      torch::Tensor* dst = params.find(name);
      if (dst == nullptr || !IsAdapter(name)) {
        return absl::InvalidArgumentError(absl::StrCat("model.peft.path: ", name, " is not an adapter of this model"));
      }
      if (dst->sizes().vec() != tensor.first) {
        return absl::InvalidArgumentError(absl::StrCat("model.peft.path: ", name, " has another shape than the model's"));
      }
      dst->copy_(torch::from_blob(const_cast<char*>(tensor.second.data()), tensor.first, torch::kFloat32));
      ++copied;
    }
    size_t adapters = 0;
    for (const auto& item : params) adapters += IsAdapter(item.key());
    if (copied != adapters) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.peft.path: holds ", copied, " of the model's ", adapters, " adapter tensors"));
    }
  }
  return adapted;
}

absl::Status SelectTrainable(const grail::v1::ModelSpec& spec, model::CausalLm& model) {
  const bool adapters = model->config().lora.enabled() || model->config().num_virtual_tokens > 0;
  const bool selective = spec.has_trainable() && !adapters;
  const auto& t = spec.trainable();
  const int64_t layers = model->config().num_hidden_layers;
  std::set<int> chosen_layers;
  if (selective) {
    for (int i : t.layer_indices()) {
      if (i < 0 || i >= layers) {
        return absl::InvalidArgumentError(
            absl::StrCat("model.trainable.layer_indices: ", i, " is not a layer of a ", layers, "-layer model"));
      }
      chosen_layers.insert(i);
    }
    if (t.layer_indices().empty()) {
      int last = static_cast<int>(layers);  // "all" or unset
      if (t.layers() == "none") {
        last = 0;
      } else if (absl::StartsWith(t.layers(), "last:") && !absl::SimpleAtoi(t.layers().substr(5), &last)) {
        return absl::InvalidArgumentError(absl::StrCat("model.trainable.layers: '", t.layers(), "' is not last:N"));
      }
      for (int i = static_cast<int>(layers) - std::min<int>(last, static_cast<int>(layers)); i < layers; ++i) {
        chosen_layers.insert(i);
      }
    }
  }
  const std::set<std::string> modules(t.modules().begin(), t.modules().end());
  int trainable = 0;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    bool train = true;
    if (adapters) {
      train = IsAdapter(name) || name == "prompt_embeddings" || IsValueHead(name);
    } else if (selective) {
      const std::string module = ModuleOf(name);
      const int layer = LayerOf(name);
      if (IsValueHead(name)) {
        train = true;
      } else if (layer >= 0) {
        train = chosen_layers.count(layer) > 0 && (modules.empty() || modules.count(module) > 0);
      } else {  // embeddings, the final norm, lm_head: only when named
        train = modules.count(module) > 0;
      }
    }
    item.value().set_requires_grad(train);
    trainable += train && !IsValueHead(name);
  }
  if (selective && trainable == 0) {
    return absl::InvalidArgumentError("model.trainable: selects no parameter of the model");
  }
  return absl::OkStatus();
}

std::vector<torch::Tensor> TrainableParameters(model::CausalLm& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model->parameters()) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

void CopyMatchingParameters(model::CausalLm& from, model::CausalLm& to) {
  torch::NoGradGuard no_grad;
  // Exported: an NF4-stored parameter of `from` comes dequantised.
  std::map<std::string, torch::Tensor> source;
  for (auto& [name, value] : from->ExportedParameters()) source.emplace(name, value);
  for (auto& item : to->named_parameters()) {
    auto it = source.find(item.key());
    if (it == source.end() || it->second.sizes() != item.value().sizes()) continue;
    item.value().copy_(it->second);
    item.value().set_requires_grad(it->second.requires_grad());
  }
}

}  // namespace grail::learner
