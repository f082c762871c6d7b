#ifndef GRAIL_COMMON_GRPC_STATUS_H_
#define GRAIL_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace grail {

// The one place where absl::Status and grpc::Status are converted. The canonical codes have
// the same numbers on both sides, so codes and messages pass through unchanged.
grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// The same, for a client of a peer service: a failure's message starts with the peer's role
// and address ("learner 10.0.0.7:50051: Socket closed"), so that an error a run reports
// says which process failed.
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view role, absl::string_view target);
// `status` (of a call to that peer) with the same prefix; OK stays OK.
absl::Status NamePeer(const absl::Status& status, absl::string_view role, absl::string_view target);

}  // namespace grail

#endif  // GRAIL_COMMON_GRPC_STATUS_H_
