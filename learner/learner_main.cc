// grail-learner: trains the policy (and critic) for the coordinator.

#include <map>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "common/service_main.h"
#include "learner/learner_service_impl.h"
#include "learner/trainer.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads used for training");
ABSL_FLAG(std::string, data_root, ".", "Model and checkpoint paths in run specs resolve under this directory");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-learner";
  spec.component = "learner";
  spec.usage =
      "grail-learner: policy and critic training.\n"
      "Usage: grail-learner [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--threads=N]\n"
      "                     [--data_root=DIR]";
  spec.make_services = [](prometheus::Registry& registry) -> absl::StatusOr<grail::ServiceBundle> {
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
                          .Help("Time of each training step by kind: sft, rl, critic.")
                          .Register(registry);
    auto& steps = prometheus::BuildCounter()
                      .Name("grail_learner_steps_total")
                      .Help("Training steps by kind: sft, rl, critic.")
                      .Register(registry);
    auto on_step = [gauges, &version, &step_time, &steps](const std::string& kind,
                                                          const grail::v1::TrainStepResponse& r, double seconds) {
      for (const auto& [k, v] : r.metrics()) {
        auto it = gauges->find(k);
        if (it != gauges->end()) it->second->Set(v);
      }
      version.Set(static_cast<double>(r.weights_version()));
      step_time.Add({{"kind", kind}}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30})
          .Observe(seconds);
      steps.Add({{"kind", kind}}).Increment();
    };
    grail::learner::TrainerOptions options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    options.data_root = absl::GetFlag(FLAGS_data_root);
    auto trainer = grail::learner::Trainer::Create(options);
    if (!trainer.ok()) return trainer.status();
    std::shared_ptr<grail::learner::Trainer> shared = std::move(*trainer);
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::learner::LearnerServiceImpl>(shared.get(), on_step));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
