#include "learner/train_settings.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace grail::learner {

absl::StatusOr<TrainSettings> SettingsFromSpec(const grail::v1::RunSpec& spec) {
  TrainSettings s;
  const auto& t = spec.trainer();
  const auto& a = spec.algorithm();
  if (t.learning_rate() > 0) s.learning_rate = t.learning_rate();
  if (t.sft_learning_rate() > 0) s.sft_learning_rate = t.sft_learning_rate();
  s.weight_decay = t.weight_decay();
  if (t.grad_clip() > 0) s.grad_clip = t.grad_clip();
  s.warmup_steps = t.warmup_steps();
  if (!t.lr_schedule().empty() && t.lr_schedule() != "constant" && t.lr_schedule() != "cosine") {
    return absl::InvalidArgumentError("trainer.lr_schedule: must be constant or cosine");
  }
  s.cosine = t.lr_schedule() == "cosine";
  if (t.min_lr_ratio() > 0) s.min_lr_ratio = t.min_lr_ratio();
  s.total_steps = t.total_steps();
  if (spec.sampling().temperature() > 0) s.temperature = spec.sampling().temperature();
  if (t.ppo_epochs() > 0) s.ppo_epochs = t.ppo_epochs();
  if (t.mini_batches() > 0) s.mini_batches = t.mini_batches();
  if (a.clip_ratio_low() > 0) s.clip.clip_ratio_low = a.clip_ratio_low();
  if (a.clip_ratio_high() > 0) s.clip.clip_ratio_high = a.clip_ratio_high();
  if (a.clip_ratio_c() > 0) s.clip.clip_ratio_c = a.clip_ratio_c();
  s.kl_coef = a.kl_coef();
  s.entropy_coef = a.entropy_coef();
  ASSIGN_OR_RETURN(s.policy_loss, ParsePolicyLoss(a.policy_loss()));
  ASSIGN_OR_RETURN(s.loss_agg, ParseLossAgg(a.loss_agg_mode()));
  ASSIGN_OR_RETURN(s.kl, ParseKl(a.kl_estimator()));
  const auto& c = spec.critic();
  s.critic = c.enabled();
  if (!c.init().empty() && c.init() != "policy" && c.init() != "random") {
    return absl::InvalidArgumentError(absl::StrCat("critic.init: '", c.init(), "' is not policy or random"));
  }
  s.critic_from_policy = c.init() != "random";
  s.critic_learning_rate = c.learning_rate() > 0 ? c.learning_rate() : s.learning_rate;
  if (c.value_clip() > 0) s.cliprange_value = c.value_clip();
  s.critic_seed = spec.model().init_seed() + 1;
  if (a.tis_cap() < 0) return absl::InvalidArgumentError("algorithm.tis_cap: must be >= 0");
  s.tis_cap = a.tis_cap() > 0 ? a.tis_cap() : (spec.trainer().max_staleness() > 0 ? 2.0 : 0.0);
  return s;
}

double RlLearningRate(const TrainSettings& s, int64_t rl_step) {
  const double warm = s.warmup_steps > 0 ? std::min(1.0, static_cast<double>(rl_step) / s.warmup_steps) : 1.0;
  double decay = 1.0;
  if (s.cosine && s.total_steps > s.warmup_steps && rl_step > s.warmup_steps) {
    const double progress =
        std::min(1.0, static_cast<double>(rl_step - s.warmup_steps) / (s.total_steps - s.warmup_steps));
    decay = s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  return s.learning_rate * warm * decay;
}

}  // namespace grail::learner
