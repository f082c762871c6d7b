#include "common/grpc_status.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace grail {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view role, absl::string_view target) {
  return NamePeer(FromGrpcStatus(status), role, target);
}

absl::Status NamePeer(const absl::Status& status, absl::string_view role, absl::string_view target) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(role, " ", target, ": ", status.message()));
}

}  // namespace grail
