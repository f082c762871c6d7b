#include "common/security.h"

#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

ABSL_FLAG(std::string, auth_token_file, "",
          "File holding a bearer token: servers require it on every RPC but health checks, "
          "clients send it");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate: served over TLS, presented as client certificate");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle: clients verify servers (and use TLS); servers verify clients");
ABSL_FLAG(bool, tls_require_client_cert, false, "Servers demand a client certificate signed by --tls_ca");

namespace grail {
namespace {

absl::Mutex g_mu;
SecurityOptions* g_options ABSL_GUARDED_BY(g_mu) = nullptr;
prometheus::Counter* g_auth_failures = nullptr;

absl::StatusOr<std::string> ReadFlagFile(const std::string& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  if (ss.str().empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", path, " is empty"));
  return ss.str();
}

// Compares in time independent of where equal-length strings differ.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<SecurityOptions> SecurityFromFlags() {
  SecurityOptions o;
  if (const std::string f = absl::GetFlag(FLAGS_auth_token_file); !f.empty()) {
    auto token = ReadFlagFile(f, "auth_token_file");
    if (!token.ok()) return token.status();
    o.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
    if (o.bearer_token.empty()) return absl::InvalidArgumentError("--auth_token_file: the token is blank");
  }
  struct {
    const std::string path;
    const char* flag;
    std::string* out;
  } files[] = {{absl::GetFlag(FLAGS_tls_cert), "tls_cert", &o.tls_cert_pem},
               {absl::GetFlag(FLAGS_tls_key), "tls_key", &o.tls_key_pem},
               {absl::GetFlag(FLAGS_tls_ca), "tls_ca", &o.tls_ca_pem}};
  for (auto& f : files) {
    if (f.path.empty()) continue;
    auto pem = ReadFlagFile(f.path, f.flag);
    if (!pem.ok()) return pem.status();
    *f.out = *pem;
  }
  o.require_client_cert = absl::GetFlag(FLAGS_tls_require_client_cert);
  absl::Status valid = ValidateSecurity(o);
  if (!valid.ok()) return valid;
  return o;
}

absl::Status ValidateSecurity(const SecurityOptions& o) {
  if (o.tls_cert_pem.empty() != o.tls_key_pem.empty()) {
    return absl::InvalidArgumentError(o.tls_cert_pem.empty() ? "--tls_cert: required with --tls_key"
                                                              : "--tls_key: required with --tls_cert");
  }
  if (o.require_client_cert && (o.tls_ca_pem.empty() || o.tls_cert_pem.empty())) {
    return absl::InvalidArgumentError(
        "--tls_require_client_cert: needs --tls_ca (to verify clients) and --tls_cert/--tls_key");
  }
  return absl::OkStatus();
}

void SetProcessSecurity(const SecurityOptions& options) {
  absl::MutexLock lock(&g_mu);
  delete g_options;
  g_options = new SecurityOptions(options);
}

const SecurityOptions& ProcessSecurity() {
  absl::MutexLock lock(&g_mu);
  if (g_options == nullptr) g_options = new SecurityOptions();
  return *g_options;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const SecurityOptions& o) {
  if (o.tls_cert_pem.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(o.require_client_cert
                                            ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  ssl.pem_root_certs = o.tls_ca_pem;
  ssl.pem_key_cert_pairs.push_back({o.tls_key_pem, o.tls_cert_pem});
  return grpc::SslServerCredentials(ssl);
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(const SecurityOptions& o) {
  if (o.tls_ca_pem.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = o.tls_ca_pem;
  ssl.pem_private_key = o.tls_key_pem;
  ssl.pem_cert_chain = o.tls_cert_pem;
  return grpc::SslCredentials(ssl);
}

void RegisterAuthMetrics(const std::string& component, prometheus::Registry& registry) {
  g_auth_failures = &prometheus::BuildCounter()
                         .Name(absl::StrCat("grail_", component, "_auth_failures_total"))
                         .Help("RPCs refused UNAUTHENTICATED: missing or wrong bearer token.")
                         .Register(registry)
                         .Add({});
}

grpc::Status Authorize(const grpc::ServerContext* context) {
  const std::string& token = ProcessSecurity().bearer_token;
  if (token.empty()) return grpc::Status::OK;
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  const std::string expected = absl::StrCat("Bearer ", token);
  if (it != md.end() && ConstantTimeEquals(absl::string_view(it->second.data(), it->second.size()), expected)) {
    return grpc::Status::OK;
  }
  if (g_auth_failures != nullptr) g_auth_failures->Increment();
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == md.end() ? "missing authorization: Bearer token" : "wrong bearer token");
}

}  // namespace grail
