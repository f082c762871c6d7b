#ifndef GRAIL_TOKENIZER_HF_TOKENIZER_H_
#define GRAIL_TOKENIZER_HF_TOKENIZER_H_

// Hugging Face tokenizers from their tokenizer.json: byte-level BPE as the Qwen2/Qwen2.5/
// Qwen3 and Llama-3 families ship it, encoded as the reference library (`tokenizers`) does.
//
//   normalizer      none or NFC (ICU)
//   pre_tokenizer   Split (a regex, behaviour Isolated; PCRE2 with Unicode properties, which
//                   takes the patterns' \p{L}, (?i:...) and \s+(?!\S)) and ByteLevel, alone or
//                   in a Sequence
//   model           BPE: merges as "a b" strings or [a, b] pairs, lowest rank first and
//                   leftmost on ties; ignore_merges (a piece already in the vocabulary is
//                   one token)
//   added tokens    matched leftmost-longest before normalization (normalized: false) or
//                   after it, with lstrip, rstrip and single_word
//   post_processor  ByteLevel, TemplateProcessing (single), or a Sequence of them
//   decoder         ByteLevel (invalid UTF-8 becomes U+FFFD, as the reference does)
//
// Anything else in tokenizer.json is refused by name. Immutable after loading; thread-safe
// (the BPE cache has its own lock).

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tokenizer/tokenizer.h"

namespace grail::tokenizer {

struct EncodeOptions {
  // Applies the post-processor's template (Llama-3.1's <|begin_of_text|>).
  bool add_special_tokens = false;
  // Text of a special added token inside the input becomes that token. The reference
  // library does this for every input; for data (a user's message) it is off, so that a
  // message cannot forge a turn boundary. Non-special added tokens (Qwen3's <think>) are
  // always matched, as the reference does.
  bool parse_special_tokens = false;
  // With parse_special_tokens: byte ranges of the input where special-token text stays text
  // (the messages' content inside a rendered chat, so that a message cannot forge a turn
  // boundary while the template's own tokens are parsed). Sorted, not overlapping. Applies
  // to special tokens matched on the raw text (`normalized: false`, as every chat token is).
  std::vector<std::pair<size_t, size_t>> literal_spans;
};

class HfTokenizer : public Tokenizer {
 public:
  // `dir` holds tokenizer.json and optionally tokenizer_config.json (bos/eos/pad tokens,
  // clean_up_tokenization_spaces). Errors name the file and the unsupported component.
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromDir(const std::string& dir);
  // tokenizer.json's text (and tokenizer_config.json's, or "").
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromJson(absl::string_view tokenizer_json,
                                                               absl::string_view config_json);
  ~HfTokenizer() override;

  // The data path: no special-token parsing, no post-processor.
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const override;
  absl::StatusOr<std::vector<int>> Encode(absl::string_view text, const EncodeOptions& options) const;
  // Drops special tokens.
  std::string Decode(const std::vector<int>& ids) const override;
  // As transformers' decode: the decoder's text, with clean_up_tokenization_spaces applied
  // when tokenizer_config.json asks for it. INVALID_ARGUMENT for an id outside the vocabulary.
  absl::StatusOr<std::string> Decode(const std::vector<int>& ids, bool skip_special_tokens) const;

  int vocab_size() const override;
  int pad_id() const override;
  int bos_id() const override;
  int eos_id() const override;
  // The EOS and whichever of <|im_end|>, <|endoftext|>, <|eot_id|>, <|eom_id|>,
  // <|end_of_text|> the vocabulary has as special tokens (chat turns end with one, raw text
  // with another).
  std::vector<int> stop_ids() const override;
  // -1 when the vocabulary has no such token.
  int TokenId(absl::string_view token) const;
  // The bytes token `id` stands for in (normalized) text: byte-level decoded, or an added
  // token's content. Empty for an id outside the vocabulary.
  std::string TokenBytes(int id) const;
  // chat_template from tokenizer_config.json ("" when it has none), and its bos/eos text.
  const std::string& chat_template() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  bool IsSpecial(int id) const;
  // `text` as the normalizer leaves it (NFC, or unchanged when tokenizer.json has none):
  // the text the tokens' TokenBytes spell.
  absl::StatusOr<std::string> Normalize(absl::string_view text) const;

  class Impl;

 private:
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  static absl::StatusOr<std::unique_ptr<HfTokenizer>> FromJsonUnchecked(absl::string_view tokenizer_json,
                                                                        absl::string_view config_json);
  std::unique_ptr<Impl> impl_;
};

// Decodes a token stream as it is generated: Next returns the text a new token completes,
// and holds back tokens that end inside a UTF-8 character (byte-level and byte-fallback
// tokens split characters) until a later token completes it. The pieces concatenate to
// Decode of the whole stream. Keeps the previous piece's tokens as context so that
// decoders that depend on a token's neighbours (SentencePiece's leading space) decode each
// piece as they would the whole. Not thread-safe.
class DecodeStream {
 public:
  DecodeStream(const HfTokenizer& tokenizer, bool skip_special_tokens)
      : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}
  absl::StatusOr<std::string> Next(int id);

 private:
  const HfTokenizer& tokenizer_;
  const bool skip_special_tokens_;
  std::vector<int> window_;  // context tokens, then tokens not yet emitted
  size_t context_ = 0;
};

}  // namespace grail::tokenizer

#endif  // GRAIL_TOKENIZER_HF_TOKENIZER_H_
