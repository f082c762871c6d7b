// grail-tokenize --tokenizer=DIR encode|decode|chat: the command-line face of grail's
// tokenizers. Reads JSONL on stdin, writes exactly one JSONL line per input line:
//   encode: {"text", "add_special_tokens"?} -> {"ids"}
//   decode: {"ids", "skip_special_tokens"?} -> {"text"}
//   chat:   {"messages", "add_generation_prompt"?, "enable_thinking"?, "tools"?}
//           -> {"text", "ids", "assistant_mask"}: tokenizer_config.json's chat_template
//           rendered as transformers does, encoded without add_special_tokens; the mask is 1
//           on tokens that overlap an assistant turn's content, from just after its header
//           through its end token (<|im_end|> or <|eot_id|>), end token included.
// A bad line gets {"error": "<field>: <reason>"} and the tool goes on with the next one.
// Encoding follows the reference library: added tokens in the text are parsed.

#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "common/cli.h"
#include "tokenizer/chat_template.h"
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
  if (in.contains("skip_special_tokens") && !in["skip_special_tokens"].is_boolean()) {
    return Error("skip_special_tokens: not a boolean");
  }
  auto text = tok.Decode(ids, in.value("skip_special_tokens", false));
  if (!text.ok()) return Error(std::string(text.status().message()));
  return json{{"text", *text}};
}

// The assistant regions of a rendered chat: [start, end) byte ranges of `text`.
std::vector<std::pair<size_t, size_t>> AssistantRegions(const std::string& text, const std::string& header,
                                                        const std::string& end) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t pos = 0;
  while (true) {
    const size_t h = text.find(header, pos);
    if (h == std::string::npos) break;
    const size_t start = h + header.size();
    const size_t e = text.find(end, start);
    if (e == std::string::npos) break;  // a trailing generation prompt: no content yet
    out.push_back({start, e + end.size()});
    pos = e + end.size();
  }
  return out;
}

json Chat(const grail::tokenizer::HfTokenizer& tok, const grail::tokenizer::ChatTemplate& tmpl, const json& in) {
  if (!in.contains("messages") || !in["messages"].is_array()) return Error("messages: missing or not a list");
  for (size_t i = 0; i < in["messages"].size(); ++i) {
    const json& m = in["messages"][i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
      return Error("messages[" + std::to_string(i) + "].role: missing or not a string");
    }
  }
  for (const char* flag : {"add_generation_prompt", "enable_thinking"}) {
    if (in.contains(flag) && !in[flag].is_boolean()) return Error(std::string(flag) + ": not a boolean");
  }
  nlohmann::ordered_json vars;
  vars["messages"] = in["messages"];
  vars["add_generation_prompt"] = in.value("add_generation_prompt", false);
  vars["bos_token"] = tok.bos_token();
  vars["eos_token"] = tok.eos_token();
  if (in.contains("enable_thinking")) vars["enable_thinking"] = in["enable_thinking"].get<bool>();
  if (in.contains("tools")) vars["tools"] = in["tools"];
  auto text = tmpl.Render(vars);
  if (!text.ok()) return Error(std::string(text.status().message()));
  grail::tokenizer::EncodeOptions o;
  o.parse_special_tokens = true;  // the template's own special tokens
  auto ids = tok.Encode(*text, o);
  if (!ids.ok()) return Error(std::string(ids.status().message()));
  // Token byte ranges over the (normalized) text the tokens spell.
  std::string spelled;
  std::vector<std::pair<size_t, size_t>> spans;
  for (int id : *ids) {
    const size_t b = spelled.size();
    spelled += tok.TokenBytes(id);
    spans.push_back({b, spelled.size()});
  }
  std::string header, end;
  if (tok.TokenId("<|im_start|>") >= 0) {
    header = "<|im_start|>assistant\n", end = "<|im_end|>";
  } else if (tok.TokenId("<|start_header_id|>") >= 0) {
    header = "<|start_header_id|>assistant<|end_header_id|>\n\n", end = "<|eot_id|>";
  } else {
    return Error("assistant_mask: the tokenizer has neither ChatML nor Llama-3 turn tokens");
  }
  const auto regions = AssistantRegions(spelled, header, end);
  std::vector<int> mask;
  for (const auto& [b, e] : spans) {
    int in_region = 0;
    for (const auto& [rs, re] : regions) in_region |= b < re && e > rs;
    mask.push_back(in_region);
  }
  return json{{"text", *text}, {"ids", *ids}, {"assistant_mask", mask}};
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
  std::unique_ptr<grail::tokenizer::ChatTemplate> tmpl;
  if (args[1] == "chat") {
    if ((*tok)->chat_template().empty()) {
      std::cerr << "grail-tokenize: tokenizer_config.json has no chat_template" << std::endl;
      return 1;
    }
    auto parsed = grail::tokenizer::ChatTemplate::Parse((*tok)->chat_template());
    if (!parsed.ok()) {
      std::cerr << "grail-tokenize: " << parsed.status() << std::endl;
      return 1;
    }
    tmpl = std::move(*parsed);
  }
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    const json in = json::parse(line, nullptr, /*allow_exceptions=*/false);
    json out;
    if (!in.is_object()) {
      out = Error("line: not a JSON object");
    } else {
      out = args[1] == "encode" ? Encode(**tok, in) : args[1] == "decode" ? Decode(**tok, in) : Chat(**tok, *tmpl, in);
    }
    // Invalid UTF-8 can only come from a decode; it is already replaced by U+FFFD.
    std::cout << out.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
  }
  return 0;
}
