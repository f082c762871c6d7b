#include "coordinator/jsonl_data.h"

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "algo/run_spec.h"
#include "common/status_macros.h"

namespace grail::coordinator {
namespace {

using json = nlohmann::ordered_json;

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

// Calls `row_fn` with each non-blank line's object. Errors are prefixed with `file:line`.
absl::Status ForEachRow(const JsonlFile& file, const std::set<std::string>& fields,
                        const std::function<absl::Status(const json& row)>& row_fn) {
  std::ifstream in(file.path);
  if (!in) return Bad(file.field, absl::StrCat("cannot read '", file.display, "'"));
  std::string line;
  int64_t line_no = 0, rows = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (++rows > kMaxProblems) {
      return Bad(file.field, absl::StrCat("'", file.display, "' has more than ", kMaxProblems, " rows"));
    }
    const std::string where = absl::StrCat(file.display, ":", line_no, ": ");
    json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object()) return absl::InvalidArgumentError(absl::StrCat(where, "not a JSON object"));
    for (auto it = row.begin(); it != row.end(); ++it) {
      if (fields.count(it.key()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(where, "unknown field '", it.key().substr(0, 64), "' (known: ",
                                                       absl::StrJoin(fields, ", "), ")"));
      }
    }
    absl::Status s = row_fn(row);
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat(where, s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> StringField(const json& row, const std::string& field) {
  if (!row.contains(field)) return Bad(field, "missing");
  if (!row[field].is_string()) return Bad(field, "must be a string");
  return row[field].get<std::string>();
}

// The smaller of two bounds, 0 meaning none.
int64_t MinBound(int64_t a, int64_t b) { return a <= 0 ? std::max<int64_t>(b, 0) : b <= 0 ? a : std::min(a, b); }

enum class Fit { kFits, kTruncated, kSkip };

// Bounds `ids` to `bound` tokens (0: none), keeping its start or its end (and then a
// leading `bos`, when it has one).
Fit Bound(std::vector<int>* ids, int64_t bound, bool keep_end, bool truncate, int bos = -1) {
  if (bound <= 0 || static_cast<int64_t>(ids->size()) <= bound) return Fit::kFits;
  if (!truncate) return Fit::kSkip;
  if (keep_end) {
    const bool head = bos >= 0 && ids->front() == bos && bound > 1;
    ids->erase(ids->begin() + (head ? 1 : 0), ids->end() - (bound - (head ? 1 : 0)));
  } else {
    ids->resize(bound);
  }
  return Fit::kTruncated;
}

// Applies the prompt and completion bounds to a pair; false when the row is skipped.
bool BoundPair(std::vector<int>* prompt, std::vector<std::vector<int>*> completions, const LengthLimits& limits,
               int bos, LoadCounts* counts) {
  bool truncated = false;
  // A prompt leaves room for at least one response token.
  const Fit p = Bound(prompt, MinBound(limits.max_prompt, limits.context > 0 ? limits.context - 1 : 0),
                      /*keep_end=*/true, limits.truncate, bos);
  if (p == Fit::kSkip) return ++counts->skipped_too_long, false;
  truncated |= p == Fit::kTruncated;
  for (auto* c : completions) {
    const int64_t room = limits.context > 0 ? limits.context - static_cast<int64_t>(prompt->size()) : 0;
    const Fit f = Bound(c, MinBound(limits.max_response, room), /*keep_end=*/false, limits.truncate);
    if (f == Fit::kSkip) return ++counts->skipped_too_long, false;
    truncated |= f == Fit::kTruncated;
  }
  if (truncated) ++counts->truncated;
  return true;
}

absl::Status NoRows(const JsonlFile& file, const LoadCounts& counts) {
  if (counts.skipped_too_long > 0) {
    return Bad(file.field, absl::StrCat("every row of '", file.display, "' (", counts.skipped_too_long,
                                        ") is longer than dataset.max_prompt_tokens, dataset.max_response_tokens or "
                                        "model.config.max_position_embeddings allow"));
  }
  return Bad(file.field, absl::StrCat("'", file.display, "' has no rows"));
}

}  // namespace

RowEncoder::RowEncoder(std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
                       std::shared_ptr<const tokenizer::ChatEncoder> chat, tokenizer::ChatOptions chat_options)
    : tokenizer_(std::move(tokenizer)), chat_(std::move(chat)), chat_options_(chat_options) {}

absl::StatusOr<RowEncoder::Prompt> RowEncoder::EncodePrompt(const json& row) const {
  if (row.contains("prompt") == row.contains("messages")) return Bad("prompt", "set exactly one of 'prompt' and 'messages'");
  Prompt out;
  if (row.contains("prompt")) {
    ASSIGN_OR_RETURN(out.text, StringField(row, "prompt"));
    if (out.text.empty()) return Bad("prompt", "empty");
    auto ids = tokenizer_->Encode(out.text);
    if (!ids.ok()) return Bad("prompt", ids.status().message());
    if (tokenizer_->bos_id() >= 0) out.ids.push_back(tokenizer_->bos_id());
    out.ids.insert(out.ids.end(), ids->begin(), ids->end());
    return out;
  }
  if (chat_ == nullptr) return Bad("messages", "needs a tokenizer with a chat template (model.tokenizer)");
  tokenizer::ChatOptions o = chat_options_;
  o.add_generation_prompt = true;
  auto encoded = chat_->Encode(row["messages"], o);
  if (!encoded.ok()) return Bad("messages", encoded.status().message());
  if (row["messages"].empty()) return Bad("messages", "empty");
  out.text = std::move(encoded->text);
  out.ids = std::move(encoded->ids);
  return out;
}

absl::StatusOr<RowEncoder::Pair> RowEncoder::EncodeCompletion(const json& row, const std::string& field) const {
  if (!row.contains(field)) return Bad(field, "missing");
  const json& v = row[field];
  std::string text;
  if (v.is_string()) {
    text = v.get<std::string>();
  } else if (v.is_array() && v.size() == 1 && v[0].is_object() && v[0].value("role", "") == "assistant" &&
             v[0].contains("content") && v[0]["content"].is_string()) {
    text = v[0]["content"].get<std::string>();
  } else {
    return Bad(field, "must be a string or a list of one {\"role\": \"assistant\", \"content\": str} message");
  }
  if (text.empty()) return Bad(field, "empty");
  Pair out;
  if (row.contains("prompt")) {
    ASSIGN_OR_RETURN(Prompt p, EncodePrompt(row));
    out.prompt = std::move(p.ids);
    auto ids = tokenizer_->Encode(text);
    if (!ids.ok()) return Bad(field, ids.status().message());
    out.completion = std::move(*ids);
    if (tokenizer_->eos_id() >= 0) out.completion.push_back(tokenizer_->eos_id());
    return out;
  }
  if (!row.contains("messages")) return Bad("prompt", "set exactly one of 'prompt' and 'messages'");
  if (chat_ == nullptr) return Bad("messages", "needs a tokenizer with a chat template (model.tokenizer)");
  if (!row["messages"].is_array() || row["messages"].empty()) return Bad("messages", "must be a non-empty list");
  json messages = row["messages"];
  messages.push_back(json{{"role", "assistant"}, {"content", text}});
  tokenizer::ChatOptions o = chat_options_;
  o.add_generation_prompt = false;
  auto encoded = chat_->Encode(messages, o);
  if (!encoded.ok()) return Bad(field, encoded.status().message());
  // The completion is the last assistant turn: the last run of masked tokens.
  const auto& mask = encoded->assistant_mask;
  size_t end = mask.size();
  while (end > 0 && mask[end - 1] == 0) --end;
  size_t begin = end;
  while (begin > 0 && mask[begin - 1] == 1) --begin;
  if (begin == end) return Bad(field, "the chat template renders no assistant turn for it");
  out.prompt.assign(encoded->ids.begin(), encoded->ids.begin() + begin);
  out.completion.assign(encoded->ids.begin() + begin, encoded->ids.begin() + end);
  return out;
}

absl::StatusOr<SupervisedRow> RowEncoder::EncodeConversation(const json& messages) const {
  if (chat_ == nullptr) return Bad("messages", "needs a tokenizer with a chat template (model.tokenizer)");
  if (!messages.is_array() || messages.empty()) return Bad("messages", "must be a non-empty list");
  tokenizer::ChatOptions o = chat_options_;
  o.add_generation_prompt = false;
  auto encoded = chat_->Encode(messages, o);
  if (!encoded.ok()) return Bad("messages", encoded.status().message());
  SupervisedRow out{std::move(encoded->ids), std::move(encoded->assistant_mask)};
  if (std::find(out.loss_mask.begin(), out.loss_mask.end(), 1) == out.loss_mask.end()) {
    return Bad("messages", "no assistant turn to train on");
  }
  return out;
}

absl::StatusOr<Splits> LoadRlRows(const JsonlFile& file, uint64_t seed, int heldout_size, const RowEncoder* encoder,
                                  const LengthLimits& limits, LoadCounts* counts) {
  std::vector<Problem> rows;
  auto read_row = [&](const json& row) -> absl::Status {
    Problem p;
    if (row.contains("verifier")) {
      ASSIGN_OR_RETURN(p.verifier, StringField(row, "verifier"));
    }
    if (row.contains("answer")) {
      ASSIGN_OR_RETURN(p.answer, StringField(row, "answer"));
    }
    if (row.contains("constraints")) {
      if (!row["constraints"].is_object()) return Bad("constraints", "must be an object");
      p.constraints_json = row["constraints"].dump();
      if (!row.contains("verifier")) p.verifier = "ifeval";
    }
    if (p.answer.empty() && p.constraints_json.empty()) return Bad("answer", "missing");
    if (encoder == nullptr) {
      if (row.contains("messages")) return Bad("messages", "needs a tokenizer with a chat template (model.tokenizer)");
      ASSIGN_OR_RETURN(p.prompt, StringField(row, "prompt"));
      if (p.prompt.empty()) return Bad("prompt", "empty");
    } else {
      ASSIGN_OR_RETURN(RowEncoder::Prompt prompt, encoder->EncodePrompt(row));
      p.prompt = std::move(prompt.text);
      p.prompt_ids = std::move(prompt.ids);
      if (!BoundPair(&p.prompt_ids, {}, limits, encoder->tokenizer().bos_id(), counts)) return absl::OkStatus();
    }
    rows.push_back(std::move(p));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(ForEachRow(file, {"prompt", "messages", "answer", "verifier", "constraints"}, read_row));
  counts->rows = static_cast<int64_t>(rows.size());
  if (rows.empty()) return NoRows(file, *counts);
  if (heldout_size == 0) heldout_size = static_cast<int>(algo::DefaultHeldoutSize(static_cast<int64_t>(rows.size())));
  if (heldout_size >= static_cast<int>(rows.size())) {
    return Bad("dataset.heldout_size", absl::StrCat(heldout_size, " leaves no training rows of ", rows.size()));
  }
  std::mt19937_64 rng(seed);
  std::shuffle(rows.begin(), rows.end(), rng);
  std::vector<Problem> h(rows.begin(), rows.begin() + heldout_size);
  std::vector<Problem> t(rows.begin() + heldout_size, rows.end());
  return Splits{Dataset(std::move(t)), Dataset(std::move(h))};
}

absl::StatusOr<std::vector<SupervisedRow>> LoadSupervisedRows(const JsonlFile& file, const RowEncoder& encoder,
                                                              const LengthLimits& limits, LoadCounts* counts) {
  std::vector<SupervisedRow> rows;
  auto read_row = [&](const json& row) -> absl::Status {
    if (!row.contains("completion")) {
      if (!row.contains("messages")) return Bad("messages", "missing (or give 'prompt' and 'completion')");
      ASSIGN_OR_RETURN(SupervisedRow r, encoder.EncodeConversation(row["messages"]));
      // A conversation is bounded by the prompt and response bounds together; truncation
      // keeps its start.
      const int64_t bound = MinBound(limits.max_prompt > 0 && limits.max_response > 0
                                         ? limits.max_prompt + limits.max_response : 0,
                                     limits.context);
      const Fit f = Bound(&r.ids, bound, /*keep_end=*/false, limits.truncate);
      if (f == Fit::kSkip) return ++counts->skipped_too_long, absl::OkStatus();
      r.loss_mask.resize(r.ids.size());
      if (std::find(r.loss_mask.begin(), r.loss_mask.end(), 1) == r.loss_mask.end()) {
        return ++counts->skipped_too_long, absl::OkStatus();  // truncation left no assistant token
      }
      if (f == Fit::kTruncated) ++counts->truncated;
      rows.push_back(std::move(r));
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(RowEncoder::Pair pair, encoder.EncodeCompletion(row, "completion"));
    if (!BoundPair(&pair.prompt, {&pair.completion}, limits, encoder.tokenizer().bos_id(), counts)) return absl::OkStatus();
    SupervisedRow r;
    r.ids = pair.prompt;
    r.ids.insert(r.ids.end(), pair.completion.begin(), pair.completion.end());
    r.loss_mask.assign(pair.prompt.size(), 0);
    r.loss_mask.resize(r.ids.size(), 1);
    rows.push_back(std::move(r));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(ForEachRow(file, {"prompt", "messages", "completion"}, read_row));
  counts->rows = static_cast<int64_t>(rows.size());
  if (rows.empty()) return NoRows(file, *counts);
  return rows;
}

absl::StatusOr<std::vector<PreferenceRow>> LoadPreferenceRows(const JsonlFile& file, const RowEncoder& encoder,
                                                              const LengthLimits& limits, LoadCounts* counts) {
  std::vector<PreferenceRow> rows;
  auto read_row = [&](const json& row) -> absl::Status {
    PreferenceRow r;
    ASSIGN_OR_RETURN(RowEncoder::Pair chosen, encoder.EncodeCompletion(row, "chosen"));
    ASSIGN_OR_RETURN(RowEncoder::Pair rejected, encoder.EncodeCompletion(row, "rejected"));
    if (chosen.prompt != rejected.prompt) {
      return Bad("rejected", "the chat template renders the prompt differently before 'chosen' and 'rejected'");
    }
    if (row.contains("margin")) {
      if (!row["margin"].is_number()) return Bad("margin", "must be a number");
      r.margin = row["margin"].get<double>();
    }
    r.prompt = std::move(chosen.prompt);
    r.chosen = std::move(chosen.completion);
    r.rejected = std::move(rejected.completion);
    if (!BoundPair(&r.prompt, {&r.chosen, &r.rejected}, limits, encoder.tokenizer().bos_id(), counts)) return absl::OkStatus();
    rows.push_back(std::move(r));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(ForEachRow(file, {"prompt", "messages", "chosen", "rejected", "margin"}, read_row));
  counts->rows = static_cast<int64_t>(rows.size());
  if (rows.empty()) return NoRows(file, *counts);
  return rows;
}

absl::StatusOr<std::vector<ProbeRow>> LoadProbeRows(const JsonlFile& file, const RowEncoder& encoder,
                                                    const LengthLimits& limits, LoadCounts* counts) {
  std::vector<ProbeRow> rows;
  auto read_row = [&](const json& row) -> absl::Status {
    ProbeRow r;
    // Each response is encoded as a completion of the row's prompt, so a chat template
    // renders every one as the assistant's turn.
    auto completion = [&](const json& value, const std::string& field) -> absl::StatusOr<std::vector<int>> {
      json one = row;
      one[field] = value;
      ASSIGN_OR_RETURN(RowEncoder::Pair pair, encoder.EncodeCompletion(one, field));
      if (r.prompt.empty()) r.prompt = pair.prompt;
      if (pair.prompt != r.prompt) return Bad(field, "the chat template renders the prompt differently before it");
      return std::move(pair.completion);
    };
    for (const char* field : {"chosen", "rejected"}) {
      if (!row.contains(field)) return Bad(field, "missing");
    }
    ASSIGN_OR_RETURN(r.chosen, completion(row["chosen"], "chosen"));
    ASSIGN_OR_RETURN(r.rejected, completion(row["rejected"], "rejected"));
    if (row.contains("unrelated")) {
      ASSIGN_OR_RETURN(r.unrelated, completion(row["unrelated"], "unrelated"));
    }
    for (auto [field, out] : {std::pair<const char*, std::vector<std::vector<int>>*>{"chosen_paraphrases",
                                                                                      &r.chosen_paraphrases},
                              {"rejected_paraphrases", &r.rejected_paraphrases}}) {
      if (!row.contains(field)) continue;
      if (!row[field].is_array() || row[field].size() > 16) return Bad(field, "must be a list of at most 16 responses");
      for (size_t i = 0; i < row[field].size(); ++i) {
        ASSIGN_OR_RETURN(std::vector<int> ids, completion(row[field][i], absl::StrCat(field, "[", i, "]")));
        out->push_back(std::move(ids));
      }
    }
    std::vector<std::vector<int>*> responses = {&r.chosen, &r.rejected};
    if (!r.unrelated.empty()) responses.push_back(&r.unrelated);
    for (auto& p : r.chosen_paraphrases) responses.push_back(&p);
    for (auto& p : r.rejected_paraphrases) responses.push_back(&p);
    if (!BoundPair(&r.prompt, responses, limits, encoder.tokenizer().bos_id(), counts)) return absl::OkStatus();
    rows.push_back(std::move(r));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(ForEachRow(file, {"prompt", "messages", "chosen", "rejected", "chosen_paraphrases",
                                    "rejected_paraphrases", "unrelated"},
                             read_row));
  counts->rows = static_cast<int64_t>(rows.size());
  if (rows.empty()) return NoRows(file, *counts);
  return rows;
}

absl::StatusOr<std::vector<UnpairedRow>> LoadUnpairedRows(const JsonlFile& file, const RowEncoder& encoder,
                                                          const LengthLimits& limits, LoadCounts* counts) {
  std::vector<UnpairedRow> rows;
  auto read_row = [&](const json& row) -> absl::Status {
    if (!row.contains("label")) return Bad("label", "missing");
    if (!row["label"].is_boolean()) return Bad("label", "must be true (desirable) or false (undesirable)");
    ASSIGN_OR_RETURN(RowEncoder::Pair pair, encoder.EncodeCompletion(row, "completion"));
    UnpairedRow r{std::move(pair.prompt), std::move(pair.completion), row["label"].get<bool>()};
    if (!BoundPair(&r.prompt, {&r.completion}, limits, encoder.tokenizer().bos_id(), counts)) return absl::OkStatus();
    rows.push_back(std::move(r));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(ForEachRow(file, {"prompt", "messages", "completion", "label"}, read_row));
  counts->rows = static_cast<int64_t>(rows.size());
  if (rows.empty()) return NoRows(file, *counts);
  return rows;
}

}  // namespace grail::coordinator
