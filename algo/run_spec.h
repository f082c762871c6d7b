#ifndef GRAIL_ALGO_RUN_SPEC_H_
#define GRAIL_ALGO_RUN_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::algo {

// Upper bounds a run spec may ask for. They keep one spec from allocating without bound in
// the coordinator (prompts, samples, dataset rows) or in the services (model dimensions,
// token budgets); README's run-spec table lists them.
struct SpecLimits {
  static constexpr int64_t kMaxVocab = 1 << 20;
  static constexpr int64_t kMaxHidden = 16384;
  static constexpr int64_t kMaxLayers = 256;
  static constexpr int64_t kMaxHeads = 256;
  static constexpr int64_t kMaxContext = 1 << 17;
  static constexpr int64_t kMaxDatasetRows = 1000000;
  static constexpr int64_t kMaxDigits = 9;
  static constexpr int64_t kMaxGroupSize = 1024;
  static constexpr int64_t kMaxSteps = 10000000;
  static constexpr int64_t kMaxPromptsPerStep = 16384;
  static constexpr int64_t kMaxSamplesPerStep = 65536;
  static constexpr int64_t kMaxTokensPerStep = int64_t{1} << 26;
  static constexpr int64_t kMaxEpochs = 100;
  static constexpr int64_t kMaxSamplingRounds = 100;
  static constexpr double kMaxParameters = 2e9;
};

// Finiteness of every floating-point field and the bounds above; INVALID_ARGUMENT naming
// the field. Part of ValidateRunSpec.
absl::Status CheckSpecLimits(const grail::v1::RunSpec& spec);

// Checks a run spec before anything runs. Returns INVALID_ARGUMENT naming the first bad
// field (e.g. "algorithm.group_size: must be >= 2 for grpo, got 1"). Accepts a spec before
// and after ResolveDefaults.
absl::Status ValidateRunSpec(const grail::v1::RunSpec& spec);

// The spec stage `index` of a staged run (spec.stages) runs as: the run's fields with the
// stage's sections merged over them (the stage's non-zero values win), stages cleared,
// name "<run>/<stage>", the stage kind's rules applied (sft: trainer.total_steps 0 and no
// preference; preference and rl: no supervised warm-up; rl: no preference), checkpoints at
// least at the stage's end, and defaults resolved. The model stays the run's: the
// coordinator points model.path at the checkpoint the stage starts from.
grail::v1::RunSpec StageRunSpec(const grail::v1::RunSpec& spec, int index);

// The documented defaults, in one place: every field left at 0 (or empty, or UNSPECIFIED)
// that has a default gets it. The coordinator resolves a spec once at submit; what it
// stores, shows (GetRun) and sends to every service is the resolved spec, and services
// resolve what they receive again (idempotent), so no process keeps defaults of its own.
// Floating-point defaults are stored as the proto's float32.
void ResolveDefaults(grail::v1::RunSpec* spec);

// The model context (max_position_embeddings) a model.config asks for, its default filled.
int64_t ContextLength(const grail::v1::ModelConfig& config);

// Held-out problems a dataset of `rows` problems sets aside when dataset.heldout_size is 0:
// min(500, rows / 10), the same for the built-in task and JSONL files.
int64_t DefaultHeldoutSize(int64_t rows);

}  // namespace grail::algo

#endif  // GRAIL_ALGO_RUN_SPEC_H_
