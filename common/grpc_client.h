#ifndef GRAIL_COMMON_GRPC_CLIENT_H_
#define GRAIL_COMMON_GRPC_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grail {

struct ClientOptions {
  // Server address HOST:PORT.
  std::string target;
  // Deadline of each unary call and of each whole stream.
  absl::Duration timeout = absl::Seconds(60);
  // Largest message accepted from the server.
  int max_message_bytes = 256 << 20;
};

// An insecure channel to options.target with the message-size limits applied.
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

// Sets the deadline of `context` to now + timeout.
void SetTimeout(grpc::ClientContext* context, absl::Duration timeout);

// Asks grpc.health.v1.Health/Check for `service` ("" = the whole server). Returns true when
// SERVING, false for any other status; an RPC failure is returned as its status.
absl::StatusOr<bool> CheckServing(grpc::Channel* channel, absl::Duration timeout,
                                  const std::string& service = "");

}  // namespace grail

#endif  // GRAIL_COMMON_GRPC_CLIENT_H_
