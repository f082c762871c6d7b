#include "learner/training_checkpoint.h"

#include <unistd.h>

#include <filesystem>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/weights_stream.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace grail::learner {

namespace {

constexpr char kFormat[] = "grail-checkpoint-v1";

// LibTorch 1.13 keys optimizer state by the parameter's TensorImpl address as text; this is
// the one place that knows it.
std::string StateKey(const torch::Tensor& param) { return c10::guts::to_string(param.unsafeGetTensorImpl()); }

// AdamW moments, "exp_avg/<param>" and "exp_avg_sq/<param>", plus a "step/<param>" scalar;
// parameters without state yet are skipped.
absl::StatusOr<std::string> AdamWToSafetensors(model::CausalLm& model, torch::optim::AdamW& optimizer) {
  std::map<std::string, model::SafetensorsTensor> tensors;
  std::vector<torch::Tensor> keep;
  auto& state = optimizer.state();
  auto add = [&](const std::string& name, torch::Tensor t) {
    keep.push_back(t.detach().to(torch::kCPU).contiguous());
    const auto& k = keep.back();
    tensors[name] = {model::SafetensorsDType(k.scalar_type()), k.sizes().vec(),
                     absl::string_view(static_cast<const char*>(k.data_ptr()), k.nbytes())};
  };
  for (const auto& item : model->named_parameters()) {
    auto it = state.find(StateKey(item.value()));
    if (it == state.end()) continue;
    auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
    add("exp_avg/" + item.key(), s.exp_avg());
    add("exp_avg_sq/" + item.key(), s.exp_avg_sq());
    add("step/" + item.key(), torch::full({1}, static_cast<int64_t>(s.step()), torch::kInt64));
  }
  return model::SerializeSafetensors(tensors);
}

absl::Status RestoreAdamW(const model::SafetensorsFile& file, model::CausalLm& model, torch::optim::AdamW& optimizer) {
  const auto& tensors = file.tensors();
  auto load = [&](const std::string& name, const torch::Tensor& like) -> absl::StatusOr<torch::Tensor> {
    auto it = tensors.find(name);
    if (it == tensors.end()) return absl::DataLossError(absl::StrCat("optimizer.safetensors: missing ", name));
    const auto& t = it->second;
    if (t.dtype != model::SafetensorsDType(like.scalar_type()) || t.shape != like.sizes().vec()) {
      return absl::DataLossError(absl::StrCat("optimizer.safetensors: ", name, " has the wrong dtype or shape"));
    }
    return torch::from_blob(const_cast<char*>(t.data.data()), like.sizes(), like.options()).clone();
  };
  auto& state = optimizer.state();
  for (const auto& item : model->named_parameters()) {
    const std::string key = item.key();
    if (tensors.find("exp_avg/" + key) == tensors.end()) continue;  // no state yet when saved
    ASSIGN_OR_RETURN(torch::Tensor exp_avg, load("exp_avg/" + key, item.value()));
    ASSIGN_OR_RETURN(torch::Tensor exp_avg_sq, load("exp_avg_sq/" + key, item.value()));
    ASSIGN_OR_RETURN(torch::Tensor step, load("step/" + key, torch::zeros({1}, torch::kInt64)));
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step.item<int64_t>());
    s->exp_avg(exp_avg);
    s->exp_avg_sq(exp_avg_sq);
    state[StateKey(item.value())] = std::move(s);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteTrainingCheckpoint(const std::string& path, const std::string& display, model::CausalLm& model,
                                     torch::optim::AdamW& rl_optimizer, const TrainingState& state,
                                     const std::map<std::string, std::string>& metadata) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(path) / "COMMITTED")) {
    return absl::AlreadyExistsError(absl::StrCat("dir: a checkpoint is already committed at ", display));
  }
  const std::string tmp = absl::StrCat(path, ".tmp-", getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", display, ".tmp: ", ec.message()));
  ASSIGN_OR_RETURN(std::string model_blob, model::ModelToSafetensors(model, torch::kFloat32, metadata));
  ASSIGN_OR_RETURN(std::string optimizer_blob, AdamWToSafetensors(model, rl_optimizer));
  const std::string config = model::ToHfConfigJson(model->config());
  nlohmann::ordered_json manifest;
  manifest["format"] = kFormat;
  manifest["weights_version"] = state.weights_version;
  manifest["rl_steps"] = state.rl_steps;
  manifest["run_state"] = state.run_state;
  manifest["files"] = {{"model.safetensors", Sha256Hex(model_blob)},
                       {"optimizer.safetensors", Sha256Hex(optimizer_blob)},
                       {"config.json", Sha256Hex(config)}};
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, const std::string*>>{
           {"model.safetensors", &model_blob}, {"optimizer.safetensors", &optimizer_blob}, {"config.json", &config}}) {
    RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/" + name, *bytes));
  }
  const std::string manifest_text = manifest.dump(2);
  RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/manifest.json", manifest_text));
  RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/COMMITTED", Sha256Hex(manifest_text)));
  fs::remove_all(path, ec);  // an uncommitted leftover
  fs::create_directories(fs::path(path).parent_path(), ec);
  fs::rename(tmp, path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot move checkpoint into ", display, ": ", ec.message()));
  return absl::OkStatus();
}

absl::StatusOr<TrainingState> RestoreTrainingState(const std::string& dir, model::CausalLm& model,
                                                   torch::optim::AdamW& rl_optimizer) {
  ASSIGN_OR_RETURN(std::string manifest_text, model::ReadFileToString(dir + "/manifest.json"));
  nlohmann::json manifest = nlohmann::json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || manifest.value("format", "") != kFormat || !manifest.contains("files") ||
      !manifest["files"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("model.path: ", dir, "/manifest.json is not a grail checkpoint manifest"));
  }
  ASSIGN_OR_RETURN(std::string blob, model::ReadFileToString(dir + "/optimizer.safetensors"));
  if (Sha256Hex(blob) != manifest["files"].value("optimizer.safetensors", "")) {
    return absl::DataLossError(absl::StrCat("model.path: ", dir, "/optimizer.safetensors does not match its digest"));
  }
  ASSIGN_OR_RETURN(model::SafetensorsFile file, model::SafetensorsFile::Parse(std::move(blob)));
  RETURN_IF_ERROR(RestoreAdamW(file, model, rl_optimizer));
  TrainingState state;
  state.rl_steps = manifest.value("rl_steps", int64_t{0});
  state.weights_version = manifest.value("weights_version", int64_t{0});
  state.run_state = manifest.value("run_state", std::string());
  return state;
}

}  // namespace grail::learner
