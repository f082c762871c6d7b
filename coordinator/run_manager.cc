#include "coordinator/run_manager.h"

#include "absl/strings/str_cat.h"
#include "coordinator/spec_validation.h"

namespace grail::coordinator {

absl::StatusOr<std::string> RunManager::Submit(const grail::v1::RunSpec& spec) {
  absl::Status valid = ValidateRunSpec(spec);
  if (!valid.ok()) return valid;
  return absl::UnimplementedError("the RL loop is not implemented yet; the spec is valid");
}

absl::StatusOr<grail::v1::Run> RunManager::Get(const std::string& run_id) const {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
  return it->second;
}

std::vector<grail::v1::Run> RunManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<grail::v1::Run> out;
  for (const auto& [id, run] : runs_) out.push_back(run);
  return out;
}

absl::Status RunManager::Cancel(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  if (!runs_.count(run_id)) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
  return absl::OkStatus();
}

}  // namespace grail::coordinator
