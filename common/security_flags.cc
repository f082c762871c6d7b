#include "common/security_flags.h"

#include <string>

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token: servers require it on every RPC (health checks excepted), "
          "clients send it");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate: served over TLS, presented as client certificate");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle: clients verify servers (and use TLS); servers verify clients");
ABSL_FLAG(bool, tls_require_client_cert, false, "Servers demand a client certificate signed by --tls_ca");

namespace grail {

absl::StatusOr<SecurityOptions> SecurityFromFlags() {
  SecurityFiles files;
  files.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  files.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  files.tls_key = absl::GetFlag(FLAGS_tls_key);
  files.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  files.require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  return LoadSecurity(files);
}

}  // namespace grail
