// grailctl: command-line client of a grail cluster.

#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "coordinator/run_client.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "Coordinator address HOST:PORT");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call");

namespace {

constexpr char kUsage[] =
    "grailctl: drive a grail cluster over gRPC.\n"
    "Usage: grailctl [--coordinator=HOST:PORT] COMMAND [ARGS]\n"
    "Commands:\n"
    "  submit FILE       submit a run spec (YAML or JSON); prints the run id\n"
    "  status [RUN]      one run, or every run\n"
    "  watch RUN         follow a run's step reports\n"
    "  cancel RUN        cancel a run\n"
    "  health TARGET     exit 0 if the service at TARGET (HOST:PORT) is SERVING\n"
    "  validate FILE     check a run spec locally without submitting it";

int Fail(const absl::Status& status) {
  std::cerr << "grailctl: " << status << std::endl;
  return 1;
}

const char* StateName(grail::v1::RunState s) { return grail::v1::RunState_Name(s).c_str() + 10; }

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = grail::ParseCommandLineOrExit(argc, argv, kUsage);
  if (args.size() < 2) {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  const std::string& command = args[1];
  auto need = [&](size_t n) {
    if (args.size() != n + 2) {
      std::cerr << "grailctl " << command << ": expected " << n << " argument(s)\n" << kUsage << std::endl;
      return false;
    }
    return true;
  };
  grail::ClientOptions options;
  options.target = absl::GetFlag(FLAGS_coordinator);
  options.timeout = absl::GetFlag(FLAGS_timeout);

  if (command == "health") {
    if (!need(1)) return 2;
    options.target = args[2];
    auto serving = grail::CheckServing(grail::MakeChannel(options).get(), options.timeout);
    if (!serving.ok()) return Fail(serving.status());
    std::cout << args[2] << ": " << (*serving ? "SERVING" : "NOT_SERVING") << std::endl;
    return *serving ? 0 : 1;
  }
  if (command == "validate" || command == "submit") {
    if (!need(1)) return 2;
    auto spec = grail::LoadRunSpecFile(args[2]);
    if (!spec.ok()) return Fail(spec.status());
    if (command == "validate") {
      std::cout << args[2] << ": parsed" << std::endl;
      return 0;
    }
    auto id = grail::coordinator::NewGrpcRunClient(options)->Submit(*spec);
    if (!id.ok()) return Fail(id.status());
    std::cout << *id << std::endl;
    return 0;
  }
  auto client = grail::coordinator::NewGrpcRunClient(options);
  if (command == "status") {
    if (args.size() > 3) return need(1) ? 0 : 2;
    std::vector<grail::v1::Run> runs;
    if (args.size() == 3) {
      auto run = client->Get(args[2]);
      if (!run.ok()) return Fail(run.status());
      runs.push_back(*run);
    } else {
      auto all = client->List();
      if (!all.ok()) return Fail(all.status());
      runs = *all;
    }
    for (const auto& run : runs) {
      std::cout << run.run_id() << "  " << StateName(run.state()) << "  step "
                << run.last_report().step() << "/" << run.spec().trainer().total_steps()
                << (run.error().empty() ? "" : absl::StrCat("  error: ", run.error())) << std::endl;
    }
    return 0;
  }
  if (command == "cancel") {
    if (!need(1)) return 2;
    absl::Status status = client->Cancel(args[2]);
    if (!status.ok()) return Fail(status);
    std::cout << args[2] << ": cancel requested" << std::endl;
    return 0;
  }
  if (command == "watch") {
    if (!need(1)) return 2;
    absl::Status status = client->Watch(args[2], [](const grail::v1::StepReport& r) {
      std::cout << "step " << r.step() << "/" << r.total_steps() << "  version " << r.policy_version()
                << std::endl;
    });
    if (!status.ok()) return Fail(status);
    return 0;
  }
  std::cerr << "grailctl: unknown command '" << command << "'\n" << kUsage << std::endl;
  return 2;
}
