#ifndef GRAIL_COMMON_SECURITY_FLAGS_H_
#define GRAIL_COMMON_SECURITY_FLAGS_H_

// The security flags, shared by every service main and grailctl (compiled into mains only):
//
//   --auth_token_file=F   servers require "authorization: Bearer <token>" on every RPC
//                         except grpc.health.v1.Health (probes stay anonymous); clients send it
//   --tls_cert, --tls_key servers serve TLS with this certificate; clients present it
//   --tls_ca              CA bundle: clients verify servers with it (clients use TLS when set);
//                         servers verify client certificates with it
//   --tls_require_client_cert
//                         servers demand a client certificate signed by --tls_ca (mutual TLS)

#include "absl/status/statusor.h"
#include "common/security.h"

namespace grail {

// Reads the files the flags name (LoadSecurity); errors name the flag.
absl::StatusOr<SecurityOptions> SecurityFromFlags();

}  // namespace grail

#endif  // GRAIL_COMMON_SECURITY_FLAGS_H_
