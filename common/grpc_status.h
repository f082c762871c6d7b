#ifndef GRAIL_COMMON_GRPC_STATUS_H_
#define GRAIL_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace grail {

// The one place where absl::Status and grpc::Status are converted. The canonical codes have
// the same numbers on both sides, so codes and messages pass through unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace grail

#endif  // GRAIL_COMMON_GRPC_STATUS_H_
