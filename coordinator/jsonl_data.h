#ifndef GRAIL_COORDINATOR_JSONL_DATA_H_
#define GRAIL_COORDINATOR_JSONL_DATA_H_

// Dataset files: JSONL rows of the four kinds a run trains on, read strictly (errors name
// `file:line` and the field) and tokenized once, at submit.
//
//   RL:          {"prompt" | "messages", "answer", "verifier"?, "constraints"?}
//   supervised:  {"messages"}  or  {"prompt" | "messages", "completion"}
//   preference:  {"prompt" | "messages", "chosen", "rejected", "margin"?}
//   unpaired:    {"prompt" | "messages", "completion", "label"}
//
// A "prompt" is text: BOS (when the tokenizer has one) and its tokens. "messages" is a
// conversation rendered with the chat template; as a prompt it ends with the generation
// prompt. A completion ("completion", "chosen", "rejected") is text, or a list holding one
// assistant message; after a text prompt it is its tokens and the EOS, after messages it is
// the assistant turn the template renders (through its end-of-turn token). Special-token
// text inside rows stays text.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "coordinator/dataset.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {

struct UnpairedRow {
  std::vector<int> prompt, completion;
  bool desirable = false;
};

// Token bounds of rows. 0: none.
struct LengthLimits {
  int64_t max_prompt = 0;
  int64_t max_response = 0;
  int64_t context = 0;    // the model's context, when known at submit
  bool truncate = false;  // else rows over a bound are skipped
};

struct LoadCounts {
  int64_t rows = 0;  // kept
  int64_t skipped_too_long = 0;
  int64_t truncated = 0;
};

// Tokenizes rows. Thread-compatible; immutable after construction.
class RowEncoder {
 public:
  // `chat` null: rows with "messages" are refused.
  RowEncoder(std::shared_ptr<const tokenizer::Tokenizer> tokenizer,
             std::shared_ptr<const tokenizer::ChatEncoder> chat, tokenizer::ChatOptions chat_options);

  struct Prompt {
    std::string text;  // the prompt's text (the rendered conversation for messages)
    std::vector<int> ids;
  };
  // row["prompt"] or row["messages"]. Errors name the field.
  absl::StatusOr<Prompt> EncodePrompt(const nlohmann::ordered_json& row) const;

  struct Pair {
    std::vector<int> prompt, completion;
  };
  // The prompt of `row` and `completion` (row[field]) after it.
  absl::StatusOr<Pair> EncodeCompletion(const nlohmann::ordered_json& row, const std::string& field) const;

  // A whole conversation, loss on its assistant turns.
  absl::StatusOr<SupervisedRow> EncodeConversation(const nlohmann::ordered_json& messages) const;

  const tokenizer::Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
  std::shared_ptr<const tokenizer::ChatEncoder> chat_;
  tokenizer::ChatOptions chat_options_;
};

// A dataset file: where it is and how messages name it (the spec's path, relative to the
// data root; the resolved path never reaches a client).
struct JsonlFile {
  std::string path;
  std::string display;
  std::string field;  // the spec field that named it, e.g. "dataset.jsonl_path"
};

// RL rows, shuffled by `seed` into train and held-out splits (heldout_size 0:
// algo::DefaultHeldoutSize). `encoder` null: prompts stay text, encoded when sampled, and
// "messages" rows are refused.
absl::StatusOr<Splits> LoadRlRows(const JsonlFile& file, uint64_t seed, int heldout_size, const RowEncoder* encoder,
                                  const LengthLimits& limits, LoadCounts* counts);
absl::StatusOr<std::vector<SupervisedRow>> LoadSupervisedRows(const JsonlFile& file, const RowEncoder& encoder,
                                                              const LengthLimits& limits, LoadCounts* counts);
absl::StatusOr<std::vector<PreferenceRow>> LoadPreferenceRows(const JsonlFile& file, const RowEncoder& encoder,
                                                              const LengthLimits& limits, LoadCounts* counts);
// Probe rows: {"prompt" | "messages", "chosen", "rejected", "chosen_paraphrases"?: [...],
// "rejected_paraphrases"?: [...], "unrelated"?}; every response is a completion.
absl::StatusOr<std::vector<ProbeRow>> LoadProbeRows(const JsonlFile& file, const RowEncoder& encoder,
                                                    const LengthLimits& limits, LoadCounts* counts);
absl::StatusOr<std::vector<UnpairedRow>> LoadUnpairedRows(const JsonlFile& file, const RowEncoder& encoder,
                                                          const LengthLimits& limits, LoadCounts* counts);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_JSONL_DATA_H_
