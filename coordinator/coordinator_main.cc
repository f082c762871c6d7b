// grail-coordinator: the run API and the RL loop between actors, scorers and the learner.

#include <cstdio>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/memory.h"
#include "common/service_main.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/run_manager.h"
#include "coordinator/run_service_impl.h"
#include "learner/learner_group_client.h"

ABSL_FLAG(bool, keep_freed_memory, true,
          "Keep freed heap memory for reuse instead of returning it to the system (no page faults "
          "re-zeroing the buffers of the weights it relays every version)");
ABSL_FLAG(std::vector<std::string>, actors, {}, "Comma-separated actor addresses HOST:PORT");
ABSL_FLAG(std::string, reward, "", "Reward service address HOST:PORT");
ABSL_FLAG(std::string, reference, "", "Reference service address HOST:PORT");
ABSL_FLAG(std::vector<std::string>, learner, {},
          "Learner address HOST:PORT, or every rank's address of a data-parallel learner group, "
          "comma-separated, rank 0 first");
// Deadlines by phase: scoring calls are short, a training step or a rollout chunk of a big
// model is not; a rollout stream that delivers nothing for --stall_timeout is cut at once.
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Seconds(60),
          "Deadline of each reward and reference call (scoring, reference log-probs, weight loads)");
ABSL_FLAG(absl::Duration, train_timeout, absl::Minutes(10),
          "Deadline of each learner call (model init, training steps, values, checkpoints, weights)");
ABSL_FLAG(absl::Duration, generate_timeout, absl::Minutes(10),
          "Deadline of each actor call (a rollout chunk's whole stream, a weight upload)");
ABSL_FLAG(absl::Duration, recovery_timeout, absl::Minutes(2),
          "How long a run waits for a restarted reward scorer, reference scorer or learner to serve again");
ABSL_FLAG(absl::Duration, stall_timeout, absl::Seconds(60),
          "A rollout stream that delivers no sample for this long is cancelled and retried elsewhere");
ABSL_FLAG(std::string, data_root, ".", "Dataset paths in run specs resolve under this directory");
ABSL_FLAG(std::string, run_store, "",
          "SQLite database of runs, reports and run ids (default: DATA_ROOT/grail-coordinator.sqlite)");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-coordinator";
  spec.component = "coordinator";
  spec.usage =
      "grail-coordinator: runs the RL loop between actors, scorers and the learner.\n"
      "Usage: grail-coordinator --actors=H:P[,H:P...] --reward=H:P --reference=H:P --learner=H:P[,H:P...]\n"
      "                         [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--data_root=DIR]";
  std::shared_ptr<grail::coordinator::RunManager> manager;
  spec.make_services = [&manager](prometheus::Registry& registry,
                                  const grail::ServiceEnv& env) -> absl::StatusOr<grail::ServiceBundle> {
    if (absl::GetFlag(FLAGS_keep_freed_memory)) grail::KeepFreedMemory();
    auto client_options = [&env](const std::string& target, absl::Duration timeout) {
      grail::ClientOptions o;
      o.security = env.security;
      o.target = target;
      o.timeout = timeout;
      return o;
    };
    const absl::Duration rpc = absl::GetFlag(FLAGS_rpc_timeout), train = absl::GetFlag(FLAGS_train_timeout);
    grail::coordinator::ServiceClients clients;
    for (const auto& a : absl::GetFlag(FLAGS_actors)) {
      grail::ClientOptions o = client_options(a, absl::GetFlag(FLAGS_generate_timeout));
      o.stall_timeout = absl::GetFlag(FLAGS_stall_timeout);
      clients.actors.push_back(grail::actor::NewGrpcActorClient(o));
    }
    clients.recovery_timeout = absl::GetFlag(FLAGS_recovery_timeout);
    clients.reward = grail::reward::NewGrpcRewardClient(client_options(absl::GetFlag(FLAGS_reward), rpc));
    clients.reference = grail::reference::NewGrpcReferenceClient(client_options(absl::GetFlag(FLAGS_reference), rpc));
    const std::vector<std::string> learner_ranks = absl::GetFlag(FLAGS_learner);
    if (learner_ranks.size() <= 1) {  // none: runs fail when they reach the learner, as for other peers
      clients.learner = grail::learner::NewGrpcLearnerClient(
          client_options(learner_ranks.empty() ? "" : learner_ranks[0], train));
    } else {
      std::vector<std::shared_ptr<grail::learner::LearnerClient>> ranks;
      for (const auto& address : learner_ranks) {
        ranks.push_back(grail::learner::NewGrpcLearnerClient(client_options(address, train)));
      }
      clients.learner = grail::learner::NewLearnerGroupClient(std::move(ranks));
    }
    auto metrics = std::make_shared<grail::coordinator::CoordinatorMetrics>(registry);
    grail::coordinator::RunManagerOptions options;
    options.data_root = absl::GetFlag(FLAGS_data_root);
    std::string store_path = absl::GetFlag(FLAGS_run_store);
    if (store_path.empty()) store_path = options.data_root + "/grail-coordinator.sqlite";
    auto store = grail::coordinator::RunStore::Open(store_path);
    if (!store.ok()) return store.status();
    options.store = std::move(*store);
    // A store that cannot be read stops the start.
    ASSIGN_OR_RETURN(std::unique_ptr<grail::coordinator::RunManager> created,
                     grail::coordinator::RunManager::Create(options, clients, metrics.get()));
    manager = std::move(created);
    // Runs that were active when the previous coordinator stopped continue on their own.
    for (const auto& id : manager->Recover()) {
      std::fprintf(stderr, "grail-coordinator: resuming %s from its last checkpoint\n", id.c_str());
    }
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::coordinator::RunServiceImpl>(env.auth, manager.get()));
    bundle.keep_alive.push_back(manager);
    bundle.keep_alive.push_back(metrics);
    bundle.on_shutdown = [m = manager.get()] { m->CancelAll(); };
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
