#ifndef GRAIL_COORDINATOR_RUN_STATE_H_
#define GRAIL_COORDINATOR_RUN_STATE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/grail/v1/coordinator.pb.h"

namespace grail::coordinator {

inline constexpr char kLoopStateFormat[] = "grail-run-state-v1";

// The checkpoint codec of the loop's state: JSON with the proto's field names (readable in
// a checkpoint directory, and what earlier versions wrote).
std::string EncodeLoopState(grail::v1::LoopState state);

// INVALID_ARGUMENT when `text` is not a loop state of this format.
absl::StatusOr<grail::v1::LoopState> DecodeLoopState(absl::string_view text);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_STATE_H_
