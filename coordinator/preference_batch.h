#ifndef GRAIL_COORDINATOR_PREFERENCE_BATCH_H_
#define GRAIL_COORDINATOR_PREFERENCE_BATCH_H_

// Preference data and the learner requests built from it (pure; no RPCs).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/dataset.h"
#include "coordinator/experience.h"
#include "proto/grail/v1/learner.pb.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {

// Which wrong answers the built-in task's pairs reject.
enum class PairStyle {
  // One pair per problem: the answer plus a seeded offset of 1 to 9 either way (never
  // negative). The preference objectives' pairs.
  kNearMiss,
  // Four pairs per problem: a near miss as above; a malformed or unrelated answer (a digit
  // added, a digit dropped, the digits reversed, or a random number); a slip in the tens
  // (off by 10 or 20); and another problem's answer. A reward model's pairs: it scores
  // whatever a policy samples, not only near misses.
  kVaried,
};

// Pairs from the built-in task: for each problem the correct answer is chosen and a wrong
// one (as `style` says) rejected.
absl::StatusOr<std::vector<PreferenceRow>> ArithmeticPairs(const Dataset& problems, const tokenizer::Tokenizer& tok,
                                                           uint64_t seed, PairStyle style = PairStyle::kNearMiss);

// A seeded shuffle of `all` into training and held-out pairs (heldout 0:
// algo::DefaultHeldoutSize). INVALID_ARGUMENT when nothing is left to train on.
absl::Status SplitPairs(std::vector<PreferenceRow> all, uint64_t seed, int heldout, Splits* splits);

// The sequences of one preference step, as samples (prompt, completion): for paired
// objectives the B chosen, then the B rejected; for kto each pair's chosen (desirable) and
// rejected (undesirable) row, then the same rows' mismatched twins (the prompt with the
// next pair's completion), which its KL reference point is taken on.
struct PreferenceSequences {
  std::vector<grail::v1::Sample> rows;
  std::vector<float> labels;   // kto: one per row of the first half
  std::vector<float> margins;  // pairs: each pair's margin (sent when one is not 0)
  SamplePtrs Ptrs() const;
};
PreferenceSequences BuildPreferenceSequences(const std::vector<const PreferenceRow*>& pairs, bool kto);

// Each row's summed completion log-prob from log-probs aligned with the packed rows
// (column t: log p(ids[t] | ids[:t])).
std::vector<float> SummedCompletionLogProbs(const PreferenceSequences& seqs,
                                            const std::vector<std::vector<float>>& aligned);

// The learner's request: packed ids, the completion mask, the reference's summed log-probs
// (empty: not sent), kto's labels and the pairs' margins.
grail::v1::PreferenceStepRequest PreferenceStepRequest(int64_t step, const PreferenceSequences& seqs,
                                                       const std::vector<float>& ref_summed, bool eval_only,
                                                       int pad_id);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_PREFERENCE_BATCH_H_
