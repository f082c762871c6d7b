#include "learner/train_settings.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "algo/objectives.h"
#include "algo/run_spec.h"
#include "common/status_macros.h"

namespace grail::learner {

absl::StatusOr<TrainSettings> SettingsFromSpec(const grail::v1::RunSpec& received) {
  // The learner takes specs from any authenticated client: bounds and finiteness first, then
  // the same defaults every process uses.
  RETURN_IF_ERROR(algo::CheckSpecLimits(received));
  grail::v1::RunSpec spec = received;
  algo::ResolveDefaults(&spec);
  TrainSettings s;
  if (!spec.model().dtype().empty() && spec.model().dtype() != "float32" && spec.model().dtype() != "bfloat16") {
    return absl::InvalidArgumentError(absl::StrCat("model.dtype: '", spec.model().dtype(), "' is not float32 or bfloat16"));
  }
  s.bf16_weights = spec.model().dtype() == "bfloat16";
  s.preference = spec.preference();
  s.tokenizer = spec.model().tokenizer();
  const auto& t = spec.trainer();
  const auto& a = spec.algorithm();
  s.learning_rate = t.learning_rate();
  s.sft_learning_rate = t.sft_learning_rate();
  s.sft_steps = t.sft_steps();
  s.sft_warmup_steps = t.sft_warmup_steps();
  if (!t.sft_lr_schedule().empty()) s.sft_schedule = t.sft_lr_schedule();
  s.sft_grad_accumulation = std::max(1, t.sft_grad_accumulation());
  s.gradient_checkpointing = t.gradient_checkpointing();
  s.weight_decay = t.weight_decay();
  s.grad_clip = t.grad_clip();
  s.warmup_steps = t.warmup_steps();
  s.cosine = t.lr_schedule() == "cosine";
  s.min_lr_ratio = t.min_lr_ratio();
  s.total_steps = t.total_steps();
  if (spec.sampling().temperature() > 0) s.temperature = spec.sampling().temperature();
  s.ppo_epochs = t.ppo_epochs();
  s.mini_batches = t.mini_batches();
  s.clip.clip_ratio_low = a.clip_ratio_low();
  s.clip.clip_ratio_high = a.clip_ratio_high();
  s.clip.clip_ratio_c = a.clip_ratio_c();
  s.kl_coef = a.kl_coef();
  s.entropy_coef = a.entropy_coef();
  // Enum fields arrive as numbers: one without a name is refused, never taken for a default.
  for (const auto& [field, name] : {std::pair<const char*, std::string>{"algorithm.policy_loss", algo::SpecName(a.policy_loss())},
                                    {"algorithm.loss_agg_mode", algo::SpecName(a.loss_agg_mode())},
                                    {"algorithm.kl_estimator", algo::SpecName(a.kl_estimator())}}) {
    if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": not a known value"));
  }
  ASSIGN_OR_RETURN(s.policy_loss, ParsePolicyLoss(algo::SpecName(a.policy_loss())));
  ASSIGN_OR_RETURN(s.loss_agg, ParseLossAgg(algo::SpecName(a.loss_agg_mode())));
  ASSIGN_OR_RETURN(s.kl, ParseKl(algo::SpecName(a.kl_estimator())));
  const auto& c = spec.critic();
  s.critic = c.enabled();
  if (!c.init().empty() && c.init() != "policy" && c.init() != "random") {
    return absl::InvalidArgumentError(absl::StrCat("critic.init: '", c.init().substr(0, 64), "' is not policy or random"));
  }
  s.critic_from_policy = c.init() != "random";
  s.critic_learning_rate = c.learning_rate() > 0 ? c.learning_rate() : s.learning_rate;
  if (c.value_clip() > 0) s.cliprange_value = c.value_clip();
  s.critic_seed = spec.model().init_seed() + 1;
  s.tis_cap = a.tis_cap();
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

double SftLearningRate(const TrainSettings& s, int64_t step) {
  const double warm = s.sft_warmup_steps > 0 ? std::min(1.0, static_cast<double>(step) / s.sft_warmup_steps) : 1.0;
  double decay = 1.0;
  if (s.sft_schedule != "constant" && s.sft_steps > s.sft_warmup_steps && step > s.sft_warmup_steps) {
    const double progress =
        std::min(1.0, static_cast<double>(step - s.sft_warmup_steps) / (s.sft_steps - s.sft_warmup_steps));
    decay = s.sft_schedule == "linear" ? 1.0 - progress
                                       : s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress));
  }
  return s.sft_learning_rate * warm * decay;
}

}  // namespace grail::learner
