#ifndef GRAIL_TOKENIZER_CHAT_TEMPLATE_H_
#define GRAIL_TOKENIZER_CHAT_TEMPLATE_H_

// Chat templates: the Jinja subset that Hugging Face chat templates use, rendered as
// transformers' apply_chat_template does (trim_blocks, lstrip_blocks, no trailing newline
// kept, raise_exception, tojson with json.dumps' defaults, Python's string methods).
//
// Supported: {{ }}, {% if/elif/else %}, {% for x in xs %} with loop.index/index0/first/last/
// length/revindex, {% set x = ... %} (and ns.attr with namespace()), whitespace control
// (-), comments; expressions with and/or/not, comparisons, in, is [not] (defined, undefined,
// none, string, number, mapping, sequence, iterable, true, false, boolean), + - * / // %,
// ~, conditional expressions, subscripts and slices, attribute access, list/dict literals;
// filters length, count, tojson, trim, string, lower, upper, first, last, join, default,
// reverse, list, items; string methods startswith, endswith, split, strip, lstrip, rstrip,
// upper, lower, replace; dict methods get, items, keys, values. Anything else is refused
// with an error naming the template line.

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail::tokenizer {

class ChatTemplate {
 public:
  // INVALID_ARGUMENT naming the line of the first construct it cannot parse.
  static absl::StatusOr<std::unique_ptr<ChatTemplate>> Parse(absl::string_view source);
  ~ChatTemplate();

  // Renders with the given variables (messages, add_generation_prompt, bos_token,
  // eos_token, tools, enable_thinking, ...: whatever the template reads). Errors name the
  // template line; raise_exception's message is passed through.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& variables) const;

  struct Node;

 private:
  ChatTemplate() = default;
  std::vector<std::unique_ptr<Node>> body_;
};

}  // namespace grail::tokenizer

#endif  // GRAIL_TOKENIZER_CHAT_TEMPLATE_H_
