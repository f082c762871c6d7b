#include "common/security.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"

namespace grail {
namespace {

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

absl::StatusOr<SecurityOptions> LoadSecurity(const SecurityFiles& files) {
  SecurityOptions o;
  if (!files.auth_token_file.empty()) {
    auto token = ReadFlagFile(files.auth_token_file, "auth_token_file");
    if (!token.ok()) return token.status();
    o.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
    if (o.bearer_token.empty()) return absl::InvalidArgumentError("--auth_token_file: the token is blank");
  }
  struct {
    const std::string& path;
    const char* flag;
    std::string* out;
  } pems[] = {{files.tls_cert, "tls_cert", &o.tls_cert_pem},
              {files.tls_key, "tls_key", &o.tls_key_pem},
              {files.tls_ca, "tls_ca", &o.tls_ca_pem}};
  for (auto& f : pems) {
    if (f.path.empty()) continue;
    auto pem = ReadFlagFile(f.path, f.flag);
    if (!pem.ok()) return pem.status();
    *f.out = *pem;
  }
  o.require_client_cert = files.require_client_cert;
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

Authenticator::Authenticator(std::string bearer_token, const std::string& component,
                             prometheus::Registry& registry)
    : expected_(bearer_token.empty() ? "" : absl::StrCat("Bearer ", bearer_token)),
      failures_(&prometheus::BuildCounter()
                     .Name(absl::StrCat("grail_", component, "_auth_failures_total"))
                     .Help("RPCs refused UNAUTHENTICATED: missing or wrong bearer token.")
                     .Register(registry)
                     .Add({})) {}

grpc::Status Authenticator::Check(const grpc::ServerContext* context) const {
  if (expected_.empty()) return grpc::Status::OK;
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it != md.end() && ConstantTimeEquals(absl::string_view(it->second.data(), it->second.size()), expected_)) {
    return grpc::Status::OK;
  }
  failures_->Increment();
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      it == md.end() ? "missing authorization: Bearer token" : "wrong bearer token");
}

}  // namespace grail
