#ifndef GRAIL_TOKENIZER_CHAR_TOKENIZER_H_
#define GRAIL_TOKENIZER_CHAR_TOKENIZER_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tokenizer/tokenizer.h"

namespace grail::tokenizer {

// The built-in tokenizer for bundled tasks: one token per printable ASCII character plus
// <pad>=0, <bos>=1, <eos>=2. Vocabulary size 98. Immutable; thread-safe.
class CharTokenizer : public Tokenizer {
 public:
  static constexpr int kPad = 0;
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  CharTokenizer();

  int vocab_size() const override { return 3 + 95; }
  int pad_id() const override { return kPad; }
  int bos_id() const override { return kBos; }
  int eos_id() const override { return kEos; }

  // INVALID_ARGUMENT naming the position of the first character outside printable ASCII.
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const override;
  // Special tokens are dropped; ids outside the vocabulary become '?'.
  std::string Decode(const std::vector<int>& ids) const override;

 private:
  std::array<int, 128> char_to_id_;
};

}  // namespace grail::tokenizer

#endif  // GRAIL_TOKENIZER_CHAR_TOKENIZER_H_
