#ifndef GRAIL_COMMON_PARALLEL_H_
#define GRAIL_COMMON_PARALLEL_H_

#include <cstddef>
#include <functional>

#include "absl/status/status.h"

namespace grail {

// Runs fn(0) .. fn(n-1) on n threads and waits for all of them. Returns the first failure
// in index order, or OK. For fanning one call out to several services.
absl::Status ParallelFor(size_t n, const std::function<absl::Status(size_t)>& fn);

}  // namespace grail

#endif  // GRAIL_COMMON_PARALLEL_H_
