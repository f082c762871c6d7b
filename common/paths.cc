#include "common/paths.h"

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace grail {

absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root, const std::string& path,
                                             absl::string_view field) {
  namespace fs = std::filesystem;
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty path"));
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("data root '", root, "' cannot be resolved"));
  fs::path p(path);
  if (p.is_relative()) p = base / p;
  const fs::path resolved = fs::weakly_canonical(p, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat(field, ": '", path, "' cannot be resolved"));
  auto [root_end, unused] = std::mismatch(base.begin(), base.end(), resolved.begin(), resolved.end());
  if (root_end != base.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat(field, ": '", path, "' is outside the data root ", base.string()));
  }
  return resolved.string();
}

}  // namespace grail
