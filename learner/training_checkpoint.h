#ifndef GRAIL_LEARNER_TRAINING_CHECKPOINT_H_
#define GRAIL_LEARNER_TRAINING_CHECKPOINT_H_

// A training checkpoint directory: model.safetensors + config.json (loadable as a model
// path), optimizer.safetensors (the RL optimizer's AdamW moments by parameter name),
// manifest.json (format, weights version, RL step count, the coordinator's opaque run
// state, every file's SHA-256) and COMMITTED (the manifest's SHA-256), written last.

#include <cstdint>
#include <map>
#include <string>

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "model/transformer.h"

namespace grail::learner {

struct TrainingState {
  int64_t weights_version = 0;
  int64_t rl_steps = 0;
  std::string run_state;  // opaque, at most 64 KiB
};

// Writes the checkpoint into a temporary sibling of `path` that is renamed into place, so a
// crash never leaves a partial checkpoint under `path`. ALREADY_EXISTS when `path` holds a
// committed checkpoint; `display` names it in errors (relative to the data root).
// `metadata` goes into model.safetensors' header (a reward model's tokenizer).
absl::Status WriteTrainingCheckpoint(const std::string& path, const std::string& display, model::CausalLm& model,
                                     torch::optim::AdamW& rl_optimizer, const TrainingState& state,
                                     const std::map<std::string, std::string>& metadata = {});

// Restores the RL optimizer's moments from a checkpoint directory written by
// WriteTrainingCheckpoint (whose files were verified against the manifest) and returns the
// manifest's state. DATA_LOSS when optimizer.safetensors does not match the model.
absl::StatusOr<TrainingState> RestoreTrainingState(const std::string& dir, model::CausalLm& model,
                                                   torch::optim::AdamW& rl_optimizer);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_TRAINING_CHECKPOINT_H_
