// grail-coordinator: the run API and, in later versions, the RL loop.

#include "common/service_main.h"
#include "coordinator/run_manager.h"
#include "coordinator/run_service_impl.h"

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-coordinator";
  spec.component = "coordinator";
  spec.usage =
      "grail-coordinator: runs the RL loop between actors, scorers and the learner.\n"
      "Usage: grail-coordinator [--listen=HOST:PORT] [--metrics_listen=HOST:PORT]";
  spec.make_services = [](prometheus::Registry&) -> absl::StatusOr<grail::ServiceBundle> {
    auto runs = std::make_shared<grail::coordinator::RunManager>();
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::coordinator::RunServiceImpl>(runs.get()));
    bundle.keep_alive.push_back(runs);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
