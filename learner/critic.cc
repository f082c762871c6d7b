#include "learner/critic.h"

#include "common/status_macros.h"
#include "learner/trainable.h"
#include "learner/experience_tensors.h"

namespace grail::learner {

absl::StatusOr<std::unique_ptr<Critic>> Critic::Create(model::CausalLm& policy, const TrainSettings& settings) {
  model::ModelConfig config = policy->config();
  config.value_head = true;
  auto critic = std::make_shared<model::CausalLm>(config);
  (*critic)->InitWeights(settings.critic_seed);
  (*critic)->SetGradientCheckpointing(settings.gradient_checkpointing);
  if (settings.critic_from_policy) {
    CopyMatchingParameters(policy, *critic);
  } else {
    // A fresh critic trains what the policy trains (its adapters or selected layers), plus
    // its value head.
    auto source = policy->named_parameters();
    for (auto& item : (*critic)->named_parameters()) {
      if (const torch::Tensor* from = source.find(item.key()); from != nullptr) {
        item.value().set_requires_grad(from->requires_grad());
      }
    }
  }
  return std::unique_ptr<Critic>(new Critic(std::move(critic), settings));
}

Critic::Critic(std::shared_ptr<model::CausalLm> model, const TrainSettings& settings)
    : model_(std::move(model)),
      settings_(settings),
      optimizer_(std::make_unique<torch::optim::AdamW>(
          TrainableParameters(*model_), torch::optim::AdamWOptions(settings.critic_learning_rate).weight_decay(0.0))) {}

torch::Tensor Critic::Values(const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  return AlignedValues(*model_, ids);
}

absl::Status Critic::Step(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& returns,
                          const torch::Tensor& old_values, const ShardWeights& shard, GroupStep& group,
                          int64_t bucket_bytes, double* allreduce_seconds, grail::v1::TrainStepResponse* response) {
  auto& c = *model_;
  c->train();
  optimizer_->zero_grad();
  auto vpreds = AlignedValues(c, ids);
  ValueLossResult vl = ValueLoss(vpreds, returns, old_values, mask, settings_.cliprange_value, settings_.loss_agg);
  auto value_loss = vl.loss * shard.For(settings_.loss_agg);
  value_loss.backward();
  RETURN_IF_ERROR(
      group.Check(AllReduceGradients(group.collective(), TrainableParameters(c), bucket_bytes, allreduce_seconds)));
  torch::nn::utils::clip_grad_norm_(TrainableParameters(c), settings_.grad_clip);
  optimizer_->step();
  torch::NoGradGuard no_grad;
  auto residual = returns - vpreds.detach();
  auto var = [&](const torch::Tensor& x) {
    auto mean = MaskedMean(x, mask);
    return MaskedMean((x - mean).square(), mask);
  };
  // Explained variance: the token-weighted mean of the ranks' own (exact with one rank).
  const double var_returns = var(returns).item<double>();
  const double explained = var_returns > 0 ? 1.0 - var(residual).item<double>() / var_returns : 0.0;
  ASSIGN_OR_RETURN(std::vector<double> summed,
                   group.Sum({value_loss.item<double>(), vl.clipfrac * shard.tokens, explained * shard.tokens}));
  auto& metrics = *response->mutable_metrics();
  metrics["value_loss"] = summed[0];
  metrics["vf_clipfrac"] = summed[1];
  metrics["explained_variance"] = summed[2];
  return absl::OkStatus();
}

}  // namespace grail::learner
