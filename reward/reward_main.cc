// grail-reward: verifiable rewards and reward-model scores.

#include "common/service_main.h"
#include "reward/reward_model.h"
#include "reward/reward_scorer.h"
#include "reward/reward_service_impl.h"

int main(int argc, char** argv) {
  grail::ServiceMainSpec spec;
  spec.binary = "grail-reward";
  spec.component = "reward";
  spec.usage =
      "grail-reward: reward scorer (verifiers and reward models).\n"
      "Usage: grail-reward [--listen=HOST:PORT] [--metrics_listen=HOST:PORT]";
  spec.make_services = [](prometheus::Registry&) -> absl::StatusOr<grail::ServiceBundle> {
    std::shared_ptr<grail::reward::RewardModel> rm = grail::reward::NewTorchRewardModel();
    auto scorer = grail::reward::RewardScorer::Create({}, rm.get());
    if (!scorer.ok()) return scorer.status();
    std::shared_ptr<grail::reward::RewardScorer> shared = std::move(*scorer);
    grail::ServiceBundle bundle;
    bundle.keep_alive.push_back(rm);
    bundle.services.push_back(std::make_unique<grail::reward::RewardServiceImpl>(shared.get()));
    bundle.keep_alive.push_back(shared);
    return bundle;
  };
  return grail::ServiceMain(argc, argv, spec);
}
