#ifndef GRAIL_COORDINATOR_SPEC_VALIDATION_H_
#define GRAIL_COORDINATOR_SPEC_VALIDATION_H_

#include "absl/status/status.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::coordinator {

// Checks a run spec before anything runs. Returns INVALID_ARGUMENT naming the first bad
// field (e.g. "algorithm.group_size: must be >= 2 for grpo, got 1").
absl::Status ValidateRunSpec(const grail::v1::RunSpec& spec);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_SPEC_VALIDATION_H_
