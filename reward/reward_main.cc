// grail-reward: verifiable rewards and reward-model scores.

#include "absl/flags/flag.h"
#include "common/service_main.h"
#include "prometheus/counter.h"
#include "reward/reward_model.h"
#include "reward/reward_scorer.h"
#include "reward/reward_service_impl.h"

ABSL_FLAG(std::string, data_root, ".", "Tokenizer directories that reward models name resolve under this directory");

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-reward";
  spec.component = "reward";
  spec.usage =
      "grail-reward: reward scorer (verifiers and reward models).\n"
      "Usage: grail-reward [--listen=HOST:PORT] [--metrics_listen=HOST:PORT] [--data_root=DIR]";
  spec.make_services = [](prometheus::Registry& registry, const grail::ServiceEnv& env) -> absl::StatusOr<grail::ServiceBundle> {
    auto& scores = prometheus::BuildCounter()
                       .Name("grail_reward_scores_total")
                       .Help("Items scored by verifier and outcome (correct, incorrect, failed).")
                       .Register(registry);
    auto& failures = prometheus::BuildCounter()
                         .Name("grail_reward_failures_total")
                         .Help("Items a verifier could not score, by verifier.")
                         .Register(registry);
    for (const char* v : {"math", "format", "ifeval", "rm", "other"}) failures.Add({{"verifier", v}});
    auto on_scored = [&scores, &failures](const grail::v1::ScoreRequest& req, const grail::v1::ScoreResponse& resp) {
      for (int i = 0; i < resp.scores_size() && i < req.items_size(); ++i) {
        // Bounded label values: the verifiers the scorer knows, everything else "other".
        std::string v = req.items(i).verifier().empty() ? "math" : req.items(i).verifier();
        if (v != "math" && v != "format" && v != "ifeval" && v != "rm") v = "other";
        const auto& s = resp.scores(i);
        scores.Add({{"verifier", v}, {"outcome", s.failed() ? "failed" : s.correct() ? "correct" : "incorrect"}})
            .Increment();
        if (s.failed()) failures.Add({{"verifier", v}}).Increment();
      }
    };
    std::shared_ptr<grail::reward::RewardModel> rm = grail::reward::NewTorchRewardModel(absl::GetFlag(FLAGS_data_root));
    auto scorer = grail::reward::RewardScorer::Create({}, rm.get());
    if (!scorer.ok()) return scorer.status();
    std::shared_ptr<grail::reward::RewardScorer> shared = std::move(*scorer);
    grail::ServiceBundle bundle;
    bundle.keep_alive.push_back(rm);
    bundle.services.push_back(std::make_unique<grail::reward::RewardServiceImpl>(env.auth, shared.get(), on_scored));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
