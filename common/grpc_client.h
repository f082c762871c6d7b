#ifndef GRAIL_COMMON_GRPC_CLIENT_H_
#define GRAIL_COMMON_GRPC_CLIENT_H_

#include <memory>
#include <string>
#include <thread>

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "common/security.h"

namespace grail {

struct ClientOptions {
  // Server address HOST:PORT.
  std::string target;
  // Deadline of each unary call and of each whole stream.
  absl::Duration timeout = absl::Seconds(60);
  // A stream that delivers nothing for this long is cancelled and fails DEADLINE_EXCEEDED
  // ("stalled"), long before `timeout`; 0 = no stall detection.
  absl::Duration stall_timeout = absl::ZeroDuration();
  // Largest message accepted from the server.
  int max_message_bytes = 256 << 20;
  // TLS (tls_ca_pem set) and the bearer token sent with every call (when set).
  SecurityOptions security;
};

// A channel to options.target with its security and the message-size limits applied.
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

// Sets the deadline of `context` to now + timeout.
void SetTimeout(grpc::ClientContext* context, absl::Duration timeout);

// Cancels a call whose stream makes no progress: Progress() is called for each message;
// when none came for `stall_timeout`, the context is cancelled and stalled() turns true.
// Inactive when stall_timeout is zero. Not copyable; outlives no call it watches.
class StallWatchdog {
 public:
  StallWatchdog(grpc::ClientContext* context, absl::Duration stall_timeout);
  ~StallWatchdog();
  StallWatchdog(const StallWatchdog&) = delete;
  StallWatchdog& operator=(const StallWatchdog&) = delete;

  void Progress();
  bool stalled() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::thread thread_;
};

// Asks grpc.health.v1.Health/Check for `service` ("" = the whole server). Returns true when
// SERVING, false for any other status; an RPC failure is returned as its status.
absl::StatusOr<bool> CheckServing(grpc::Channel* channel, absl::Duration timeout,
                                  const std::string& service = "");

}  // namespace grail

#endif  // GRAIL_COMMON_GRPC_CLIENT_H_
