#ifndef GRAIL_TESTS_TINY_SPEC_H_
#define GRAIL_TESTS_TINY_SPEC_H_

// The one run-spec helper of the integration tests: a small decoder trained on built-in
// addition. Each test changes only what it is about; every field is written out, so a
// spec's YAML reads complete in a failure message.

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::testing {

struct TinySpecOptions {
  std::string name = "tiny";
  int seed = 1;
  int init_seed = 1;
  // Model.
  int hidden = 32, intermediate = 64, layers = 1, heads = 2, kv_heads = 2, context = 16;
  // Data.
  int max_digits = 1, dataset_seed = 0, heldout = 20;
  // Sampling and objective.
  double temperature = 1.0;
  int max_new_tokens = 3;
  std::string estimator = "grpo";
  int group_size = 4;
  // Trainer.
  int sft_steps = 2, sft_batch = 64;
  int total_steps = 2, prompts = 4;
  double learning_rate = 0;  // 0: the default
  int checkpoint_every = 0, eval_size = 0;
  std::string more_trainer;  // extra "key: value" pairs inside trainer: {...}
};

inline std::string TinySpecYaml(const TinySpecOptions& o) {
  std::string trainer = absl::StrFormat(
      "sft_steps: %d, sft_batch_size: %d, total_steps: %d, prompts_per_step: %d", o.sft_steps, o.sft_batch,
      o.total_steps, o.prompts);
  if (o.learning_rate > 0) absl::StrAppend(&trainer, absl::StrFormat(", learning_rate: %g", o.learning_rate));
  if (o.checkpoint_every > 0) absl::StrAppend(&trainer, ", checkpoint_every: ", o.checkpoint_every);
  if (o.eval_size > 0) absl::StrAppend(&trainer, ", eval_size: ", o.eval_size);
  if (!o.more_trainer.empty()) absl::StrAppend(&trainer, ", ", o.more_trainer);
  return absl::StrFormat(R"(name: %s
seed: %d
model:
  tokenizer: char
  init_seed: %d
  config: {vocab_size: 98, hidden_size: %d, intermediate_size: %d, num_hidden_layers: %d,
           num_attention_heads: %d, num_key_value_heads: %d, max_position_embeddings: %d}
dataset: {builtin: arithmetic, max_digits: %d, seed: %d, heldout_size: %d}
sampling: {temperature: %g, max_new_tokens: %d}
algorithm: {advantage_estimator: %s, group_size: %d}
trainer: {%s}
)",
                         o.name, o.seed, o.init_seed, o.hidden, o.intermediate, o.layers, o.heads, o.kv_heads,
                         o.context, o.max_digits, o.dataset_seed, o.heldout, o.temperature, o.max_new_tokens,
                         o.estimator, o.group_size, trainer);
}

// TinySpecYaml parsed; a parse failure is a test bug and aborts with the YAML.
inline grail::v1::RunSpec TinySpec(const TinySpecOptions& o) {
  grail::v1::RunSpec spec;
  const std::string yaml = TinySpecYaml(o);
  absl::Status s = ParseConfig(yaml, ConfigFormat::kYaml, &spec);
  if (!s.ok()) {
    fprintf(stderr, "TinySpec: %s\n%s", std::string(s.message()).c_str(), yaml.c_str());
    abort();
  }
  return spec;
}

}  // namespace grail::testing

#endif  // GRAIL_TESTS_TINY_SPEC_H_
