// grail-actor: the rollout service. Starts with no model; weights arrive over LoadWeights.

#include "absl/flags/flag.h"
#include "actor/actor_service_impl.h"
#include "actor/rollout_engine.h"
#include "common/service_main.h"

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads used for generation");
ABSL_FLAG(int, max_rows_per_request, 4096, "Most samples (prompts x group size) in one Generate call");
ABSL_FLAG(int, max_batch_rows, 256, "Sequences decoded together (KV-cache slots)");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-actor";
  spec.component = "actor";
  spec.usage =
      "grail-actor: rollout actor (batched generation with a KV cache).\n"
      "Usage: grail-actor [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--threads=N]";
  spec.make_services = [](prometheus::Registry&) -> absl::StatusOr<grail::ServiceBundle> {
    grail::actor::RolloutEngineOptions options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    options.max_rows_per_request = absl::GetFlag(FLAGS_max_rows_per_request);
    options.max_batch_rows = absl::GetFlag(FLAGS_max_batch_rows);
    auto engine = grail::actor::RolloutEngine::Create(options);
    if (!engine.ok()) return engine.status();
    std::shared_ptr<grail::actor::RolloutEngine> shared = std::move(*engine);
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::actor::ActorServiceImpl>(shared.get()));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
