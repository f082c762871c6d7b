#ifndef GRAIL_COMMON_PATHS_H_
#define GRAIL_COMMON_PATHS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail {

// Resolves `path` (relative paths are taken from `root`) and checks that the result, with
// symlinks followed as far as they exist, stays inside `root`. PERMISSION_DENIED naming
// `field` otherwise, so a run spec cannot read or write outside the service's data root.
absl::StatusOr<std::string> ResolveUnderRoot(const std::string& root, const std::string& path,
                                             absl::string_view field);

// `status` with every mention of `root` (as given, and resolved to an absolute path) taken
// out of its message: paths under the root become relative ("run-1/step-000001/..."), the
// root itself "<data root>". Services apply it to every error a client sees, so that no
// message reveals where the server keeps its files.
absl::Status WithoutRoot(const absl::Status& status, const std::string& root);

}  // namespace grail

#endif  // GRAIL_COMMON_PATHS_H_
