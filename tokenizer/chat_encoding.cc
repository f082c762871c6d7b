#include "tokenizer/chat_encoding.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace grail::tokenizer {
namespace {

using json = nlohmann::ordered_json;

json Prefix(const json& messages, size_t n) {
  json out = json::array();
  for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
  return out;
}

bool AllWhitespace(absl::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; });
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChatEncoder>> ChatEncoder::Create(std::shared_ptr<const HfTokenizer> tokenizer,
                                                                 const std::string& template_source,
                                                                 const std::string& field) {
  const std::string& source = template_source.empty() ? tokenizer->chat_template() : template_source;
  if (source.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": the tokenizer's tokenizer_config.json has no chat_template"));
  }
  auto parsed = ChatTemplate::Parse(source);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": ", parsed.status().message()));
  std::unique_ptr<ChatEncoder> encoder(new ChatEncoder(std::move(tokenizer), std::move(*parsed)));
  const HfTokenizer& tok = *encoder->tokenizer_;
  for (int id : tok.stop_ids()) encoder->stops_.push_back(tok.TokenBytes(id));
  for (int id = 0; id < tok.vocab_size(); ++id) {
    if (tok.IsSpecial(id)) encoder->specials_.push_back(tok.TokenBytes(id));
  }
  return encoder;
}

absl::StatusOr<std::string> ChatEncoder::Render(const json& messages, const ChatOptions& options,
                                                const json& extra) const {
  if (!messages.is_array()) return absl::InvalidArgumentError("messages: not a list");
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, ": not an object"));
    if (!m.contains("role") || !m["role"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".role: missing or not a string"));
    }
    if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".content: not a string"));
    }
  }
  json vars;
  vars["messages"] = messages;
  vars["add_generation_prompt"] = options.add_generation_prompt;
  vars["bos_token"] = tokenizer_->bos_token();
  vars["eos_token"] = tokenizer_->eos_token();
  if (options.enable_thinking.has_value()) vars["enable_thinking"] = *options.enable_thinking;
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it) vars[it.key()] = it.value();
  }
  return template_->Render(vars);
}

