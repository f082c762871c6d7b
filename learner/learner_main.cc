// grail-learner: trains the policy (and critic) for the coordinator.

#include <map>
#include <memory>
#include <string>

#include <iostream>
#include <mutex>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/memory.h"
#include "common/service_main.h"
#include "learner/collective.h"
#include "learner/learner_service_impl.h"
#include "learner/trainer.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads used for training");
ABSL_FLAG(std::string, data_root, ".", "Model and checkpoint paths in run specs resolve under this directory");
ABSL_FLAG(int, rank, 0, "This process's rank in the learner group");
ABSL_FLAG(int, world_size, 1, "Number of learner ranks (1 = no data parallelism)");
ABSL_FLAG(std::string, master_addr, "127.0.0.1", "Rank 0's host; rank 0 hosts the rendezvous store there");
ABSL_FLAG(int, master_port, 29500, "Rendezvous (TCPStore) port on master_addr");
ABSL_FLAG(std::string, dist_backend, "gloo", "Collective backend: gloo (CPU), or nccl in CUDA builds");
ABSL_FLAG(std::string, dist_local_addr, "",
          "Address this rank's Gloo transport binds to (default: 127.0.0.1 when master_addr is a "
          "loopback address, else this host's name)");
ABSL_FLAG(absl::Duration, collective_timeout, absl::Seconds(60),
          "A collective that has not completed within this fails, and the rank reports NOT_SERVING");
