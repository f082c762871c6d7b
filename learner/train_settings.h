#ifndef GRAIL_LEARNER_TRAIN_SETTINGS_H_
#define GRAIL_LEARNER_TRAIN_SETTINGS_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "learner/losses.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::learner {

// What the trainer takes from a run spec, with the documented defaults filled in.
struct TrainSettings {
  grail::v1::PreferenceSpec preference;  // objective UNSPECIFIED: an RL run
  std::string tokenizer = "char";        // model.tokenizer
  bool bf16_weights = false;  // model.dtype bfloat16: weights leave the learner rounded to bf16
  double learning_rate = 1e-4;
  double sft_learning_rate = 1e-3;
  int sft_steps = 0;
  int sft_warmup_steps = 0;
  std::string sft_schedule = "constant";  // constant, linear, cosine
  int sft_grad_accumulation = 1;
  bool gradient_checkpointing = false;
  double weight_decay = 0.0;
  double grad_clip = 1.0;
  int warmup_steps = 0;
  bool cosine = false;       // RL rate decays along a cosine after the warm-up
  double min_lr_ratio = 0.1;
  int total_steps = 0;
  int ppo_epochs = 1;
  int mini_batches = 1;
  PolicyLossKind policy_loss = PolicyLossKind::kPpo;
  LossAgg loss_agg = LossAgg::kTokenMean;
  KlSpec kl;
  ClipOptions clip;
  double kl_coef = 0.0;
  double entropy_coef = 0.0;
  bool critic = false;
  bool critic_from_policy = true;
  double critic_learning_rate = 1e-4;
  double cliprange_value = 0.5;
  uint64_t critic_seed = 1;
  double tis_cap = 0;        // > 0: truncated importance sampling against the behaviour log-probs
  double temperature = 1.0;  // the rollout sampling temperature (greedy counts as 1)
};

// The settings of a run spec as received (resolved with algo::ResolveDefaults; bounds
// checked with algo::CheckSpecLimits). INVALID_ARGUMENT naming the field otherwise.
absl::StatusOr<TrainSettings> SettingsFromSpec(const grail::v1::RunSpec& spec);

// The RL learning rate of update `rl_step` (1-based): linear warm-up over warmup_steps, then
// constant or a cosine decay to min_lr_ratio at total_steps.
double RlLearningRate(const TrainSettings& settings, int64_t rl_step);
// The supervised warm-up's rate at step `sft_step` (1-based): linear warm-up over
// sft_warmup_steps, then constant, linear to 0 at sft_steps, or cosine to min_lr_ratio.
double SftLearningRate(const TrainSettings& settings, int64_t sft_step);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_TRAIN_SETTINGS_H_
