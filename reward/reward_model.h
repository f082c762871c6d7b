#ifndef GRAIL_REWARD_REWARD_MODEL_H_
#define GRAIL_REWARD_REWARD_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grail::reward {

// Scores texts with a reward model. The interface is torch-free so that the verifier code
// does not depend on LibTorch; the implementation (NewTorchRewardModel) does.
class RewardModel {
 public:
  virtual ~RewardModel() = default;
  // Swaps in a new model (safetensors blob with its config; must have a value head). The
  // blob's metadata may name its tokenizer (model::kTokenizerMetadataKey: a directory under
  // the scorer's data root, or "char", the default); its vocabulary must fit the model's.
  virtual absl::Status Load(std::string blob, int64_t version) = 0;
  // One scalar per text, read as a finished response: the value head at the EOS after the
  // text's tokens (the model's tokenizer, its BOS first and EOS last when it has them), where
  // the reward_model objective reads its scores. FAILED_PRECONDITION when no model is loaded.
  virtual absl::StatusOr<std::vector<double>> Score(const std::vector<std::string>& texts) = 0;
};

// A LibTorch reward model. Thread-safe. Tokenizer directories resolve under `data_root`.
std::unique_ptr<RewardModel> NewTorchRewardModel(std::string data_root = "");

}  // namespace grail::reward

#endif  // GRAIL_REWARD_REWARD_MODEL_H_
