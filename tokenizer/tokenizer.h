#ifndef GRAIL_TOKENIZER_TOKENIZER_H_
#define GRAIL_TOKENIZER_TOKENIZER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail::tokenizer {

// Text <-> token ids for one model. Torch-free, so the coordinator and the reward scorer
// can use it without LibTorch. Implementations are immutable and thread-safe.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // INVALID_ARGUMENT when `text` cannot be encoded (naming the position).
  virtual absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const = 0;
  // Special tokens are dropped.
  virtual std::string Decode(const std::vector<int>& ids) const = 0;

  virtual int vocab_size() const = 0;
  virtual int pad_id() const = 0;
  // Prepended to every prompt; -1 when the model has none.
  virtual int bos_id() const = 0;
  // Ends a response; -1 when the model has none.
  virtual int eos_id() const = 0;
  // Every token that ends a response (the actors' stop tokens when a run names none): the
  // EOS, plus a model family's other end-of-turn tokens.
  virtual std::vector<int> stop_ids() const {
    return eos_id() >= 0 ? std::vector<int>{eos_id()} : std::vector<int>{};
  }
};

// The tokenizer a run spec names (`model.tokenizer`): "char" (or empty) for the built-in
// character tokenizer, else a directory under `data_root` holding a Hugging Face
// tokenizer.json (and tokenizer_config.json), loaded as an HfTokenizer. Errors name
// model.tokenizer and never show the data root.
absl::StatusOr<std::unique_ptr<Tokenizer>> NewTokenizer(absl::string_view name, const std::string& data_root = "");

}  // namespace grail::tokenizer

#endif  // GRAIL_TOKENIZER_TOKENIZER_H_
