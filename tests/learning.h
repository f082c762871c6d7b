#ifndef GRAIL_TESTS_LEARNING_H_
#define GRAIL_TESTS_LEARNING_H_

// What the learning tests share: the demo's model and task with a supervised warm-up that
// stops on a held-out criterion (so that RL starts from the same place on every machine,
// whatever its floating-point kernels), and the statistics their margins come from.

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/config.h"
#include "coordinator/run_client.h"
#include "gtest/gtest.h"

namespace grail::testing {

// The seed of a learning test: GRAIL_TEST_SEED when set (to check a test over several
// seeds: `GRAIL_TEST_SEED=2 ctest -L rl`), else 1.
inline int TestSeed() {
  const char* s = std::getenv("GRAIL_TEST_SEED");
  return s != nullptr && *s != '\0' ? std::atoi(s) : 1;
}

// The demo's run (deploy/demo/arithmetic.yaml) without `algorithm`: a 0.6M-parameter model
// warmed up on 2-digit addition until greedy accuracy on the 500 held-out problems reaches
// `target` (at most 1500 steps; 0.55 greedy is about 0.4 sampled reward, where a group of
// binary rewards carries the most signal), then RL at learning rate 3e-4 with a 3-step
// warm-up (a
// fresh AdamW at full rate right away knocks a warmed-up model off its optimum; see README,
// "Learning-rate warm-up").
inline std::string LearningSpecYaml(int seed, double target = 0.55) {
  return absl::StrFormat(R"(
seed: %d
model:
  tokenizer: char
  init_seed: %d
  config: {vocab_size: 98, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 3,
           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16}
dataset: {builtin: arithmetic, max_digits: 2, seed: 7, heldout_size: 500}
sampling: {temperature: 1.0, max_new_tokens: 5}
trainer: {sft_steps: 1500, sft_target_accuracy: %g, sft_target_holds: 2, sft_eval_every: 10, sft_batch_size: 64,
          sft_learning_rate: 0.001, total_steps: 1, prompts_per_step: 32, learning_rate: 0.0003,
          warmup_steps: 3}
)", seed, seed, target);
}

// A learning spec from YAML; a parse failure fails the test, showing the YAML.
inline grail::v1::RunSpec ParseLearningSpec(const std::string& yaml) {
  grail::v1::RunSpec spec;
  absl::Status s = ParseConfig(yaml, ConfigFormat::kYaml, &spec);
  EXPECT_TRUE(s.ok()) << s << "\n" << yaml;
  return spec;
}

// Submits `spec` and watches the run to its end; returns the final ("done") report, whose
// state the caller checks.
inline grail::v1::StepReport RunToEnd(coordinator::RunClient& client, const grail::v1::RunSpec& spec) {
  grail::v1::StepReport done;
  auto id = client.Submit(spec);
  EXPECT_TRUE(id.ok()) << id.status();
  if (!id.ok()) return done;
  absl::Status watched = client.Watch(*id, [&](const grail::v1::StepReport& r) {
    if (r.phase() == "done") done = r;
  });
  EXPECT_TRUE(watched.ok()) << watched;
  return done;
}

// The learning spec's supervised warm-up alone (trainer.total_steps 0: no RL or preference
// step) to `target` greedy held-out accuracy, checkpointed in `dir`; returns the
// checkpoint every later run of the test starts from (`dir`/step-000000).
inline std::string WarmUpCheckpoint(coordinator::RunClient& client, double target, const std::string& dir) {
  grail::v1::RunSpec spec =
      ParseLearningSpec(LearningSpecYaml(TestSeed(), target) + "name: " + dir + "\ncheckpoint_dir: " + dir + "\n");
  spec.mutable_trainer()->set_total_steps(0);
  spec.mutable_trainer()->set_checkpoint_every(1);
  const grail::v1::StepReport done = RunToEnd(client, spec);
  EXPECT_EQ(done.state(), grail::v1::RUN_STATE_SUCCEEDED) << done.message();
  return dir + "/step-000000";
}

struct MeanSe {
  double mean = 0;
  double se = 0;  // standard error of the mean
};

// Mean and standard error of the mean of `xs` (at least two values).
inline MeanSe MeanAndSe(const std::vector<double>& xs) {
  MeanSe out;
  if (xs.empty()) return out;
  for (double x : xs) out.mean += x;
  out.mean /= xs.size();
  if (xs.size() < 2) return out;
  double var = 0;
  for (double x : xs) var += (x - out.mean) * (x - out.mean);
  var /= xs.size() - 1;
  out.se = std::sqrt(var / xs.size());
  return out;
}

// The change over a run of per-step values, from a least-squares line through all of them
// (slope times the number of steps spanned), with its standard error from the residuals
// about that line: the steps' trend is not counted as noise, as it would be in the spread
// of a window of steps.
inline MeanSe TrendChange(const std::vector<double>& ys) {
  MeanSe out;
  const size_t n = ys.size();
  if (n < 3) return out;
  double xbar = (n - 1) / 2.0, ybar = 0;
  for (double y : ys) ybar += y;
  ybar /= n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < n; ++i) {
    sxx += (i - xbar) * (i - xbar);
    sxy += (i - xbar) * (ys[i] - ybar);
  }
  const double slope = sxy / sxx;
  double ssr = 0;
  for (size_t i = 0; i < n; ++i) {
    const double r = ys[i] - (ybar + slope * (i - xbar));
    ssr += r * r;
  }
  out.mean = slope * (n - 1);
  out.se = (n - 1) * std::sqrt(ssr / (n - 2) / sxx);
  return out;
}

// Standard error of the difference of two accuracies measured on n problems each
// (independent binomial errors; an upper bound when the problems are the same).
inline double AccuracyDifferenceSe(double p1, double p2, int n) {
  return std::sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n);
}

}  // namespace grail::testing

#endif  // GRAIL_TESTS_LEARNING_H_
