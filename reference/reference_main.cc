// grail-reference: per-token log-probs under a frozen reference model.

#include "absl/flags/flag.h"
#include "common/service_main.h"
#include "reference/reference_scorer.h"
#include "reference/reference_service_impl.h"

ABSL_FLAG(int, threads, 1, "LibTorch intra-op threads used for scoring");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-reference";
  spec.component = "reference";
  spec.usage =
      "grail-reference: reference log-prob scorer (frozen model, batched).\n"
      "Usage: grail-reference [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--threads=N]";
  spec.make_services = [](prometheus::Registry&, const grail::ServiceEnv& env) -> absl::StatusOr<grail::ServiceBundle> {
    grail::reference::ReferenceScorerOptions options;
    options.num_threads = absl::GetFlag(FLAGS_threads);
    auto scorer = grail::reference::ReferenceScorer::Create(options);
    if (!scorer.ok()) return scorer.status();
    std::shared_ptr<grail::reference::ReferenceScorer> shared = std::move(*scorer);
    grail::ServiceBundle bundle;
    bundle.services.push_back(std::make_unique<grail::reference::ReferenceServiceImpl>(env.auth, shared.get()));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
