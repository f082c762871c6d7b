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
  auto model = ModelFromSafetensors(*file);
  if (!model.ok()) return model.status();
  (*model)->eval();
  auto shared = std::make_shared<CausalLm>(std::move(*model));
  absl::MutexLock lock(&mu_);
  current_.model = std::move(shared);
  current_.version = version;
  return absl::OkStatus();
}

}  // namespace grail::model
