#include "algo/run_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "algo/objectives.h"
#include "model/model_config.h"

namespace grail::algo {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// model.peft, model.quantize and model.trainable.
absl::Status ValidatePeft(const grail::v1::ModelSpec& m) {
  const auto& p = m.peft();
  if (SpecName(p.type()).empty() && p.type() != grail::v1::PEFT_TYPE_UNSPECIFIED) {
    return Bad("model.peft.type", absl::StrCat(p.type(), " is not one of ", SpecNames(grail::v1::PeftType_descriptor())));
  }
  const bool lora = p.type() == grail::v1::PEFT_TYPE_LORA;
  if (p.num_virtual_tokens() < 0 || p.num_virtual_tokens() > 1024) {
    return Bad("model.peft.num_virtual_tokens", "must be in [1, 1024] (0 = 8)");
  }
  if (p.num_virtual_tokens() != 0 && p.type() != grail::v1::PEFT_TYPE_PROMPT_TUNING) {
    return Bad("model.peft.num_virtual_tokens", "needs model.peft.type prompt_tuning");
  }
  if (!lora && (p.r() != 0 || p.alpha() != 0 || p.dropout() != 0 || p.target_modules_size() > 0 || p.use_rslora() ||
                !p.path().empty())) {
    return Bad("model.peft.type", "the lora fields (r, alpha, dropout, target_modules, use_rslora, path) need type: lora");
  }
  if (p.r() < 0 || p.r() > 4096) return Bad("model.peft.r", "must be in [1, 4096] (0 = 8)");
  if (!(p.alpha() >= 0) || !std::isfinite(p.alpha())) return Bad("model.peft.alpha", "must be > 0 (0 = 16)");
  if (!(p.dropout() >= 0 && p.dropout() < 1)) return Bad("model.peft.dropout", "must be in [0, 1)");
  for (const auto& t : p.target_modules()) {
    if (t != "q" && t != "k" && t != "v" && t != "o" && t != "gate" && t != "up" && t != "down") {
      return Bad("model.peft.target_modules",
                 absl::StrCat("'", t.substr(0, 64), "' is not one of q, k, v, o, gate, up, down"));
    }
  }
  if (!m.quantize().empty() && m.quantize() != "nf4") {
    return Bad("model.quantize", absl::StrCat("'", m.quantize().substr(0, 64), "' is not nf4"));
  }
  if (m.quantize() == "nf4" && !lora) {
    return Bad("model.quantize", "nf4 stores a frozen base: it needs model.peft type lora (QLoRA)");
  }
  if (m.has_double_quant() && m.quantize().empty()) return Bad("model.double_quant", "needs model.quantize: nf4");
  if (m.has_trainable()) {
    const auto& t = m.trainable();
    if (p.type() != grail::v1::PEFT_TYPE_UNSPECIFIED) {
      return Bad("model.trainable", "set model.trainable or model.peft, not both (an adapter trains alone)");
    }
    if (!t.layers().empty() && t.layer_indices_size() > 0) {
      return Bad("model.trainable.layers", "set layers or layer_indices, not both");
    }
    if (!t.layers().empty() && t.layers() != "all" && t.layers() != "none") {
      int n = 0;
      if (!absl::StartsWith(t.layers(), "last:") || !absl::SimpleAtoi(t.layers().substr(5), &n) || n < 1) {
        return Bad("model.trainable.layers",
                   absl::StrCat("'", t.layers().substr(0, 64), "' is not all, none or last:N (N >= 1)"));
      }
    }
    for (int i : t.layer_indices()) {
      if (i < 0 || i >= SpecLimits::kMaxLayers) return Bad("model.trainable.layer_indices", "out of range");
    }
    if (m.has_config()) {
      for (int i : t.layer_indices()) {
        if (i >= m.config().num_hidden_layers()) {
          return Bad("model.trainable.layer_indices",
                     absl::StrCat(i, " is not a layer of a ", m.config().num_hidden_layers(), "-layer model"));
        }
      }
    }
    for (const auto& mod : t.modules()) {
      static const std::set<std::string> kModules = {"q",    "k",    "v",     "o",      "gate",
                                                     "up",   "down", "norm",  "embed",  "lm_head"};
      if (!kModules.count(mod)) {
        return Bad("model.trainable.modules",
                   absl::StrCat("'", mod.substr(0, 64), "' is not one of q, k, v, o, gate, up, down, norm, embed, lm_head"));
      }
    }
  }
  return absl::OkStatus();
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
      {"model.config.head_dim", {c.head_dim(), SpecLimits::kMaxHidden}},
      {"dataset.heldout_size", {d.heldout_size(), SpecLimits::kMaxDatasetRows}},
      {"dataset.train_size", {d.train_size(), SpecLimits::kMaxDatasetRows}},
      {"dataset.max_digits", {d.max_digits(), SpecLimits::kMaxDigits}},
      {"dataset.max_prompt_tokens", {d.max_prompt_tokens(), SpecLimits::kMaxContext}},
      {"dataset.max_response_tokens", {d.max_response_tokens(), SpecLimits::kMaxContext}},
      {"sampling.max_new_tokens", {s.max_new_tokens(), SpecLimits::kMaxContext}},
      {"sampling.top_k", {s.top_k(), SpecLimits::kMaxVocab}},
      {"algorithm.group_size", {a.group_size(), SpecLimits::kMaxGroupSize}},
      {"algorithm.gfpo_k", {a.gfpo_k(), SpecLimits::kMaxGroupSize}},
      {"trainer.total_steps", {t.total_steps(), SpecLimits::kMaxSteps}},
      {"trainer.sft_steps", {t.sft_steps(), SpecLimits::kMaxSteps}},
      {"trainer.sft_epochs", {t.sft_epochs(), SpecLimits::kMaxEpochs}},
      {"preference.sampled_pairs.prompts", {spec.preference().sampled_pairs().prompts(), SpecLimits::kMaxDatasetRows}},
      {"preference.sampled_pairs.samples", {spec.preference().sampled_pairs().samples(), SpecLimits::kMaxGroupSize}},
      {"trainer.warmup_steps", {t.warmup_steps(), SpecLimits::kMaxSteps}},
      {"trainer.prompts_per_step", {t.prompts_per_step(), SpecLimits::kMaxPromptsPerStep}},
      {"trainer.sft_batch_size", {t.sft_batch_size(), SpecLimits::kMaxSamplesPerStep}},
      {"trainer.sft_warmup_steps", {t.sft_warmup_steps(), SpecLimits::kMaxSteps}},
      {"trainer.sft_grad_accumulation", {t.sft_grad_accumulation(), SpecLimits::kMaxSamplesPerStep}},
      {"trainer.sft_pack_length", {t.sft_pack_length(), SpecLimits::kMaxContext}},
      {"trainer.ppo_epochs", {t.ppo_epochs(), SpecLimits::kMaxEpochs}},
      {"trainer.mini_batches", {t.mini_batches(), SpecLimits::kMaxSamplesPerStep}},
      {"trainer.max_sampling_rounds", {t.max_sampling_rounds(), SpecLimits::kMaxSamplingRounds}},
      {"trainer.eval_size", {t.eval_size(), SpecLimits::kMaxDatasetRows}},
      {"algorithm.kl_horizon", {a.kl_horizon(), int64_t{1} << 30}},
      {"algorithm.kl_metric_every", {a.kl_metric_every(), SpecLimits::kMaxSteps}},
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
           {"model.dtype", &spec.model().dtype(), 64},
           {"model.config.architecture", &spec.model().config().architecture(), 64},
           {"dataset.jsonl_path", &d.jsonl_path(), 4096},
           {"dataset.sft_path", &d.sft_path(), 4096},
           {"dataset.chat_template", &d.chat_template(), 4096},
           {"dataset.pairs_path", &d.pairs_path(), 4096},
           {"dataset.overlong", &d.overlong(), 64},
           {"dataset.builtin", &d.builtin(), 64},
           {"reward.model", &spec.reward().model(), 4096},
           {"preference.sampled_pairs.policy", &spec.preference().sampled_pairs().policy(), 4096}}) {
    if (text->size() > limit) {
      return Bad(field, absl::StrCat("is ", text->size(), " bytes long, above the limit of ", limit));
    }
  }
  if (s.temperature() > 100) return Bad("sampling.temperature", "must be <= 100");
  if (t.sft_target_accuracy() < 0 || t.sft_target_accuracy() > 1) {
    return Bad("trainer.sft_target_accuracy", "must be in [0, 1]");
  }
  if (t.sft_target_accuracy() > 0 && t.sft_steps() <= 0 && t.sft_epochs() <= 0) {
    return Bad("trainer.sft_target_accuracy",
               "needs trainer.sft_steps or trainer.sft_epochs, the most the warm-up may take");
  }
  if (t.sft_epochs() > 0 && t.sft_steps() > 0) {
    return Bad("trainer.sft_epochs", "set trainer.sft_epochs or trainer.sft_steps, not both");
  }
  if (t.sft_eval_every() < 0) return Bad("trainer.sft_eval_every", "must be >= 0");
  if (t.sft_target_holds() < 0) return Bad("trainer.sft_target_holds", "must be >= 0");
  if (t.sft_target_holds() > 0 && t.sft_target_accuracy() <= 0) {
    return Bad("trainer.sft_target_holds", "needs trainer.sft_target_accuracy");
  }
  if (!t.lr_schedule().empty() && t.lr_schedule() != "constant" && t.lr_schedule() != "cosine") {
    return Bad("trainer.lr_schedule", absl::StrCat("'", t.lr_schedule().substr(0, 64), "' is not constant or cosine"));
  }
  if (t.min_lr_ratio() < 0 || t.min_lr_ratio() > 1) return Bad("trainer.min_lr_ratio", "must be in [0, 1]");
  if (!t.sft_lr_schedule().empty() && t.sft_lr_schedule() != "constant" && t.sft_lr_schedule() != "linear" &&
      t.sft_lr_schedule() != "cosine") {
    return Bad("trainer.sft_lr_schedule",
               absl::StrCat("'", t.sft_lr_schedule().substr(0, 64), "' is not constant, linear or cosine"));
  }
  if (t.sft_warmup_steps() < 0) return Bad("trainer.sft_warmup_steps", "must be >= 0");
  if (t.sft_grad_accumulation() < 0) return Bad("trainer.sft_grad_accumulation", "must be >= 0");
  if (t.sft_batch_size() > 0 && t.sft_grad_accumulation() > t.sft_batch_size()) {
    return Bad("trainer.sft_grad_accumulation", "must be at most trainer.sft_batch_size");
  }
  if (t.learning_rate() > 10) return Bad("trainer.learning_rate", "must be <= 10");
  if (t.sft_learning_rate() < 0 || t.sft_learning_rate() > 10) return Bad("trainer.sft_learning_rate", "must be in [0, 10]");
  if (t.weight_decay() < 0) return Bad("trainer.weight_decay", "must be >= 0");
  if (t.grad_clip() < 0) return Bad("trainer.grad_clip", "must be >= 0");
  return absl::OkStatus();
}

