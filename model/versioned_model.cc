#include "model/versioned_model.h"

#include "absl/strings/str_cat.h"
#include "model/checkpoint.h"

namespace grail::model {

VersionedModel::Snapshot VersionedModel::Get() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::Status VersionedModel::Load(std::string blob, int64_t version) {
  {
    absl::MutexLock lock(&mu_);
    if (version < current_.version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "weights version ", version, " is older than the serving version ", current_.version));
    }
  }
  auto file = SafetensorsFile::Parse(std::move(blob));
  if (!file.ok()) return file.status();
  // Stage into the spare model (the one the previous load replaced) when no call still
  // holds it and the architecture is the same: copying parameters into it skips building
  // and initialising a whole new model. Otherwise build one.
  std::shared_ptr<CausalLm> staged;
  {
    absl::MutexLock lock(&mu_);
    if (spare_ != nullptr && spare_.use_count() == 1) staged = std::move(spare_);
    spare_.reset();
  }
  if (staged != nullptr) {
    auto it = file->metadata().find(kConfigMetadataKey);
    auto config = it == file->metadata().end() ? absl::StatusOr<ModelConfig>(absl::InvalidArgumentError(""))
                                               : ParseHfConfigJson(it->second);
    absl::Status loaded = config.ok() && ToHfConfigJson(*config) == ToHfConfigJson((*staged)->config())
                              ? LoadParameters(*file, *staged)
                              : absl::FailedPreconditionError("architecture changed");
    if (!loaded.ok()) staged.reset();  // partly overwritten or different: build instead
  }
  if (staged == nullptr) {
    auto model = ModelFromSafetensors(*file);
    if (!model.ok()) return model.status();
    (*model)->eval();
    staged = std::make_shared<CausalLm>(std::move(*model));
  }
  absl::MutexLock lock(&mu_);
  if (version < current_.version) {  // a concurrent load won
    return absl::FailedPreconditionError(absl::StrCat(
        "weights version ", version, " is older than the serving version ", current_.version));
  }
  spare_ = std::move(current_.model);
  current_.model = std::move(staged);
  current_.version = version;
  return absl::OkStatus();
}

}  // namespace grail::model
