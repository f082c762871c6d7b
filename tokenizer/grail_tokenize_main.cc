// grail-tokenize --tokenizer=DIR encode|decode|chat: the command-line face of grail's
// tokenizers. Reads JSONL on stdin, writes exactly one JSONL line per input line:
//   encode: {"text", "add_special_tokens"?} -> {"ids"}
//   decode: {"ids", "skip_special_tokens"?, "stream"?} -> {"text", "pieces"?}: with stream,
//           also the text each token completes (tokenizer::DecodeStream), one per id
//   chat:   {"messages", "add_generation_prompt"?, "enable_thinking"?, "tools"?,
//            "parse_special_in_content"?}
//           -> {"text", "ids", "assistant_mask"}: tokenizer_config.json's chat_template
//           rendered as transformers does, encoded without add_special_tokens; the mask is 1
//           on each assistant turn's tokens, from just after its header through its
//           end-of-turn token (tokenizer/chat_encoding.h). Special-token text inside a
//           message's content stays text unless parse_special_in_content is true (what the
//           reference library does).
// A bad line gets {"error": "<field>: <reason>"} and the tool goes on with the next one.
// `encode` follows the reference library: added tokens in the text are parsed.

#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "common/cli.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/hf_tokenizer.h"

ABSL_FLAG(std::string, tokenizer, "", "Directory holding tokenizer.json (and tokenizer_config.json)");

namespace {

constexpr char kUsage[] =
    "grail-tokenize: encodes or decodes JSONL lines with a Hugging Face tokenizer.\n"
    "Usage: grail-tokenize --tokenizer=DIR encode|decode|chat < in.jsonl > out.jsonl";

using json = nlohmann::ordered_json;  // key order matters to templates (tojson)

json Error(const std::string& what) { return json{{"error", what}}; }

json Encode(const grail::tokenizer::HfTokenizer& tok, const json& in) {
  if (!in.contains("text") || !in["text"].is_string()) return Error("text: missing or not a string");
  if (in.contains("add_special_tokens") && !in["add_special_tokens"].is_boolean()) {
    return Error("add_special_tokens: not a boolean");
  }
  grail::tokenizer::EncodeOptions o;
  o.add_special_tokens = in.value("add_special_tokens", false);
  o.parse_special_tokens = true;
  auto ids = tok.Encode(in["text"].get<std::string>(), o);
  if (!ids.ok()) return Error(std::string(ids.status().message()));
  return json{{"ids", *ids}};
}

json Decode(const grail::tokenizer::HfTokenizer& tok, const json& in) {
  if (!in.contains("ids") || !in["ids"].is_array()) return Error("ids: missing or not a list");
  std::vector<int> ids;
  for (size_t i = 0; i < in["ids"].size(); ++i) {
    const json& v = in["ids"][i];
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      return Error("ids[" + std::to_string(i) + "]: not a token id");
    }
    ids.push_back(v.get<int>());
  }
  for (const char* flag : {"skip_special_tokens", "stream"}) {
    if (in.contains(flag) && !in[flag].is_boolean()) return Error(std::string(flag) + ": not a boolean");
  }
  const bool skip = in.value("skip_special_tokens", false);
  auto text = tok.Decode(ids, skip);
  if (!text.ok()) return Error(std::string(text.status().message()));
  if (!in.value("stream", false)) return json{{"text", *text}};
  // The pieces a streaming client would show, one per token.
  grail::tokenizer::DecodeStream stream(tok, skip);
  json pieces = json::array();
  for (int id : ids) {
    auto piece = stream.Next(id);
    if (!piece.ok()) return Error(std::string(piece.status().message()));
    pieces.push_back(*piece);
  }
  return json{{"text", *text}, {"pieces", pieces}};
}

json Chat(const grail::tokenizer::ChatEncoder& encoder, const json& in) {
  if (!in.contains("messages")) return Error("messages: missing");
  for (const char* flag : {"add_generation_prompt", "enable_thinking", "parse_special_in_content"}) {
    if (in.contains(flag) && !in[flag].is_boolean()) return Error(std::string(flag) + ": not a boolean");
  }
  grail::tokenizer::ChatOptions o;
  o.add_generation_prompt = in.value("add_generation_prompt", false);
  if (in.contains("enable_thinking")) o.enable_thinking = in["enable_thinking"].get<bool>();
  o.parse_special_in_content = in.value("parse_special_in_content", false);
  json extra = json::object();
  if (in.contains("tools")) extra["tools"] = in["tools"];
  auto encoded = encoder.Encode(in["messages"], o, extra);
  if (!encoded.ok()) return Error(std::string(encoded.status().message()));
  return json{{"text", encoded->text}, {"ids", encoded->ids}, {"assistant_mask", encoded->assistant_mask}};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = grail::ParseCommandLineOrExit(argc, argv, kUsage);
  if (args.size() != 2 || (args[1] != "encode" && args[1] != "decode" && args[1] != "chat")) {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  auto tok = grail::tokenizer::HfTokenizer::FromDir(absl::GetFlag(FLAGS_tokenizer));
  if (!tok.ok()) {
    std::cerr << "grail-tokenize: " << tok.status() << std::endl;
    return 1;
  }
  std::shared_ptr<const grail::tokenizer::HfTokenizer> shared = std::move(*tok);
  std::unique_ptr<grail::tokenizer::ChatEncoder> encoder;
  if (args[1] == "chat") {
    auto made = grail::tokenizer::ChatEncoder::Create(shared, "", "tokenizer_config.json chat_template");
    if (!made.ok()) {
      std::cerr << "grail-tokenize: " << made.status() << std::endl;
      return 1;
    }
    encoder = std::move(*made);
  }
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    const json in = json::parse(line, nullptr, /*allow_exceptions=*/false);
    json out;
    if (!in.is_object()) {
      out = Error("line: not a JSON object");
    } else {
      out = args[1] == "encode" ? Encode(*shared, in) : args[1] == "decode" ? Decode(*shared, in) : Chat(*encoder, in);
    }
    // Invalid UTF-8 can only come from a decode; it is already replaced by U+FFFD.
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  }
  return 0;
}
