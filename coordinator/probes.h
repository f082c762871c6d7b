#ifndef GRAIL_COORDINATOR_PROBES_H_
#define GRAIL_COORDINATOR_PROBES_H_

// Learning-dynamics probes (RunSpec.probes; README, "Probes"): fixed responses to fixed
// prompts whose log-probs under the policy are recorded every few steps, so that a user
// sees how SFT and preference optimisation move each kind of response (the chosen and
// rejected ones, their paraphrases, an unrelated one, the model's own greedy one). Pure:
// the RPCs are the loop's.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/dataset.h"
#include "coordinator/experience.h"
#include "proto/grail/v1/coordinator.pb.h"
#include "proto/grail/v1/learner.pb.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {

// The built-in task's probes: the first `size` training problems with the pairs a
// preference stage trains on (`pairs[i]` is problem i's, ArithmeticPairs' order): chosen is
// the answer and rejected the pair's wrong one; each has two paraphrases, the same number
// with a leading zero and with a trailing space; unrelated is the answer of another probe
// that differs from both.
absl::StatusOr<std::vector<ProbeRow>> ArithmeticProbes(const Dataset& train, const std::vector<PreferenceRow>& pairs,
                                                       const tokenizer::Tokenizer& tok, int size);

// Every response of every probe as a sample to score (prompt + response), with its label.
// `greedy[i]`, when given, is probe i's greedy response at the start.
struct ProbeSequences {
  std::vector<grail::v1::Sample> rows;
  struct Label {
    int probe;
    std::string type;  // chosen, rejected, chosen_paraphrase, rejected_paraphrase, unrelated, greedy
    int variant;
  };
  std::vector<Label> labels;
};
ProbeSequences BuildProbeSequences(const std::vector<ProbeRow>& probes, const std::vector<std::vector<int>>& greedy);

// The learner's request for rows [begin, end) of `seqs`.
grail::v1::ScoreSequencesRequest ScoreSequencesRequest(const ProbeSequences& seqs, size_t begin, size_t end,
                                                       int pad_id);

// One record per row of [begin, end) from the learner's answer to that request: summed and
// per-token log-probs over the response and each response position's argmax probability.
// INTERNAL when the answer's shape does not match the request.
absl::Status AppendProbeRecords(const ProbeSequences& seqs, size_t begin, size_t end,
                                const grail::v1::ScoreSequencesResponse& response, int64_t step,
                                std::vector<grail::v1::ProbeRecord>* out);

// Means over probes and variants, per response type: probe_<type>_log_prob and
// probe_<type>_argmax_prob (the mean over response positions).
std::map<std::string, double> ProbeMeans(const std::vector<grail::v1::ProbeRecord>& records);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_PROBES_H_
