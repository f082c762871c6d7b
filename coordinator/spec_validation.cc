#include "coordinator/spec_validation.h"

#include <cmath>
#include <set>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "model/model_config.h"

namespace grail::coordinator {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

const std::set<std::string>& GroupRelativeEstimators() {
  static const auto* kSet = new std::set<std::string>{"grpo", "dr_grpo", "rloo", "gfpo"};
  return *kSet;
}

// Every float or double anywhere in the spec must be finite: a NaN compares false with every
// bound below and would otherwise be taken for "unset" and replaced by a default.
absl::Status CheckFinite(const google::protobuf::Message& m, const std::string& prefix) {
  using google::protobuf::FieldDescriptor;
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const std::string path = prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
    if (f->is_repeated()) continue;  // no repeated floating-point fields in a run spec
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_FLOAT:
        if (!std::isfinite(r->GetFloat(m, f))) return Bad(path, "must be a finite number");
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        if (!std::isfinite(r->GetDouble(m, f))) return Bad(path, "must be a finite number");
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (r->HasField(m, f)) {
          absl::Status s = CheckFinite(r->GetMessage(m, f), path);
          if (!s.ok()) return s;
        }
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status AtMost(absl::string_view field, int64_t value, int64_t limit) {
  if (value > limit) return Bad(field, absl::StrCat(value, " is above the limit of ", limit));
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSpecLimits(const grail::v1::RunSpec& spec) {
  RETURN_IF_ERROR(CheckFinite(spec, ""));
  const auto& c = spec.model().config();
  const auto& d = spec.dataset();
  const auto& a = spec.algorithm();
  const auto& t = spec.trainer();
  const auto& s = spec.sampling();
  const std::pair<const char*, std::pair<int64_t, int64_t>> kLimits[] = {
      {"model.config.vocab_size", {c.vocab_size(), SpecLimits::kMaxVocab}},
      {"model.config.hidden_size", {c.hidden_size(), SpecLimits::kMaxHidden}},
      {"model.config.intermediate_size", {c.intermediate_size(), 4 * SpecLimits::kMaxHidden}},
      {"model.config.num_hidden_layers", {c.num_hidden_layers(), SpecLimits::kMaxLayers}},
      {"model.config.num_attention_heads", {c.num_attention_heads(), SpecLimits::kMaxHeads}},
      {"model.config.num_key_value_heads", {c.num_key_value_heads(), SpecLimits::kMaxHeads}},
      {"model.config.max_position_embeddings", {c.max_position_embeddings(), SpecLimits::kMaxContext}},
      {"dataset.heldout_size", {d.heldout_size(), SpecLimits::kMaxDatasetRows}},
      {"dataset.train_size", {d.train_size(), SpecLimits::kMaxDatasetRows}},
      {"dataset.max_digits", {d.max_digits(), SpecLimits::kMaxDigits}},
      {"sampling.max_new_tokens", {s.max_new_tokens(), SpecLimits::kMaxContext}},
      {"sampling.top_k", {s.top_k(), SpecLimits::kMaxVocab}},
      {"algorithm.group_size", {a.group_size(), SpecLimits::kMaxGroupSize}},
      {"algorithm.gfpo_k", {a.gfpo_k(), SpecLimits::kMaxGroupSize}},
      {"trainer.total_steps", {t.total_steps(), SpecLimits::kMaxSteps}},
      {"trainer.sft_steps", {t.sft_steps(), SpecLimits::kMaxSteps}},
      {"trainer.warmup_steps", {t.warmup_steps(), SpecLimits::kMaxSteps}},
      {"trainer.prompts_per_step", {t.prompts_per_step(), SpecLimits::kMaxPromptsPerStep}},
      {"trainer.sft_batch_size", {t.sft_batch_size(), SpecLimits::kMaxSamplesPerStep}},
      {"trainer.ppo_epochs", {t.ppo_epochs(), SpecLimits::kMaxEpochs}},
      {"trainer.mini_batches", {t.mini_batches(), SpecLimits::kMaxSamplesPerStep}},
      {"trainer.max_sampling_rounds", {t.max_sampling_rounds(), SpecLimits::kMaxSamplingRounds}},
      {"trainer.eval_size", {t.eval_size(), SpecLimits::kMaxDatasetRows}},
      {"algorithm.kl_horizon", {a.kl_horizon(), int64_t{1} << 30}},
  };
  for (const auto& [field, vl] : kLimits) {
    RETURN_IF_ERROR(AtMost(field, vl.first, vl.second));
    if (vl.first < 0) return Bad(field, absl::StrCat("must be >= 0, got ", vl.first));
  }
  for (auto [field, v] : {std::pair<const char*, int64_t>{"trainer.warmup_steps", t.warmup_steps()},
                          {"trainer.checkpoint_every", t.checkpoint_every()},
                          {"trainer.eval_every", t.eval_every()}}) {
    if (v < 0) return Bad(field, absl::StrCat("must be >= 0, got ", v));
  }
  // Products that size one step's memory.
  const int64_t samples = int64_t{t.prompts_per_step()} * std::max(1, a.group_size());
  if (samples > SpecLimits::kMaxSamplesPerStep) {
    return Bad("trainer.prompts_per_step",
               absl::StrCat(t.prompts_per_step(), " prompts x algorithm.group_size ", a.group_size(), " = ",
                            samples, " samples per step, above the limit of ", SpecLimits::kMaxSamplesPerStep));
  }
  if (samples * std::max(1, s.max_new_tokens()) > SpecLimits::kMaxTokensPerStep) {
    return Bad("sampling.max_new_tokens",
               absl::StrCat(s.max_new_tokens(), " tokens x ", samples, " samples per step is above the limit of ",
                            SpecLimits::kMaxTokensPerStep, " generated tokens per step"));
  }
  if (spec.model().has_config()) {
    const double h = c.hidden_size(), layers = c.num_hidden_layers();
    const double params = c.vocab_size() * h * 2 + layers * (4 * h * h + 3 * h * c.intermediate_size());
    if (params > SpecLimits::kMaxParameters) {
      return Bad("model.config", absl::StrFormat("about %.3g parameters, above the limit of %.3g for a model "
                                                 "created from a config (load larger ones with model.path)",
                                                 params, SpecLimits::kMaxParameters));
    }
  }
  for (const auto& [field, text, limit] : std::initializer_list<std::tuple<const char*, const std::string*, size_t>>{
           {"name", &spec.name(), 256},
           {"checkpoint_dir", &spec.checkpoint_dir(), 1024},
           {"model.path", &spec.model().path(), 4096},
           {"model.tokenizer", &spec.model().tokenizer(), 4096},
           {"dataset.jsonl_path", &d.jsonl_path(), 4096},
           {"dataset.builtin", &d.builtin(), 64}}) {
    if (text->size() > limit) {
      return Bad(field, absl::StrCat("is ", text->size(), " bytes long, above the limit of ", limit));
    }
  }
  if (s.temperature() > 100) return Bad("sampling.temperature", "must be <= 100");
  if (t.sft_target_accuracy() < 0 || t.sft_target_accuracy() > 1) {
    return Bad("trainer.sft_target_accuracy", "must be in [0, 1]");
  }
  if (t.sft_target_accuracy() > 0 && t.sft_steps() <= 0) {
    return Bad("trainer.sft_target_accuracy", "needs trainer.sft_steps, the most the warm-up may take");
  }
  if (t.sft_eval_every() < 0) return Bad("trainer.sft_eval_every", "must be >= 0");
  if (!t.lr_schedule().empty() && t.lr_schedule() != "constant" && t.lr_schedule() != "cosine") {
    return Bad("trainer.lr_schedule", absl::StrCat("'", t.lr_schedule().substr(0, 64), "' is not constant or cosine"));
  }
  if (t.min_lr_ratio() < 0 || t.min_lr_ratio() > 1) return Bad("trainer.min_lr_ratio", "must be in [0, 1]");
  if (t.learning_rate() > 10) return Bad("trainer.learning_rate", "must be <= 10");
  if (t.sft_learning_rate() < 0 || t.sft_learning_rate() > 10) return Bad("trainer.sft_learning_rate", "must be in [0, 10]");
  if (t.weight_decay() < 0) return Bad("trainer.weight_decay", "must be >= 0");
  if (t.grad_clip() < 0) return Bad("trainer.grad_clip", "must be >= 0");
  return absl::OkStatus();
}

absl::Status ValidateRunSpec(const grail::v1::RunSpec& spec) {
  RETURN_IF_ERROR(CheckSpecLimits(spec));
  const auto& m = spec.model();
  if (m.path().empty() && !m.has_config()) {
    return Bad("model", "set either model.path (a checkpoint directory) or model.config");
  }
  if (!m.path().empty() && m.has_config()) {
    return Bad("model", "set only one of model.path and model.config");
  }
  if (m.has_config()) {
    absl::Status s = model::ModelConfigFromProto(m.config()).Validate();
    if (!s.ok()) return Bad("model.config", s.message());
  }
  if (!m.tokenizer().empty() && m.tokenizer() != "char") {
    return Bad("model.tokenizer", absl::StrCat("'", m.tokenizer(), "' is not supported (use char)"));
  }

  const auto& d = spec.dataset();
  if (d.builtin().empty() == d.jsonl_path().empty()) {
    return Bad("dataset", "set exactly one of dataset.builtin and dataset.jsonl_path");
  }
  if (!d.builtin().empty() && d.builtin() != "arithmetic") {
    return Bad("dataset.builtin", absl::StrCat("unknown task '", d.builtin(), "' (known: arithmetic)"));
  }
  if (d.heldout_size() < 0) return Bad("dataset.heldout_size", "must be >= 0");

  const auto& s = spec.sampling();
  if (s.temperature() < 0) return Bad("sampling.temperature", "must be >= 0");
  if (s.top_p() < 0 || s.top_p() > 1) return Bad("sampling.top_p", "must be in [0, 1]");
  if (s.top_k() < 0) return Bad("sampling.top_k", "must be >= 0");
  if (s.max_new_tokens() <= 0) return Bad("sampling.max_new_tokens", "must be > 0");

  const auto& a = spec.algorithm();
  const std::string estimator = a.advantage_estimator().empty() ? "grpo" : a.advantage_estimator();
  static const auto* kKnown =
      new std::set<std::string>{"grpo", "dr_grpo", "rloo", "reinforce_pp", "gfpo", "gae"};
  if (!kKnown->count(estimator)) {
    return Bad("algorithm.advantage_estimator", absl::StrCat("unknown estimator '", estimator, "'"));
  }
  const auto& critic = spec.critic();
  if (estimator == "gae" && !critic.enabled()) {
    return Bad("algorithm.advantage_estimator", "gae needs a critic (set critic.enabled: true)");
  }
  if (critic.enabled() && estimator != "gae") {
    return Bad("critic.enabled", absl::StrCat("only the gae estimator uses a critic, not ", estimator,
                                              " (algorithm.advantage_estimator)"));
  }
  if (!critic.init().empty() && critic.init() != "policy" && critic.init() != "random") {
    return Bad("critic.init", absl::StrCat("'", critic.init(), "' is not policy or random"));
  }
  if (critic.learning_rate() < 0) return Bad("critic.learning_rate", "must be >= 0");
  if (critic.value_clip() < 0) return Bad("critic.value_clip", "must be >= 0");
  if (spec.trainer().value_pretrain_steps() < 0) return Bad("trainer.value_pretrain_steps", "must be >= 0");
  if (spec.trainer().value_pretrain_steps() > 0 && !critic.enabled()) {
    return Bad("trainer.value_pretrain_steps", "needs a critic (critic.enabled: true, advantage_estimator: gae)");
  }
  if (spec.trainer().value_pretrain_steps() >= spec.trainer().total_steps() && spec.trainer().value_pretrain_steps() > 0) {
    return Bad("trainer.value_pretrain_steps", "leaves no step in which the policy moves (trainer.total_steps)");
  }
  if ((a.lambda_actor() < 0 || a.lambda_actor() > 1) ) return Bad("algorithm.lambda_actor", "must be in [0, 1]");
  if ((a.lambda_critic() < 0 || a.lambda_critic() > 1)) return Bad("algorithm.lambda_critic", "must be in [0, 1]");
  static const auto* kLosses = new std::set<std::string>{"", "ppo", "gspo", "gmpo", "cispo"};
  if (!kLosses->count(a.policy_loss())) {
    return Bad("algorithm.policy_loss", absl::StrCat("'", a.policy_loss(), "' is not one of ppo, gspo, gmpo, cispo"));
  }
  static const auto* kAggs = new std::set<std::string>{"", "token-mean", "seq-mean-token-sum",
                                                       "seq-mean-token-mean", "seq-mean-token-sum-norm"};
  if (!kAggs->count(a.loss_agg_mode())) {
    return Bad("algorithm.loss_agg_mode", absl::StrCat("'", a.loss_agg_mode(), "' is not one of token-mean, "
                                                       "seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm"));
  }
  if (a.policy_loss() == "gspo" && a.loss_agg_mode() != "seq-mean-token-mean") {
    return Bad("algorithm.loss_agg_mode",
               "gspo uses a sequence-level ratio and needs seq-mean-token-mean (algorithm.policy_loss: gspo)");
  }
  static const auto* kKl = new std::set<std::string>{"", "k1", "k2", "k3", "abs", "k1+", "k2+", "k3+", "abs+"};
  if (!kKl->count(a.kl_estimator())) {
    return Bad("algorithm.kl_estimator", absl::StrCat("'", a.kl_estimator(), "' is not one of k1, k2, k3, abs (optionally with +)"));
  }
  if (a.clip_ratio_low() < 0 || a.clip_ratio_high() < 0 || a.clip_ratio_c() < 0) {
    return Bad(a.clip_ratio_low() < 0 ? "algorithm.clip_ratio_low"
               : a.clip_ratio_high() < 0 ? "algorithm.clip_ratio_high" : "algorithm.clip_ratio_c",
               "clip ratios must be >= 0");
  }
  if (a.clip_ratio_c() > 0 && a.clip_ratio_c() <= 1) {
    return Bad("algorithm.clip_ratio_c", "must be > 1 (dual clip)");
  }
  if (a.kl_coef() < 0) return Bad("algorithm.kl_coef", "must be >= 0");
  if (a.entropy_coef() < 0) return Bad("algorithm.entropy_coef", "must be >= 0");
  if (a.kl_in_reward_coef() < 0) return Bad("algorithm.kl_in_reward_coef", "must be >= 0");
  if (a.kl_target() < 0) return Bad("algorithm.kl_target", "must be >= 0");
  if (a.kl_horizon() < 0) return Bad("algorithm.kl_horizon", "must be >= 0");
  if (a.gamma() < 0 || a.gamma() > 1) return Bad("algorithm.gamma", "must be in [0, 1]");
  if (a.length_adaptive_alpha() < 0) return Bad("algorithm.length_adaptive_alpha", "must be > 0 when set");
  if (estimator == "gfpo") {
    if (a.gfpo_k() <= 0) return Bad("algorithm.gfpo_k", "must be > 0 for gfpo");
    if (a.gfpo_k() > a.group_size()) {
      return Bad("algorithm.gfpo_k", absl::StrCat(a.gfpo_k(), " is larger than algorithm.group_size ", a.group_size()));
    }
    if (!a.gfpo_metric().empty() && a.gfpo_metric() != "length" && a.gfpo_metric() != "token_efficiency") {
      return Bad("algorithm.gfpo_metric", "must be length or token_efficiency");
    }
  }
  if (GroupRelativeEstimators().count(estimator) && a.group_size() < 2) {
    return Bad("algorithm.group_size",
               absl::StrCat("must be >= 2 for ", estimator, ", got ", a.group_size()));
  }
  if (a.group_size() < 1) return Bad("algorithm.group_size", "must be >= 1");

  const auto& t = spec.trainer();
  if (t.total_steps() <= 0) return Bad("trainer.total_steps", "must be > 0");
  if (t.prompts_per_step() <= 0) return Bad("trainer.prompts_per_step", "must be > 0");
  if (t.learning_rate() < 0) return Bad("trainer.learning_rate", "must be >= 0");
  if (t.max_staleness() < 0) return Bad("trainer.max_staleness", "must be >= 0");
  if (t.max_staleness() > 16) return Bad("trainer.max_staleness", "must be <= 16");
  if (a.tis_cap() < 0) return Bad("algorithm.tis_cap", "must be >= 0");
  if (t.resume() && spec.model().path().empty()) {
    return Bad("trainer.resume", "needs model.path, a checkpoint this run wrote");
  }
  if (a.tis_cap() > 0 && a.tis_cap() < 1) return Bad("algorithm.tis_cap", "must be >= 1 (a cap below 1 shrinks on-policy tokens)");
  return absl::OkStatus();
}

}  // namespace grail::coordinator
