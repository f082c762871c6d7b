#ifndef GRAIL_COMMON_SECURITY_H_
#define GRAIL_COMMON_SECURITY_H_

// Transport security and authentication shared by every grail server and client.
//
// One identity per process: a process that both serves and calls (the coordinator) uses the
// same certificate as its server identity and, under mutual TLS, as its client certificate.
//
//   --auth_token_file=F   servers require "authorization: Bearer <token>" on every RPC
//                         except grpc.health.v1.Health (probes stay anonymous); clients send it
//   --tls_cert, --tls_key servers serve TLS with this certificate; clients present it
//   --tls_ca              CA bundle: clients verify servers with it (clients use TLS when set);
//                         servers verify client certificates with it
//   --tls_require_client_cert
//                         servers demand a client certificate signed by --tls_ca (mutual TLS)

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
}

namespace grail {

struct SecurityOptions {
  std::string bearer_token;  // empty: no token required or sent
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_ca_pem;
  bool require_client_cert = false;
};

// Reads the files named by the security flags; an unreadable or empty file is an error
// naming the flag.
absl::StatusOr<SecurityOptions> SecurityFromFlags();

// The process-wide options used by MakeChannel, ServerRunner and Authorize. Set once in
// main() before any server or channel is made; defaults to no TLS and no token.
void SetProcessSecurity(const SecurityOptions& options);
const SecurityOptions& ProcessSecurity();

// Checks the flag combinations (a key without a certificate, mTLS without a CA, ...).
absl::Status ValidateSecurity(const SecurityOptions& options);

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const SecurityOptions& options);
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const SecurityOptions& options);

// Registers grail_<component>_auth_failures_total in `registry`; Authorize counts into it.
void RegisterAuthMetrics(const std::string& component, prometheus::Registry& registry);

// OK when no token is configured or the call carries "authorization: Bearer <token>";
// otherwise UNAUTHENTICATED (counted). Every grail RPC handler starts with it.
grpc::Status Authorize(const grpc::ServerContext* context);

}  // namespace grail

#define GRAIL_AUTHORIZE(context)                                        \
  do {                                                                  \
    if (grpc::Status auth_status = ::grail::Authorize(context); !auth_status.ok()) \
      return auth_status;                                               \
  } while (0)

#endif  // GRAIL_COMMON_SECURITY_H_
