// grail-learner: trains the policy (and critic) for the coordinator.

#include "absl/flags/flag.h"
#include "common/service_main.h"
#include "learner/learner_service_impl.h"
#include "learner/trainer.h"

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
  spec.make_services = [](prometheus::Registry&) -> absl::StatusOr<grail::ServiceBundle> {
    grail::learner::TrainerOptions options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    options.data_root = absl::GetFlag(FLAGS_data_root);
    auto trainer = grail::learner::Trainer::Create(options);
    if (!trainer.ok()) return trainer.status();
    std::shared_ptr<grail::learner::Trainer> shared = std::move(*trainer);
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::learner::LearnerServiceImpl>(shared.get()));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
