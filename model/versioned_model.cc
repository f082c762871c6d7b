#include "model/versioned_model.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/weights_stream.h"
#include "model/checkpoint.h"

namespace grail::model {
namespace {

std::string MetadataOf(const SafetensorsFile& file, const char* key) {
  auto it = file.metadata().find(key);
  return it == file.metadata().end() ? "" : it->second;
}

absl::StatusOr<ModelConfig> ConfigOf(const SafetensorsFile& file) {
  auto it = file.metadata().find(kConfigMetadataKey);
  if (it == file.metadata().end()) {
    return absl::InvalidArgumentError(absl::StrCat("weights: metadata has no ", kConfigMetadataKey));
  }
  return ParseHfConfigJson(it->second);
}

}  // namespace

VersionedModel::Snapshot VersionedModel::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::string VersionedModel::frozen_digest() const {
  absl::MutexLock lock(&mu_);
  return current_digest_;
}

absl::Status VersionedModel::Load(std::string blob, int64_t version) {
  auto file = SafetensorsFile::Parse(std::move(blob));
  if (!file.ok()) return file.status();
  const std::string part = MetadataOf(*file, kWeightsPartMetadataKey);
  const std::string digest = MetadataOf(*file, kFrozenDigestMetadataKey);
  if (!part.empty() && digest.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("weights: a ", part, " part without ", kFrozenDigestMetadataKey));
  }
  if (part == "frozen") return LoadFrozen(*file, digest);
  if (!part.empty() && part != "trainable") {
    return absl::InvalidArgumentError(absl::StrCat("weights: unknown part '", part.substr(0, 64), "'"));
  }
  {
    absl::MutexLock lock(&mu_);
    if (version < current_.version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "weights version ", version, " is older than the serving version ", current_.version));
    }
  }
  ASSIGN_OR_RETURN(Held staged, part.empty() ? StageWhole(*file) : StageTrainable(*file, digest));
  absl::MutexLock lock(&mu_);
  if (version < current_.version) {  // a concurrent load won
    return absl::FailedPreconditionError(absl::StrCat(
        "weights version ", version, " is older than the serving version ", current_.version));
  }
  spare_ = Held{std::move(current_.model), current_digest_};
  current_.model = std::move(staged.model);
  current_.version = version;
  current_digest_ = staged.frozen_digest;
  // A kept frozen part is no longer needed once a model built on it serves.
  if (frozen_.frozen_digest == current_digest_) frozen_ = Held{};
  return absl::OkStatus();
}

absl::StatusOr<VersionedModel::Held> VersionedModel::StageWhole(const SafetensorsFile& file) {
  // Stage into the spare model (the one the previous load replaced) when no call still
  // holds it, it shares no parameters with another model, and the architecture is the same:
  // copying parameters into it skips building and initialising a whole new model.
  // Otherwise build one.
  std::shared_ptr<CausalLm> staged;
  {
    absl::MutexLock lock(&mu_);
    if (spare_.model != nullptr && spare_.model.use_count() == 1 && spare_.frozen_digest.empty()) {
      staged = std::move(spare_.model);
    }
    spare_ = Held{};
  }
  if (staged != nullptr) {
    auto config = ConfigOf(file);
    absl::Status loaded = config.ok() && ToHfConfigJson(*config) == ToHfConfigJson((*staged)->config())
                              ? LoadParameters(file, *staged)
                              : absl::FailedPreconditionError("architecture changed");
    if (!loaded.ok()) staged.reset();  // partly overwritten or different: build instead
  }
  if (staged == nullptr) {
    auto model = ModelFromSafetensors(file);
    if (!model.ok()) return model.status();
    (*model)->eval();
    staged = std::make_shared<CausalLm>(std::move(*model));
  }
  if (pack_for_inference_) (*staged)->PackForInference();
  return Held{std::move(staged), MetadataOf(file, kFrozenDigestMetadataKey)};
}

absl::Status VersionedModel::LoadFrozen(const SafetensorsFile& file, const std::string& digest) {
  {
    absl::MutexLock lock(&mu_);
    if (current_digest_ == digest || frozen_.frozen_digest == digest) return absl::OkStatus();  // held already
  }
  ASSIGN_OR_RETURN(ModelConfig config, ConfigOf(file));
  std::shared_ptr<CausalLm> model;
  try {
    model = std::make_shared<CausalLm>(config);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("weights: ", e.what_without_backtrace()));
  }
  RETURN_IF_ERROR(LoadSomeParameters(file, *model));
  (*model)->eval();
  absl::MutexLock lock(&mu_);
  frozen_ = Held{std::move(model), digest};
  return absl::OkStatus();
}

absl::StatusOr<VersionedModel::Held> VersionedModel::StageTrainable(const SafetensorsFile& file,
                                                                    const std::string& digest) {
  std::shared_ptr<CausalLm> base;   // holds the frozen part
  std::shared_ptr<CausalLm> staged;  // a model on the same frozen part, free to overwrite
  {
    absl::MutexLock lock(&mu_);
    if (current_digest_ == digest) base = current_.model;
    if (base == nullptr && frozen_.frozen_digest == digest) base = frozen_.model;
    if (spare_.model != nullptr && spare_.model.use_count() == 1 && spare_.frozen_digest == digest) {
      staged = std::move(spare_.model);
    }
    spare_ = Held{};
    if (base == nullptr && staged == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "weights: a trainable part for frozen part ", digest.substr(0, 16),
          "..., which this replica does not hold (", kNeedsFrozenPart, ")"));
    }
  }
  ASSIGN_OR_RETURN(ModelConfig config, ConfigOf(file));
  if (ToHfConfigJson(config) != ToHfConfigJson((*(base != nullptr ? base : staged))->config())) {
    return absl::InvalidArgumentError("weights: the trainable part's config differs from its frozen part's");
  }
  if (staged == nullptr) {
    try {
      staged = std::make_shared<CausalLm>(config);
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat("weights: ", e.what_without_backtrace()));
    }
    (*staged)->eval();
    // Every parameter the trainable part does not carry is the frozen part's, shared.
    torch::NoGradGuard no_grad;
    auto from = (*base)->named_parameters();
    for (auto& item : (*staged)->named_parameters()) {
      if (file.tensors().count(item.key())) continue;
      const torch::Tensor* shared = from.find(item.key());
      if (shared == nullptr) return absl::InternalError(absl::StrCat("weights: frozen part lacks ", item.key()));
      item.value().set_data(*shared);
    }
  }
  RETURN_IF_ERROR(LoadSomeParameters(file, *staged));
  if (pack_for_inference_) (*staged)->PackForInference(base != nullptr ? base->get() : nullptr);
  return Held{std::move(staged), digest};
}

}  // namespace grail::model
