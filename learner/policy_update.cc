#include "learner/policy_update.h"

#include <algorithm>

#include "common/status_macros.h"
#include "learner/trainable.h"
#include "learner/experience_tensors.h"

namespace grail::learner {

TisStats ApplyTis(double tis_cap, const torch::Tensor& current, const torch::Tensor& mask, const ShardWeights& shard,
                  torch::Tensor* old_lp, torch::Tensor* adv) {
  torch::NoGradGuard no_grad;
  auto ratio = (current - *old_lp).clamp(-20.0, 20.0).exp();
  auto w = ratio.clamp_max(tis_cap) * mask;
  *adv = *adv * w;
  *old_lp = current.detach();
  TisStats t;
  t.weight = shard.tokens * MaskedMean(w, mask).item<double>();
  t.capped = shard.tokens * MaskedMean((ratio > tis_cap).to(mask.scalar_type()), mask).item<double>();
  return t;
}

absl::StatusOr<std::map<std::string, double>> UpdatePolicy(model::CausalLm& m, torch::optim::AdamW& optimizer,
                                                           const TrainSettings& settings, int64_t rl_step,
                                                           GroupStep& group, int64_t bucket_bytes, PolicyBatch batch,
                                                           double* allreduce_seconds, TisStats* tis) {
  const double lr = RlLearningRate(settings, rl_step);
  for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  m->train();
  const torch::Tensor& ids = batch.ids;
  const torch::Tensor& mask = batch.mask;
  const torch::Tensor& ref_lp = batch.ref_log_probs;
  torch::Tensor& old_lp = batch.old_log_probs;
  torch::Tensor& adv = batch.advantages;
  const int64_t B = ids.size(0);
  const int64_t mb = static_cast<int64_t>(batch.slices.size());
  // Sequence-level objectives average over rows whatever the aggregation mode.
  const bool row_objective =
      settings.policy_loss == PolicyLossKind::kGspo || settings.policy_loss == PolicyLossKind::kGmpo;
  // Weighted sums over this rank's slices; summed over ranks at the end.
  double loss_sum = 0, clip_sum = 0, clip_low_sum = 0, kl_sum = 0, ent_sum = 0, ref_kl_sum = 0;
  double grad_sum = 0;  // the same on every rank (norm of the summed gradient)
  int updates = 0;
  for (int epoch = 0; epoch < settings.ppo_epochs; ++epoch) {
    for (int64_t k = 0; k < mb; ++k) {
      const auto& [shard, global_rows] = batch.slices[k];
      if (global_rows == 0) continue;
      const int64_t begin = B * k / mb, end = B * (k + 1) / mb;
      optimizer.zero_grad();
      if (end > begin) {
        auto sl = [&](const torch::Tensor& t) { return t.narrow(0, begin, end - begin); };
        const double w_agg = shard.For(settings.loss_agg);
        const double w_pg = row_objective ? shard.rows : w_agg;
        torch::Tensor entropy;
        auto lp = AlignedLogProbs(m, sl(ids), &entropy, settings.temperature, nullptr,
                                  /*entropy_grad=*/settings.entropy_coef > 0);
        if (tis != nullptr && epoch == 0) *tis = ApplyTis(settings.tis_cap, lp.detach(), mask, shard, &old_lp, &adv);
        PolicyLossResult pg =
            PolicyLoss(settings.policy_loss, sl(old_lp), lp, sl(adv), sl(mask), settings.loss_agg, settings.clip);
        auto loss = pg.loss * w_pg;
        if (settings.entropy_coef > 0) {
          loss = loss - settings.entropy_coef * w_agg * AggregateLoss(entropy, sl(mask), settings.loss_agg);
        }
        if (ref_lp.defined()) {
          auto kl = AggregateLoss(KlPenalty(lp, sl(ref_lp), settings.kl), sl(mask), settings.loss_agg);
          if (settings.kl_coef > 0) loss = loss + settings.kl_coef * w_agg * kl;
          ref_kl_sum += w_agg * kl.item<double>();
        }
        loss.backward();
        loss_sum += loss.item<double>();
        clip_sum += shard.tokens * pg.clipfrac;
        clip_low_sum += shard.tokens * pg.clipfrac_lower;
        kl_sum += shard.tokens * pg.ppo_kl;
        ent_sum += shard.tokens * MaskedMean(entropy.detach(), sl(mask)).item<double>();
      }
      RETURN_IF_ERROR(
          group.Check(AllReduceGradients(group.collective(), TrainableParameters(m), bucket_bytes, allreduce_seconds)));
      grad_sum += torch::nn::utils::clip_grad_norm_(TrainableParameters(m), settings.grad_clip);
      optimizer.step();
      ++updates;
    }
  }
  ASSIGN_OR_RETURN(std::vector<double> sums, group.Sum({loss_sum, clip_sum, clip_low_sum, kl_sum, ent_sum, ref_kl_sum}));
  std::map<std::string, double> metrics;
  const double n = std::max(1, updates);
  metrics["loss"] = sums[0] / n;
  metrics["pg_clipfrac"] = sums[1] / n;
  metrics["pg_clipfrac_lower"] = sums[2] / n;
  metrics["ppo_kl"] = sums[3] / n;
  metrics["entropy"] = sums[4] / n;
  metrics["grad_norm"] = grad_sum / n;
  metrics["learning_rate"] = lr;
  if (ref_lp.defined()) metrics["kl"] = sums[5] / n;
  return metrics;
}

}  // namespace grail::learner
