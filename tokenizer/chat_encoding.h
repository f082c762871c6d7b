#ifndef GRAIL_TOKENIZER_CHAT_ENCODING_H_
#define GRAIL_TOKENIZER_CHAT_ENCODING_H_

// Conversations to token ids: a chat template rendered, encoded with the template's special
// tokens parsed and the messages' text kept as text, and the assistant-token mask SFT trains
// on.
//
// The mask comes from incremental rendering. For each assistant message i, the conversation
// up to it rendered with the generation prompt must be a prefix of the whole rendering (the
// template is prefix-preserving there); the turn's tokens start after that prefix and end
// where the rendering of messages[0..i] ends, or, when the template renders a last turn
// differently from an earlier one (Qwen3's empty <think> block), at the first end-of-turn
// token after the message's content. The end-of-turn token is in the mask; whitespace the
// template puts after it is not.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/hf_tokenizer.h"

namespace grail::tokenizer {

struct ChatOptions {
  bool add_generation_prompt = false;
  std::optional<bool> enable_thinking;  // passed to the template when set
  // Special-token text in a message's content becomes that special token, as the reference
  // library does. Off for data: a message cannot forge a turn boundary.
  bool parse_special_in_content = false;
};

struct EncodedChat {
  std::string text;
  std::vector<int> ids;
  std::vector<uint8_t> assistant_mask;  // one per id
};

// Immutable and thread-safe.
class ChatEncoder {
 public:
  // `template_source` empty: the tokenizer's chat_template. Errors name `field` (the run spec
  // field the template came from).
  static absl::StatusOr<std::unique_ptr<ChatEncoder>> Create(std::shared_ptr<const HfTokenizer> tokenizer,
                                                             const std::string& template_source,
                                                             const std::string& field = "chat_template");

  // `messages`: a list of {"role": str, "content": str, ...} objects (other keys, such as
  // reasoning_content or tool_calls, go to the template as they are). `extra`: further
  // template variables (tools). Errors name messages[i] and the field.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages, const ChatOptions& options,
                                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
  absl::StatusOr<EncodedChat> Encode(const nlohmann::ordered_json& messages, const ChatOptions& options,
                                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const HfTokenizer& tokenizer() const { return *tokenizer_; }

 private:
  ChatEncoder(std::shared_ptr<const HfTokenizer> tokenizer, std::unique_ptr<ChatTemplate> tmpl)
      : tokenizer_(std::move(tokenizer)), template_(std::move(tmpl)) {}
  std::shared_ptr<const HfTokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> template_;
  std::vector<std::string> stops_;     // end-of-turn tokens' text
  std::vector<std::string> specials_;  // every special token's text, to spot forged ones
};

}  // namespace grail::tokenizer

#endif  // GRAIL_TOKENIZER_CHAT_ENCODING_H_
