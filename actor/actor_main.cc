// grail-actor: the rollout service. Starts with no model; weights arrive over LoadWeights.

#include "absl/flags/flag.h"
#include "actor/actor_service_impl.h"
#include "actor/rollout_engine.h"
#include "common/memory.h"
#include "common/service_main.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads used for generation");
ABSL_FLAG(int, max_rows_per_request, 4096, "Most samples (prompts x group size) in one Generate call");
ABSL_FLAG(int, max_batch_rows, 256, "Sequences decoded together (KV-cache slots)");
ABSL_FLAG(bool, pack_weights, true,
          "Keep a packed copy of the weights for the CPU matmuls (faster decoding; the weights' "
          "size in memory once more)");
ABSL_FLAG(bool, keep_freed_memory, true,
          "Keep freed heap memory for reuse instead of returning it to the system (no page faults "
          "re-zeroing the weights stream's buffers every version; resident memory stays at its peak)");
ABSL_FLAG(bool, share_prefixes, true,
          "The samples of a prompt read one copy of its keys and values in the KV cache instead of "
          "each copying them (the same results)");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-actor";
  spec.component = "actor";
  spec.usage =
      "grail-actor: rollout actor (batched generation with a KV cache).\n"
      "Usage: grail-actor [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--threads=N]";
  spec.make_services = [](prometheus::Registry& registry, const grail::ServiceEnv& env) -> absl::StatusOr<grail::ServiceBundle> {
    if (absl::GetFlag(FLAGS_keep_freed_memory)) grail::KeepFreedMemory();
    auto& tokens = prometheus::BuildCounter()
                       .Name("grail_actor_tokens_generated_total")
                       .Help("Response tokens generated.")
                       .Register(registry)
                       .Add({});
    auto& samples = prometheus::BuildCounter()
                        .Name("grail_actor_samples_generated_total")
                        .Help("Samples generated.")
                        .Register(registry)
                        .Add({});
    auto& prefix_hits = prometheus::BuildCounter()
                            .Name("grail_actor_prefix_cache_hits_total")
                            .Help("Samples whose prompt KV cache was copied from a shared prefill.")
                            .Register(registry)
                            .Add({});
    auto& occupancy = prometheus::BuildHistogram()
                          .Name("grail_actor_batch_occupancy_ratio")
                          .Help("Per Generate call: mean fraction of KV-cache slots decoding per step.")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{0.1, 0.25, 0.5, 0.75, 0.9, 1.0});
    auto& version = prometheus::BuildGauge()
                        .Name("grail_actor_weights_version")
                        .Help("Policy version being served (-1 before the first weights).")
                        .Register(registry)
                        .Add({});
    version.Set(-1);
    grail::actor::RolloutEngineOptions options;
    options.on_generate = [&tokens, &samples, &prefix_hits, &occupancy](const grail::actor::RolloutStats& s) {
      tokens.Increment(static_cast<double>(s.tokens));
      samples.Increment(static_cast<double>(s.samples));
      prefix_hits.Increment(static_cast<double>(s.prefix_reuses));
      occupancy.Observe(s.batch_occupancy);
    };
    options.on_weights = [&version](int64_t v) { version.Set(static_cast<double>(v)); };
    options.num_threads = absl::GetFlag(FLAGS_threads);
    options.max_rows_per_request = absl::GetFlag(FLAGS_max_rows_per_request);
    options.max_batch_rows = absl::GetFlag(FLAGS_max_batch_rows);
    options.pack_weights = absl::GetFlag(FLAGS_pack_weights);
    options.share_prefixes = absl::GetFlag(FLAGS_share_prefixes);
    auto engine = grail::actor::RolloutEngine::Create(options);
    if (!engine.ok()) return engine.status();
    std::shared_ptr<grail::actor::RolloutEngine> shared = std::move(*engine);
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::actor::ActorServiceImpl>(env.auth, shared.get()));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
