// Authentication and transport security with real processes: a token-protected coordinator
// refuses calls without the token (counted on /metrics) while health probes stay open; a
// whole cluster under bearer token plus mutual TLS runs a short job driven by grailctl.
// Certificates are made here with the openssl command line.

#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/grpc_client.h"
#include "common/security.h"
#include "coordinator/run_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"
#include "tests/tiny_spec.h"

namespace grail::testing {
namespace {

using ::testing::HasSubstr;

class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "grail_security_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/token") << "s3cret-token\n";
    std::ofstream(dir_ + "/wrong") << "not-the-token\n";
  }
  void TearDown() override {
    RunCommand("rm -rf " + dir_);
  }

  // A CA and one certificate it signs for 127.0.0.1 / localhost (servers and clients).
  void MakeCertificates() {
    const std::string d = dir_;
    CommandResult r = RunCommand(
        "cd " + d + " && ( set -e; "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=grail-test-ca && "
        "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr -subj /CN=localhost && "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext.cnf && "
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 1 "
        "-extfile ext.cnf ) 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  std::string Grailctl(const std::string& args) {
    return BinDir() + "/grailctl --timeout=20s " + args + " 2>&1";
  }

  std::string dir_;
};

TEST_F(SecurityTest, TokenProtectedCoordinatorRefusesCallsWithoutIt) {
  auto coordinator = ServiceProcess::Start(
      "grail-coordinator", {"--auth_token_file=" + dir_ + "/token", "--actors=127.0.0.1:1",
                            "--reward=127.0.0.1:1", "--reference=127.0.0.1:1", "--learner=127.0.0.1:1"});
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  const std::string target = "--coordinator=" + (*coordinator)->grpc_address();
  const std::string spec = dir_ + "/spec.yaml";
  std::ofstream(spec) << "name: x\n";

  // No token, and a wrong token: UNAUTHENTICATED, nothing submitted.
  CommandResult none = RunCommand(Grailctl(target + " submit " + spec));
  EXPECT_NE(none.exit_code, 0);
  EXPECT_THAT(none.output, HasSubstr("UNAUTHENTICATED"));
  CommandResult wrong = RunCommand(Grailctl(target + " --auth_token_file=" + dir_ + "/wrong status"));
  EXPECT_NE(wrong.exit_code, 0);
  EXPECT_THAT(wrong.output, HasSubstr("UNAUTHENTICATED"));
  auto client = coordinator::NewGrpcRunClient({(*coordinator)->grpc_address()});
  EXPECT_EQ(client->List().status().code(), absl::StatusCode::kUnauthenticated);

  // Health probes need no token (Kubernetes probes carry none).
  CommandResult health = RunCommand(Grailctl("health " + (*coordinator)->grpc_address()));
  EXPECT_EQ(health.exit_code, 0) << health.output;

  // With the token the call reaches the service (and this spec is refused on its merits).
  CommandResult right = RunCommand(Grailctl(target + " --auth_token_file=" + dir_ + "/token submit " + spec));
  EXPECT_NE(right.exit_code, 0);
  EXPECT_THAT(right.output, Not(HasSubstr("UNAUTHENTICATED")));
  EXPECT_THAT(right.output, HasSubstr("INVALID_ARGUMENT"));
  ClientOptions with_token;
  with_token.target = (*coordinator)->grpc_address();
  with_token.security.bearer_token = "s3cret-token";
  auto authed = coordinator::NewGrpcRunClient(with_token);
  ASSERT_TRUE(authed->List().ok()) << authed->List().status();

  // Three refusals, counted.
  CommandResult metrics = RunCommand("curl -sf http://" + (*coordinator)->metrics_address() + "/metrics");
  ASSERT_EQ(metrics.exit_code, 0);
  EXPECT_THAT(metrics.output, HasSubstr("grail_coordinator_auth_failures_total 3"));
  EXPECT_THAT(metrics.output, HasSubstr("code=\"UNAUTHENTICATED\""));
}

TEST_F(SecurityTest, ClusterUnderMutualTlsAndTokenRunsAJob) {
  MakeCertificates();
  const std::vector<std::string> secure = {
      "--auth_token_file=" + dir_ + "/token", "--tls_cert=" + dir_ + "/node.pem",
      "--tls_key=" + dir_ + "/node.key",      "--tls_ca=" + dir_ + "/ca.pem",
      "--tls_require_client_cert"};
  auto cluster = LocalCluster::Start({.actors = 1, .extra_service_args = secure});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const std::string addr = (*cluster)->reward().grpc_address();

  // Plaintext, and TLS without a client certificate, cannot reach a service.
  EXPECT_NE(RunCommand(Grailctl("health " + addr)).exit_code, 0);
  CommandResult no_client_cert = RunCommand(Grailctl("--tls_ca=" + dir_ + "/ca.pem health " + addr));
  EXPECT_NE(no_client_cert.exit_code, 0) << no_client_cert.output;
  std::string flags;
  for (const auto& f : secure) {
    if (f != "--tls_require_client_cert") flags += f + " ";
  }
  CommandResult ok = RunCommand(Grailctl(flags + "health " + addr));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;

  // A short job: the coordinator reaches every service over mTLS with the token.
  const std::string spec = dir_ + "/job.yaml";
  TinySpecOptions o;
  o.name = "secure-job";
  o.heads = 2;
  o.kv_heads = 2;
  o.total_steps = 2;
  std::ofstream(spec) << TinySpecYaml(o);
  const std::string target = "--coordinator=" + (*cluster)->coordinator().grpc_address() + " ";
  CommandResult submitted = RunCommand(Grailctl(target + flags + "submit " + spec));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  std::string id = submitted.output;
  id.erase(id.find_last_not_of(" \n") + 1);
  CommandResult watched = RunCommand(BinDir() + "/grailctl --timeout=120s " + target + flags + "watch " + id + " 2>&1");
  EXPECT_EQ(watched.exit_code, 0) << watched.output;
  CommandResult status = RunCommand(Grailctl(target + flags + "status " + id));
  EXPECT_THAT(status.output, HasSubstr("succeeded  step 2/2")) << status.output;
}

}  // namespace
}  // namespace grail::testing
