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

}  // namespace grail

#endif  // GRAIL_COMMON_PATHS_H_
