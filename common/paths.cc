#include "common/paths.h"

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace grail {

absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root, const std::string& path,
                                             absl::string_view field) {
  namespace fs = std::filesystem;
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty path"));
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(field, ": the data root cannot be resolved"));
  fs::path p(path);
  if (p.is_relative()) p = base / p;
  const fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' cannot be resolved"));
  auto [root_end, unused] = std::mismatch(base.begin(), base.end(), resolved.begin(), resolved.end());
  if (root_end != base.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": '", path, "' is outside the data root"));
  }
  return resolved.string();
}

absl::Status WithoutRoot(const absl::Status& status, const std::string& root) {
  if (status.ok() || root.empty()) return status;
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> forms;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (!ec) forms.push_back(base.string());
  forms.push_back(fs::absolute(root, ec).lexically_normal().string());
  forms.push_back(root);
  std::string message(status.message());
  bool changed = false;
  for (std::string form : forms) {
    while (form.size() > 1 && form.back() == '/') form.pop_back();
    if (form.empty() || form == "." || form == "/") continue;
    for (size_t at; (at = message.find(form)) != std::string::npos;) {
      const size_t end = at + form.size();
      if (end < message.size() && message[end] == '/') {
        message.erase(at, form.size() + 1);
      } else {
        message.replace(at, form.size(), "<data root>");
      }
      changed = true;
    }
  }
  return changed ? absl::Status(status.code(), message) : status;
}

}  // namespace grail