ABSL_FLAG(absl::Duration, rendezvous_timeout, absl::Minutes(5), "How long to wait for every rank to join");
ABSL_FLAG(int, bucket_mb, 25, "Gradient all-reduce bucket size in MiB");
ABSL_FLAG(bool, keep_freed_memory, true,
          "Keep freed heap memory for reuse instead of returning it to the system after each step "
          "(no page faults re-zeroing activations every step; resident memory stays at its peak)");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-learner";
  spec.component = "learner";
  spec.usage =
      "grail-learner: policy and critic training.\n"
      "Usage: grail-learner [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--threads=N]\n"
      "                     [--data_root=DIR] [--rank=R --world_size=W --master_addr=HOST --master_port=P]\n"
      "                     [--collective_timeout=60s] [--dist_backend=gloo|nccl]\n"
      "With --world_size > 1 the ranks rendezvous before serving (start them together);\n"
      "the coordinator's --learner lists every rank's address, rank 0 first.";
  spec.make_services = [](prometheus::Registry& registry, const grail::ServiceEnv& env) -> absl::StatusOr<grail::ServiceBundle> {
    // Every step allocates and frees the same activations (common/memory.h).
    if (absl::GetFlag(FLAGS_keep_freed_memory)) grail::KeepFreedMemory();
    // Gauges: the last step's value of each training metric the trainer reports.
    static constexpr struct {
      const char* key;
      const char* name;
    } kGauges[] = {
        {"loss", "grail_learner_loss"},
        {"sft_loss", "grail_learner_sft_loss"},
        {"pg_clipfrac", "grail_learner_pg_clipfrac_ratio"},
        {"pg_clipfrac_lower", "grail_learner_pg_clipfrac_lower_ratio"},
        {"ppo_kl", "grail_learner_ppo_kl"},
        {"entropy", "grail_learner_entropy"},
        {"kl", "grail_learner_kl"},
        {"grad_norm", "grail_learner_grad_norm"},
        {"learning_rate", "grail_learner_learning_rate"},
        {"value_loss", "grail_learner_value_loss"},
        {"vf_clipfrac", "grail_learner_vf_clipfrac_ratio"},
        {"explained_variance", "grail_learner_explained_variance"},
        // Preference steps (dpo, simpo, orpo, kto).
        {"chosen_rewards", "grail_learner_chosen_rewards"},
        {"rejected_rewards", "grail_learner_rejected_rewards"},
        {"reward_margin", "grail_learner_reward_margin"},
        {"preference_accuracy", "grail_learner_preference_accuracy_ratio"},
        {"reward_accuracy", "grail_learner_reward_accuracy_ratio"},
        {"logp_chosen", "grail_learner_logp_chosen"},
        {"logp_rejected", "grail_learner_logp_rejected"},
        {"log_odds_ratio", "grail_learner_log_odds_ratio"},
    };
    auto gauges = std::make_shared<std::map<std::string, prometheus::Gauge*>>();
    for (const auto& g : kGauges) {
      (*gauges)[g.key] = &prometheus::BuildGauge()
                              .Name(g.name)
                              .Help(std::string("Last training step's ") + g.key + ".")
                              .Register(registry)
                              .Add({});
    }
    auto& version = prometheus::BuildGauge()
                        .Name("grail_learner_weights_version")
                        .Help("Version of the learner's current weights.")
                        .Register(registry)
                        .Add({});
    auto& step_time = prometheus::BuildHistogram()
                          .Name("grail_learner_step_duration_seconds")
                          .Help("Time of each training step by kind: sft, rl, critic, preference.")
                          .Register(registry);
    auto& steps = prometheus::BuildCounter()
                      .Name("grail_learner_steps_total")
                      .Help("Training steps by kind: sft, rl, critic, preference.")
                      .Register(registry);
    auto& allreduce = prometheus::BuildHistogram()
                          .Name("grail_learner_allreduce_seconds")
                          .Help("Time each training step spent in gradient all-reduce, by step kind.")
                          .Register(registry);
    auto& world = prometheus::BuildGauge()
                      .Name("grail_learner_group_world_size")
                      .Help("Ranks in this learner's group.")
                      .Register(registry)
                      .Add({});
    auto& group_failures = prometheus::BuildCounter()
                               .Name("grail_learner_group_failures_total")
                               .Help("Collective failures (a peer died or timed out); the rank then reports NOT_SERVING.")
                               .Register(registry)
                               .Add({});
    auto on_step = [gauges, &version, &step_time, &steps, &allreduce](
                       const std::string& kind, const grail::v1::TrainStepResponse& r, double seconds) {
      if (auto it = r.metrics().find("allreduce_seconds"); it != r.metrics().end()) {
        allreduce.Add({{"kind", kind}}, prometheus::Histogram::BucketBoundaries{0.001, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                                                0.25, 0.5, 1, 2.5, 10})
            .Observe(it->second);
      }
      for (const auto& [k, v] : r.metrics()) {
        auto it = gauges->find(k);
        if (it != gauges->end()) it->second->Set(v);
      }
      version.Set(static_cast<double>(r.weights_version()));
      step_time.Add({{"kind", kind}}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})
          .Observe(seconds);
      steps.Add({{"kind", kind}}).Increment();
    };
    grail::learner::CollectiveOptions group_options;
    group_options.rank = absl::GetFlag(FLAGS_rank);
    group_options.world_size = absl::GetFlag(FLAGS_world_size);
    group_options.master_addr = absl::GetFlag(FLAGS_master_addr);
    group_options.master_port = absl::GetFlag(FLAGS_master_port);
    group_options.backend = absl::GetFlag(FLAGS_dist_backend);
    group_options.local_addr = absl::GetFlag(FLAGS_dist_local_addr);
    group_options.timeout = absl::GetFlag(FLAGS_collective_timeout);
    group_options.rendezvous_timeout = absl::GetFlag(FLAGS_rendezvous_timeout);
    if (group_options.world_size > 1) {
      std::cerr << "grail-learner: rank " << group_options.rank << " of " << group_options.world_size
                << " joining the group at " << group_options.master_addr << ":" << group_options.master_port
                << std::endl;
    }
    auto group = grail::learner::ConnectCollective(group_options);
    if (!group.ok()) return group.status();
    world.Set(group_options.world_size);

    // A broken group turns health NOT_SERVING (once the server is up; a failure before that
    // is remembered and applied at start).
    struct Health {
      std::mutex mu;
      std::function<void()> set_not_serving;
      bool failed = false;
    };
    auto health = std::make_shared<Health>();
    grail::learner::TrainerOptions options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    options.data_root = absl::GetFlag(FLAGS_data_root);
    options.group = std::shared_ptr<grail::learner::Collective>(std::move(*group));
    options.bucket_bytes = static_cast<int64_t>(std::max(1, absl::GetFlag(FLAGS_bucket_mb))) << 20;
    options.on_group_failure = [health, &group_failures](const absl::Status& status) {
      std::cerr << "grail-learner: " << status << "; reporting NOT_SERVING" << std::endl;
      group_failures.Increment();
      std::lock_guard<std::mutex> lock(health->mu);
      health->failed = true;
      if (health->set_not_serving) health->set_not_serving();
    };
    auto trainer = grail::learner::Trainer::Create(options);
    if (!trainer.ok()) return trainer.status();
    std::shared_ptr<grail::learner::Trainer> shared = std::move(*trainer);
    grail::ServiceBundle bundle;
    bundle.on_started = [health](std::function<void()> set_not_serving) {
      std::lock_guard<std::mutex> lock(health->mu);
      health->set_not_serving = std::move(set_not_serving);
      if (health->failed) health->set_not_serving();
    };
    bundle.services.push_back(std::make_unique<grail::learner::LearnerServiceImpl>(env.auth, shared.get(), options.data_root, on_step));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
