#include "tokenizer/char_tokenizer.h"

#include "absl/strings/str_cat.h"

namespace grail::tokenizer {

CharTokenizer::CharTokenizer() {
  char_to_id_.fill(-1);
  for (int c = 32; c < 127; ++c) char_to_id_[c] = 3 + (c - 32);
}

absl::StatusOr<std::vector<int>> CharTokenizer::Encode(absl::string_view text) const {
  std::vector<int> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 128 || char_to_id_[c] < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "text[", i, "]: character code ", static_cast<int>(c), " is not in the char vocabulary"));
    }
    ids.push_back(char_to_id_[c]);
  }
  return ids;
}

std::string CharTokenizer::Decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) {
    if (id == kPad || id == kBos || id == kEos) continue;
    out.push_back(id >= 3 && id < vocab_size() ? static_cast<char>(id - 3 + 32) : '?');
  }
  return out;
}

}  // namespace grail::tokenizer
