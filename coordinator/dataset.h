#ifndef GRAIL_COORDINATOR_DATASET_H_
#define GRAIL_COORDINATOR_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace grail::coordinator {

// One verifiable problem.
struct Problem {
  std::string prompt;
  std::string answer;
  std::string verifier;            // reward verifier that scores responses ("": the run's reward.verifier)
  std::string constraints_json;    // for the ifeval verifier
  // The prompt's tokens, when the dataset was tokenized at load (BOS included); else
  // `prompt` is encoded when sampled.
  std::vector<int> prompt_ids;
};

// One preference pair: the prompt's tokens and each completion's (through its EOS or
// end-of-turn token).
struct PreferenceRow {
  std::vector<int> prompt, chosen, rejected;
  double margin = 0;
};

// A learning-dynamics probe (RunSpec.probes): a prompt and the responses whose log-probs
// are recorded as training moves the policy. Completions end as preference completions do
// (EOS, or the assistant turn's end-of-turn token).
struct ProbeRow {
  std::vector<int> prompt;
  std::vector<int> chosen, rejected, unrelated;
  std::vector<std::vector<int>> chosen_paraphrases, rejected_paraphrases;
};

// One supervised example: tokens and the loss mask over them.
struct SupervisedRow {
  std::vector<int> ids;
  std::vector<uint8_t> loss_mask;  // 1 on the tokens the loss trains
};

// An immutable list of problems. Thread-safe.
class Dataset {
 public:
  explicit Dataset(std::vector<Problem> problems) : problems_(std::move(problems)) {}
  size_t size() const { return problems_.size(); }
  const Problem& Get(size_t i) const { return problems_[i]; }
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

struct ArithmeticOptions {
  uint64_t seed = 0;
  int max_digits = 2;      // operands in [0, 10^max_digits)
  int train_size = 0;      // 0: every problem not held out, at most kDefaultMaxTrain
  int heldout_size = 0;  // 0: algo::DefaultHeldoutSize of the problem space
};

// Problems a dataset may hold (train plus held out), and what an unset train_size takes.
inline constexpr int64_t kMaxProblems = 1000000;
inline constexpr int64_t kDefaultMaxTrain = 200000;

// The built-in task: "A+B=" with answer A+B. Train and held-out splits are disjoint and
// fixed by the seed.
struct Splits {
  Dataset train;
  Dataset heldout;
  // The supervised warm-up's rows (dataset.sft_path); empty: the train split's prompt and answer.
  std::vector<SupervisedRow> sft = {};
  std::vector<SupervisedRow> sft_heldout = {};  // its held-out loss is reported (sft_heldout_loss)
  // Preference runs: training and held-out pairs.
  std::vector<PreferenceRow> pairs = {};
  std::vector<PreferenceRow> heldout_pairs = {};
  // Learning-dynamics probes (RunSpec.probes; empty: none recorded).
  std::vector<ProbeRow> probes = {};
  // Rows of the files over the token bounds (dataset.max_*_tokens, the model's context).
  int64_t rows_skipped_too_long = 0;
  int64_t rows_truncated = 0;
};
absl::StatusOr<Splits> MakeArithmeticSplits(const ArithmeticOptions& options);

// Deterministic, resumable order over a dataset: each epoch is a fresh seeded permutation.
// Not thread-safe.
class DatasetCursor {
 public:
  struct State {
    uint64_t epoch = 0;
    uint64_t offset = 0;
  };
  DatasetCursor(size_t size, uint64_t seed) : DatasetCursor(size, seed, State{0, 0}) {}
  DatasetCursor(size_t size, uint64_t seed, State state);
  size_t Next();
  State state() const { return state_; }

 private:
  void Shuffle();
  size_t size_;
  uint64_t seed_;
  State state_;
  std::vector<size_t> order_;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_DATASET_H_
