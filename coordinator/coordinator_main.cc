// grail-coordinator: the run API and the RL loop between actors, scorers and the learner.

#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/service_main.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/run_manager.h"
#include "coordinator/run_service_impl.h"
#include "learner/learner_group_client.h"

ABSL_FLAG(std::vector<std::string>, actors, {}, "Comma-separated actor addresses HOST:PORT");
ABSL_FLAG(std::string, reward, "", "Reward service address HOST:PORT");
ABSL_FLAG(std::string, reference, "", "Reference service address HOST:PORT");
ABSL_FLAG(std::vector<std::string>, learner, {},
          "Learner address HOST:PORT, or every rank's address of a data-parallel learner group, "
          "comma-separated, rank 0 first");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Minutes(5), "Deadline of each call to a service");
ABSL_FLAG(std::string, data_root, ".", "Dataset paths in run specs resolve under this directory");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-coordinator";
  spec.component = "coordinator";
  spec.usage =
      "grail-coordinator: runs the RL loop between actors, scorers and the learner.\n"
      "Usage: grail-coordinator --actors=H:P[,H:P...] --reward=H:P --reference=H:P --learner=H:P[,H:P...]\n"
      "                         [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--data_root=DIR]";
  std::shared_ptr<grail::coordinator::RunManager> manager;
  spec.make_services = [&manager](prometheus::Registry& registry) -> absl::StatusOr<grail::ServiceBundle> {
    auto client_options = [](const std::string& target) {
      grail::ClientOptions o;
      o.target = target;
      o.timeout = absl::GetFlag(FLAGS_rpc_timeout);
      return o;
    };
    grail::coordinator::ServiceClients clients;
    for (const auto& a : absl::GetFlag(FLAGS_actors)) {
      clients.actors.push_back(grail::actor::NewGrpcActorClient(client_options(a)));
    }
    clients.reward = grail::reward::NewGrpcRewardClient(client_options(absl::GetFlag(FLAGS_reward)));
    clients.reference = grail::reference::NewGrpcReferenceClient(client_options(absl::GetFlag(FLAGS_reference)));
    const std::vector<std::string> learner_ranks = absl::GetFlag(FLAGS_learner);
    if (learner_ranks.size() <= 1) {  // none: runs fail when they reach the learner, as for other peers
      clients.learner = grail::learner::NewGrpcLearnerClient(
          client_options(learner_ranks.empty() ? "" : learner_ranks[0]));
    } else {
      std::vector<std::shared_ptr<grail::learner::LearnerClient>> ranks;
      for (const auto& address : learner_ranks) {
        ranks.push_back(grail::learner::NewGrpcLearnerClient(client_options(address)));
      }
      clients.learner = grail::learner::NewLearnerGroupClient(std::move(ranks));
    }
    auto metrics = std::make_shared<grail::coordinator::CoordinatorMetrics>(registry);
    grail::coordinator::RunManagerOptions options;
    options.data_root = absl::GetFlag(FLAGS_data_root);
    manager = std::make_shared<grail::coordinator::RunManager>(options, clients, metrics.get());
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::coordinator::RunServiceImpl>(manager.get()));
    bundle.keep_alive.push_back(manager);
    bundle.keep_alive.push_back(metrics);
    bundle.on_shutdown = [m = manager.get()] { m->CancelAll(); };
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