absl::StatusOr<EncodedChat> ChatEncoder::Encode(const json& messages, const ChatOptions& options,
                                                const json& extra) const {
  EncodedChat out;
  auto rendered = Render(messages, options, extra);
  if (!rendered.ok()) return rendered.status();
  out.text = std::move(*rendered);
  const std::string& text = out.text;

  const std::vector<std::string>& stops = stops_;
  const std::vector<std::string>& specials = specials_;
  std::vector<std::pair<size_t, size_t>> content_spans, regions;
  size_t cursor = 0;
  ChatOptions plain = options;
  plain.add_generation_prompt = false;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    const bool assistant = m["role"].get<std::string>() == "assistant";
    size_t start = 0;
    if (assistant) {
      // The turn starts after the generation prompt. A template may add more to the prompt
      // of a reply it is about to generate than to an earlier turn (Qwen3's empty <think>
      // block with enable_thinking false): then the plain prompt is the turn's start.
      ChatOptions gen = options;
      gen.add_generation_prompt = true;
      auto before = Render(Prefix(messages, i), gen, extra);
      if (!before.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", before.status().message()));
      if (!absl::StartsWith(text, *before) && gen.enable_thinking.has_value()) {
        gen.enable_thinking.reset();
        before = Render(Prefix(messages, i), gen, extra);
        if (!before.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", before.status().message()));
      }
      if (absl::StartsWith(text, *before)) {
        start = before->size();
      } else {
        // Not prefix-preserving: the template renders an earlier turn differently once later
        // turns follow (Qwen3 drops the reasoning of turns before the last user query). The
        // turn starts after the next header the generation prompt adds.
        auto bare = Render(Prefix(messages, i), plain, extra);
        if (!bare.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", bare.status().message()));
        const size_t h = absl::StartsWith(*before, *bare) && before->size() > bare->size()
                             ? text.find(before->substr(bare->size()), cursor)
                             : std::string::npos;
        if (h == std::string::npos) {
          return absl::InvalidArgumentError(absl::StrCat(
              where, ": the chat template renders the conversation before this assistant turn differently from the "
                     "whole conversation, and the turn's header is not found, so its tokens cannot be masked"));
        }
        start = h + before->size() - bare->size();
      }
      cursor = std::max(cursor, start);
    }
    // The message ends where the conversation through it ends, when the template is
    // prefix-preserving here, else at its end-of-turn token.
    auto through = Render(Prefix(messages, i + 1), plain, extra);
    if (!through.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", through.status().message()));
    const bool preserved = absl::StartsWith(text, *through) && through->size() >= cursor;
    auto next_stop = [&](size_t from) {
      size_t end = std::string::npos;
      for (const std::string& s : stops) {
        const size_t e = s.empty() ? std::string::npos : text.find(s, from);
        if (e != std::string::npos) end = std::min(end, e + s.size());
      }
      return end;
    };
    const size_t limit = preserved ? through->size() : std::min(text.size(), next_stop(cursor));
    const std::string content = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
    size_t content_end = cursor;
    if (!content.empty()) {
      const size_t pos = text.find(content, cursor);
      if (pos != std::string::npos && pos + content.size() <= limit) {
        content_spans.push_back({pos, pos + content.size()});
        content_end = cursor = pos + content.size();
      } else if (!options.parse_special_in_content &&
                 std::any_of(specials.begin(), specials.end(),
                             [&](const std::string& s) { return !s.empty() && absl::StrContains(content, s); })) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".content: holds special-token text, and the chat template does not render it verbatim"));
      }
    }
    if (!assistant) continue;
    size_t end = preserved && through->size() > start ? through->size() : next_stop(content_end);
    if (end == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": no end-of-turn token after the assistant turn"));
    }
    // The end-of-turn token is the last masked token: whitespace after it is template.
    size_t last_stop = std::string::npos, last_stop_end = 0;
    for (const std::string& s : stops) {
      if (s.empty()) continue;
      const size_t q = text.rfind(s, end - std::min(end, s.size()));
      if (q != std::string::npos && q >= start && q + s.size() <= end &&
          (last_stop == std::string::npos || q + s.size() > last_stop_end)) {
        last_stop = q, last_stop_end = q + s.size();
      }
    }
    if (last_stop != std::string::npos && AllWhitespace(absl::string_view(text).substr(last_stop_end, end - last_stop_end))) {
      end = last_stop_end;
    }
    regions.push_back({start, end});
    cursor = std::max(cursor, end);
  }

  EncodeOptions eo;
  eo.parse_special_tokens = true;  // the template's own tokens
  if (!options.parse_special_in_content) eo.literal_spans = content_spans;
  auto ids = tokenizer_->Encode(text, eo);
  if (!ids.ok()) return ids.status();
  out.ids = std::move(*ids);

  // Token byte ranges over the normalized text the tokens spell; region bounds mapped there.
  auto normalized = tokenizer_->Normalize(text);
  if (!normalized.ok()) return normalized.status();
  std::vector<std::pair<size_t, size_t>> spans;
  size_t at = 0;
  for (int id : out.ids) {
    const size_t b = at;
    at += tokenizer_->TokenBytes(id).size();
    spans.push_back({b, at});
  }
  if (at != normalized->size()) {
    return absl::InternalError("chat encoding: the tokens do not spell the rendered text");
  }
  auto map = [&](size_t p) -> absl::StatusOr<size_t> {
    if (*normalized == text) return p;
    auto n = tokenizer_->Normalize(absl::string_view(text).substr(0, p));
    if (!n.ok()) return n.status();
    return n->size();
  };
  out.assistant_mask.assign(out.ids.size(), 0);
  for (const auto& [rb, re] : regions) {
    auto b = map(rb);
    if (!b.ok()) return b.status();
    auto e = map(re);
    if (!e.ok()) return e.status();
    for (size_t t = 0; t < spans.size(); ++t) {
      if (spans[t].first < *e && spans[t].second > *b) out.assistant_mask[t] = 1;
    }
  }
  return out;
}

}  // namespace grail::tokenizer