namespace {

bool StageNameOk(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

// The checks of a staged run's own fields: names, kinds, `from` and reward.model; every
// stage's spec is then checked as a run of its own.
absl::Status ValidateStages(const grail::v1::RunSpec& spec) {
  constexpr int kMaxStages = 16;
  if (spec.stages_size() > kMaxStages) {
    return Bad("stages", absl::StrCat(spec.stages_size(), " stages, above the limit of ", kMaxStages));
  }
  if (spec.trainer().resume()) {
    return Bad("trainer.resume", "a staged run resumes by itself (after a restart, at the stage and step it reached)");
  }
  std::map<std::string, int> index;
  for (int i = 0; i < spec.stages_size(); ++i) {
    const auto& stage = spec.stages(i);
    const std::string at = absl::StrCat("stages[", i, "]");
    if (!StageNameOk(stage.name())) {
      return Bad(absl::StrCat(at, ".name"), "must be 1-64 characters of letters, digits, '_', '-' and '.'");
    }
    if (index.count(stage.name())) {
      return Bad(absl::StrCat(at, ".name"), absl::StrCat("'", stage.name(), "' names an earlier stage too"));
    }
    if (SpecName(stage.kind()).empty()) {
      return Bad(absl::StrCat(at, ".kind"), absl::StrCat("must be one of ", SpecNames(grail::v1::StageKind_descriptor())));
    }
    if (!stage.from().empty() && !index.count(stage.from())) {
      return Bad(absl::StrCat(at, ".from"), absl::StrCat("'", stage.from().substr(0, 64), "' is not an earlier stage"));
    }
    index[stage.name()] = i;
    const grail::v1::RunSpec effective = StageRunSpec(spec, i);
    const std::string prefix = absl::StrCat(at, " (", stage.name(), "): ");
    const std::string& rm = effective.reward().model();
    if (auto it = index.find(rm); it != index.end()) {
      if (it->second == i ||
          StageRunSpec(spec, it->second).preference().objective() != grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL) {
        return Bad(absl::StrCat(prefix, "reward.model"),
                   absl::StrCat("stage '", rm, "' is not an earlier reward_model stage"));
      }
    }
    // preference.sampled_pairs.policy may name an earlier stage that trains a policy.
    const std::string& policy = effective.preference().sampled_pairs().policy();
    if (auto it = index.find(policy); it != index.end()) {
      if (it->second == i ||
          StageRunSpec(spec, it->second).preference().objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL) {
        return Bad(absl::StrCat(prefix, "preference.sampled_pairs.policy"),
                   absl::StrCat("stage '", policy, "' is not an earlier stage that trains a policy"));
      }
    }
    const auto objective = effective.preference().objective();
    if (stage.kind() == grail::v1::STAGE_KIND_PREFERENCE && objective == grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
      return Bad(absl::StrCat(prefix, "preference.objective"), "a preference stage needs one");
    }
    if (stage.kind() == grail::v1::STAGE_KIND_SFT && effective.trainer().sft_steps() <= 0 &&
        effective.trainer().sft_epochs() <= 0) {
      return Bad(absl::StrCat(prefix, "trainer.sft_steps"), "an sft stage needs > 0 (or trainer.sft_epochs)");
    }
    absl::Status s = ValidateRunSpec(effective);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

grail::v1::RunSpec StageRunSpec(const grail::v1::RunSpec& run, int index) {
  grail::v1::RunSpec spec = run;
  spec.clear_stages();
  const grail::v1::StageSpec& stage = run.stages(index);
  spec.set_name(run.name().empty() ? stage.name() : absl::StrCat(run.name(), "/", stage.name()));
  spec.mutable_trainer()->MergeFrom(stage.trainer());
  // The stage's own length of supervised training wins over the run's, in either unit.
  if (stage.trainer().sft_epochs() > 0 && stage.trainer().sft_steps() == 0) spec.mutable_trainer()->set_sft_steps(0);
  if (stage.trainer().sft_steps() > 0 && stage.trainer().sft_epochs() == 0) spec.mutable_trainer()->set_sft_epochs(0);
  spec.mutable_algorithm()->MergeFrom(stage.algorithm());
  spec.mutable_preference()->MergeFrom(stage.preference());
  spec.mutable_dataset()->MergeFrom(stage.dataset());
  spec.mutable_sampling()->MergeFrom(stage.sampling());
  spec.mutable_reward()->MergeFrom(stage.reward());
  spec.mutable_critic()->MergeFrom(stage.critic());
  spec.mutable_probes()->MergeFrom(stage.probes());
  auto* t = spec.mutable_trainer();
  switch (stage.kind()) {
    case grail::v1::STAGE_KIND_SFT:
      spec.clear_preference();
      t->set_total_steps(0);  // the warm-up only
      break;
    case grail::v1::STAGE_KIND_PREFERENCE:
      t->set_sft_steps(0);
      t->set_sft_epochs(0);
      t->set_sft_target_accuracy(0);
      t->set_sft_target_holds(0);
      break;
    default:  // rl
      spec.clear_preference();
      t->set_sft_steps(0);
      t->set_sft_epochs(0);
      t->set_sft_target_accuracy(0);
      t->set_sft_target_holds(0);
      break;
  }
  if (t->sft_steps() == 0 && t->sft_epochs() == 0) spec.mutable_dataset()->clear_sft_path();
  // Every stage ends with a checkpoint, the next stage's starting point.
  if (t->checkpoint_every() <= 0) t->set_checkpoint_every(std::max(1, t->total_steps()));
  ResolveDefaults(&spec);
  return spec;
}

absl::Status ValidateRunSpec(const grail::v1::RunSpec& spec) {
  if (spec.stages_size() > 0) {
    // The run's own fields are the stages' defaults; only the model is checked as a whole.
    grail::v1::RunSpec model_only;
    *model_only.mutable_model() = spec.model();
    RETURN_IF_ERROR(CheckSpecLimits(model_only));
    return ValidateStages(spec);
  }
  RETURN_IF_ERROR(CheckSpecLimits(spec));
  const auto& m = spec.model();
  if (m.path().empty() && !m.has_config()) {
    return Bad("model", "set either model.path (a checkpoint directory) or model.config");
  }
  if (!m.path().empty() && m.has_config()) {
    return Bad("model", "set only one of model.path and model.config");
  }
  if (!m.dtype().empty() && m.dtype() != "float32" && m.dtype() != "bfloat16") {
    return Bad("model.dtype", absl::StrCat("'", m.dtype(), "' is not float32 or bfloat16"));
  }
  if (m.has_config()) {
    absl::Status s = model::ModelConfigFromProto(m.config()).Validate();
    if (!s.ok()) return Bad("model.config", s.message());
  }
  RETURN_IF_ERROR(ValidatePeft(m));

  const auto& d = spec.dataset();
  if (d.builtin().empty() == d.jsonl_path().empty()) {
    return Bad("dataset", "set exactly one of dataset.builtin and dataset.jsonl_path");
  }
  if (!d.builtin().empty() && d.builtin() != "arithmetic") {
    return Bad("dataset.builtin", absl::StrCat("unknown task '", d.builtin(), "' (known: arithmetic)"));
  }
  if (d.heldout_size() < 0) return Bad("dataset.heldout_size", "must be >= 0");
  if (d.max_prompt_tokens() < 0) return Bad("dataset.max_prompt_tokens", "must be >= 0");
  if (d.max_response_tokens() < 0) return Bad("dataset.max_response_tokens", "must be >= 0");
  if (!d.overlong().empty() && d.overlong() != "skip" && d.overlong() != "truncate") {
    return Bad("dataset.overlong", absl::StrCat("'", d.overlong(), "' is not skip or truncate"));
  }
  if (!d.sft_path().empty() && spec.trainer().sft_steps() <= 0 && spec.trainer().sft_epochs() <= 0) {
    return Bad("dataset.sft_path", "needs trainer.sft_steps or trainer.sft_epochs > 0 (the warm-up that trains on it)");
  }

  const auto& s = spec.sampling();
  if (s.temperature() < 0) return Bad("sampling.temperature", "must be >= 0");
  if (s.top_p() < 0 || s.top_p() > 1) return Bad("sampling.top_p", "must be in [0, 1]");
  if (s.top_k() < 0) return Bad("sampling.top_k", "must be >= 0");
  if (s.max_new_tokens() <= 0) return Bad("sampling.max_new_tokens", "must be > 0");

  const auto& r = spec.reward();
  if (!r.verifier().empty() && r.verifier() != "math" && r.verifier() != "format" && r.verifier() != "ifeval" &&
      r.verifier() != "rm") {
    return Bad("reward.verifier", absl::StrCat("'", r.verifier().substr(0, 64), "' is not one of math, format, ifeval, rm"));
  }
  const auto& ol = r.overlong();
  if (ol.max_response_length() < 0 || ol.buffer_length() < 0 || ol.buffer_length() > ol.max_response_length()) {
    return Bad("reward.overlong", "need 0 <= buffer_length <= max_response_length");
  }
  if (ol.penalty_factor() < 0) return Bad("reward.overlong.penalty_factor", "must be >= 0");

  const auto& a = spec.algorithm();
  const Estimator* estimator = FindEstimator(a.advantage_estimator());
  if (estimator == nullptr) {
    return Bad("algorithm.advantage_estimator", absl::StrCat("unknown estimator ", a.advantage_estimator(), " (known: ",
                                                             SpecNames(grail::v1::AdvantageEstimator_descriptor()), ")"));
  }
  const std::string& name = estimator->name;
  const auto& critic = spec.critic();
  if (estimator->needs_critic && !critic.enabled()) {
    return Bad("algorithm.advantage_estimator", absl::StrCat(name, " needs a critic (set critic.enabled: true)"));
  }
  if (critic.enabled() && !estimator->needs_critic) {
    return Bad("critic.enabled", absl::StrCat("only the gae estimator uses a critic, not ", name,
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
  // Enum fields arrive from the wire as any number: only named values are accepted.
  if (SpecName(a.policy_loss()).empty() && a.policy_loss() != grail::v1::POLICY_LOSS_UNSPECIFIED) {
    return Bad("algorithm.policy_loss", absl::StrCat(a.policy_loss(), " is not one of ",
                                                     SpecNames(grail::v1::PolicyLoss_descriptor())));
  }
  if (SpecName(a.loss_agg_mode()).empty() && a.loss_agg_mode() != grail::v1::LOSS_AGG_MODE_UNSPECIFIED) {
    return Bad("algorithm.loss_agg_mode", absl::StrCat(a.loss_agg_mode(), " is not one of ",
                                                       SpecNames(grail::v1::LossAggMode_descriptor())));
  }
  if (a.policy_loss() == grail::v1::POLICY_LOSS_GSPO &&
      a.loss_agg_mode() != grail::v1::LOSS_AGG_MODE_SEQ_MEAN_TOKEN_MEAN) {
    return Bad("algorithm.loss_agg_mode",
               "gspo uses a sequence-level ratio and needs seq-mean-token-mean (algorithm.policy_loss: gspo)");
  }
  if (SpecName(a.kl_estimator()).empty() && a.kl_estimator() != grail::v1::KL_ESTIMATOR_UNSPECIFIED) {
    return Bad("algorithm.kl_estimator", absl::StrCat(a.kl_estimator(), " is not one of ",
                                                      SpecNames(grail::v1::KlEstimator_descriptor())));
  }
  const auto& pref = spec.preference();
  if (SpecName(pref.objective()).empty() && pref.objective() != grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
    return Bad("preference.objective", absl::StrCat(pref.objective(), " is not one of ",
                                                    SpecNames(grail::v1::PreferenceObjective_descriptor())));
  }
  if (SpecName(pref.loss_type()).empty() && pref.loss_type() != grail::v1::DPO_LOSS_TYPE_UNSPECIFIED) {
    return Bad("preference.loss_type", absl::StrCat(pref.loss_type(), " is not one of ",
                                                    SpecNames(grail::v1::DpoLossType_descriptor())));
  }
  if (pref.loss_type() != grail::v1::DPO_LOSS_TYPE_UNSPECIFIED &&
      pref.objective() != grail::v1::PREFERENCE_OBJECTIVE_DPO) {
    return Bad("preference.loss_type", "applies to preference.objective dpo only");
  }
  if (pref.beta() < 0) return Bad("preference.beta", "must be > 0");
  const auto& sampled = pref.sampled_pairs();
  if (sampled.prompts() < 0) return Bad("preference.sampled_pairs.prompts", "must be >= 0");
  if (sampled.samples() < 0 || sampled.samples() == 1) {
    return Bad("preference.sampled_pairs.samples", "must be >= 2 (0 = 8): a pair needs two samples to compare");
  }
  if (sampled.samples() > 0 && sampled.prompts() == 0) {
    return Bad("preference.sampled_pairs.prompts", "must be > 0 when preference.sampled_pairs.samples is set");
  }
  if (sampled.all_pairs() && sampled.prompts() == 0) {
    return Bad("preference.sampled_pairs.all_pairs", "needs preference.sampled_pairs.prompts > 0");
  }
  if (sampled.prompts() > 0 && pref.objective() == grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
    return Bad("preference.sampled_pairs", "needs preference.objective");
  }
  if (!sampled.policy().empty() && sampled.prompts() == 0) {
    return Bad("preference.sampled_pairs.policy", "needs preference.sampled_pairs.prompts > 0");
  }
  if (!sampled.policy().empty() && spec.model().peft().type() != grail::v1::PEFT_TYPE_UNSPECIFIED) {
    return Bad("preference.sampled_pairs.policy", "is not supported with model.peft (the policy loads as a whole model)");
  }

  if (pref.label_smoothing() < 0 || pref.label_smoothing() >= 0.5) {
    return Bad("preference.label_smoothing", "must be in [0, 0.5)");
  }
  for (auto [field, v] : {std::pair<const char*, float>{"preference.center_rewards_coefficient",
                                                       pref.center_rewards_coefficient()},
                          {"preference.gamma", pref.gamma()},
                          {"preference.lambda", pref.lambda()},
                          {"preference.desirable_weight", pref.desirable_weight()},
                          {"preference.undesirable_weight", pref.undesirable_weight()}}) {
    if (v < 0) return Bad(field, "must be >= 0");
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
  if (estimator->id == grail::v1::ADVANTAGE_ESTIMATOR_GFPO) {
    if (a.gfpo_k() <= 0) return Bad("algorithm.gfpo_k", "must be > 0 for gfpo");
    if (a.gfpo_k() > a.group_size()) {
      return Bad("algorithm.gfpo_k", absl::StrCat(a.gfpo_k(), " is larger than algorithm.group_size ", a.group_size()));
    }
    if (!a.gfpo_metric().empty() && a.gfpo_metric() != "length" && a.gfpo_metric() != "token_efficiency") {
      return Bad("algorithm.gfpo_metric", "must be length or token_efficiency");
    }
  }
  const bool preference = spec.preference().objective() != grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED;
  const bool sft_only = spec.trainer().total_steps() == 0;
  if ((preference || sft_only) && a.group_size() == 0) {
    // Preference runs and supervised training alone sample no groups; evaluation is greedy.
  } else if (estimator->group_relative && a.group_size() < 2) {
    return Bad("algorithm.group_size", absl::StrCat("must be >= 2 for ", name, ", got ", a.group_size()));
  }
  if (a.group_size() < 1 && !preference && !sft_only) return Bad("algorithm.group_size", "must be >= 1");
  if (!d.pairs_path().empty() && !preference) {
    return Bad("dataset.pairs_path", "needs preference.objective (a preference run)");
  }

  const auto& probes = spec.probes();
  if (probes.every() < 0) return Bad("probes.every", "must be >= 0");
  if (probes.size() < 0 || probes.size() > 1024) return Bad("probes.size", "must be in [0, 1024]");
  if ((!probes.path().empty() || probes.size() > 0) && probes.every() == 0) {
    return Bad("probes.every", "must be > 0 to record the probes named (steps between recordings)");
  }
  if (probes.every() > 0 && probes.path().empty() && d.builtin().empty()) {
    return Bad("probes.path", "a run over a JSONL dataset needs its probe file");
  }

  const auto& t = spec.trainer();
  if (t.total_steps() < 0 || (t.total_steps() == 0 && t.sft_steps() <= 0 && t.sft_epochs() <= 0)) {
    return Bad("trainer.total_steps",
               "must be > 0 (0 only with trainer.sft_steps or sft_epochs: supervised training alone)");
  }
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

}  // namespace grail::algo

namespace grail::algo {

void ResolveDefaults(grail::v1::RunSpec* spec) {
  auto* m = spec->mutable_model();
  if (m->tokenizer().empty()) m->set_tokenizer("char");
  if (m->peft().type() == grail::v1::PEFT_TYPE_PROMPT_TUNING && m->peft().num_virtual_tokens() == 0) {
    m->mutable_peft()->set_num_virtual_tokens(8);
  }
  if (m->peft().type() == grail::v1::PEFT_TYPE_LORA) {
    auto* p = m->mutable_peft();
    if (p->r() == 0) p->set_r(8);
    if (p->alpha() == 0) p->set_alpha(16);
    if (p->target_modules().empty()) {
      for (const char* t : {"q", "k", "v", "o", "gate", "up", "down"}) p->add_target_modules(t);
    }
  }

  auto* a = spec->mutable_algorithm();
  if (a->advantage_estimator() == grail::v1::ADVANTAGE_ESTIMATOR_UNSPECIFIED) {
    a->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GRPO);
  }
  if (a->policy_loss() == grail::v1::POLICY_LOSS_UNSPECIFIED) a->set_policy_loss(grail::v1::POLICY_LOSS_PPO);
  if (a->loss_agg_mode() == grail::v1::LOSS_AGG_MODE_UNSPECIFIED) {
    a->set_loss_agg_mode(grail::v1::LOSS_AGG_MODE_TOKEN_MEAN);
  }
  if (a->kl_estimator() == grail::v1::KL_ESTIMATOR_UNSPECIFIED) a->set_kl_estimator(grail::v1::KL_ESTIMATOR_K3);
  if (a->clip_ratio_low() == 0) a->set_clip_ratio_low(0.2f);
  if (a->clip_ratio_high() == 0) a->set_clip_ratio_high(0.28f);
  if (a->clip_ratio_c() == 0) a->set_clip_ratio_c(3.0f);
  if (a->gamma() == 0) a->set_gamma(1.0f);
  if (a->lambda_actor() == 0) a->set_lambda_actor(0.95f);
  if (a->lambda_critic() == 0) a->set_lambda_critic(1.0f);
  if (a->kl_in_reward_coef() == 0) a->set_kl_in_reward_coef(1e-3f);
  if (a->kl_horizon() == 0) a->set_kl_horizon(10000);
  if (a->advantage_estimator() == grail::v1::ADVANTAGE_ESTIMATOR_GFPO && a->gfpo_metric().empty()) {
    a->set_gfpo_metric("length");
  }
  // Truncated importance sampling is on for pipelined runs (their samples are off-policy).
  if (a->tis_cap() == 0 && spec->trainer().max_staleness() > 0) a->set_tis_cap(2.0f);

  auto* p = spec->mutable_preference();
  if (p->objective() != grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
    if (p->objective() == grail::v1::PREFERENCE_OBJECTIVE_DPO && p->loss_type() == grail::v1::DPO_LOSS_TYPE_UNSPECIFIED) {
      p->set_loss_type(grail::v1::DPO_LOSS_TYPE_SIGMOID);
    }
    if (p->beta() == 0) p->set_beta(p->objective() == grail::v1::PREFERENCE_OBJECTIVE_SIMPO ? 2.0f : 0.1f);
    if (p->objective() == grail::v1::PREFERENCE_OBJECTIVE_SIMPO && p->gamma() == 0) p->set_gamma(0.5f);
    if (p->objective() == grail::v1::PREFERENCE_OBJECTIVE_ORPO && p->lambda() == 0) p->set_lambda(0.1f);
    if (p->objective() == grail::v1::PREFERENCE_OBJECTIVE_KTO) {
      if (p->desirable_weight() == 0) p->set_desirable_weight(1.0f);
      if (p->undesirable_weight() == 0) p->set_undesirable_weight(1.0f);
    }
    if (p->sampled_pairs().prompts() > 0 && p->sampled_pairs().samples() == 0) {
      p->mutable_sampled_pairs()->set_samples(8);
    }
  }

  auto* t = spec->mutable_trainer();
  if (t->learning_rate() == 0) t->set_learning_rate(1e-4f);
  if (t->sft_learning_rate() == 0) t->set_sft_learning_rate(1e-3f);
  if (t->grad_clip() == 0) t->set_grad_clip(1.0f);
  if (t->sft_batch_size() == 0) t->set_sft_batch_size(64);
  if (t->sft_eval_every() == 0) t->set_sft_eval_every(25);
  if (t->max_sampling_rounds() == 0) t->set_max_sampling_rounds(3);
  if (t->ppo_epochs() == 0) t->set_ppo_epochs(1);
  if (t->mini_batches() == 0) t->set_mini_batches(1);
  if (t->lr_schedule().empty()) t->set_lr_schedule("constant");
  if (t->min_lr_ratio() == 0) t->set_min_lr_ratio(0.1f);

  auto* c = spec->mutable_critic();
  if (c->enabled()) {
    if (c->init().empty()) c->set_init("policy");
    if (c->learning_rate() == 0) c->set_learning_rate(t->learning_rate());
    if (c->value_clip() == 0) c->set_value_clip(0.5f);
  }

  auto* r = spec->mutable_reward();
  if (r->verifier().empty()) r->set_verifier("math");
}

int64_t ContextLength(const grail::v1::ModelConfig& config) {
  return model::ModelConfigFromProto(config).max_position_embeddings;
}

int64_t DefaultHeldoutSize(int64_t rows) { return std::min<int64_t>(500, rows / 10); }

}  // namespace grail::algo
