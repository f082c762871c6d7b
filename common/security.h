#ifndef GRAIL_COMMON_SECURITY_H_
#define GRAIL_COMMON_SECURITY_H_

// Transport security and authentication shared by every grail server and client. Nothing
// here is process-global: a main reads the security flags (common/security_flags.h) into
// SecurityOptions and hands them to its ServerRunner (ServerOptions.security), its clients
// (ClientOptions.security) and its services (an Authenticator).
//
// One identity per process: a process that both serves and calls (the coordinator) uses the
// same certificate as its server identity and, under mutual TLS, as its client certificate.

#include <memory>
#include <string>

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"

namespace prometheus {
class Counter;
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

// The files security is read from (each empty when unused).
struct SecurityFiles {
  std::string auth_token_file;
  std::string tls_cert, tls_key, tls_ca;
  bool require_client_cert = false;
};

// Reads the files; an unreadable or empty file (or a blank token) is an error naming the
// flag that named it (--auth_token_file, --tls_cert, ...). The result is validated.
absl::StatusOr<SecurityOptions> LoadSecurity(const SecurityFiles& files);

// Checks the flag combinations (a key without a certificate, mTLS without a CA, ...).
absl::Status ValidateSecurity(const SecurityOptions& options);

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const SecurityOptions& options);
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const SecurityOptions& options);

// The bearer-token check of one server. Every grail RPC handler starts with
// GRAIL_AUTHORIZE(auth, context); grpc.health.v1.Health stays anonymous (probes).
//
// Why not a server interceptor: in gRPC C++ (1.51) a server interceptor cannot end a call
// with a status before the handler runs (no Hijack on the server side), and an
// AuthMetadataProcessor only runs on TLS servers, while a token must also guard plaintext
// ones. So the check is one object, injected, and called first by every handler; the RPC
// metrics, which need no veto, are an interceptor.
class Authenticator {
 public:
  // Registers grail_<component>_auth_failures_total in `registry`. An empty token allows
  // every call.
  Authenticator(std::string bearer_token, const std::string& component, prometheus::Registry& registry);

  // OK when no token is configured or the call carries "authorization: Bearer <token>";
  // otherwise UNAUTHENTICATED (counted).
  grpc::Status Check(const grpc::ServerContext* context) const;

 private:
  const std::string expected_;  // "Bearer <token>", or empty
  prometheus::Counter* failures_;
};

}  // namespace grail

#define GRAIL_AUTHORIZE(auth, context)                                                 \
  do {                                                                                 \
    if (grpc::Status auth_status = (auth)->Check(context); !auth_status.ok()) return auth_status; \
  } while (0)

#endif  // GRAIL_COMMON_SECURITY_H_
