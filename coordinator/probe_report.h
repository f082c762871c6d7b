#ifndef GRAIL_COORDINATOR_PROBE_REPORT_H_
#define GRAIL_COORDINATOR_PROBE_REPORT_H_

// Learning-dynamics probe records as a user reads them: a CSV table and an SVG picture
// (grailctl probes). Pure and torch-free.

#include <string>
#include <vector>

#include "proto/grail/v1/coordinator.pb.h"

namespace grail::coordinator {

// One line per record: stage, step, x (the step counted across stages), probe,
// response_type, variant, log_prob, tokens, mean_token_log_prob, mean_argmax_prob and the
// per-token log-probs and argmax probabilities (';'-separated).
std::string ProbesCsv(const std::vector<grail::v1::ProbeRecord>& records);

// One column of two panels per stage, each on its own scale: over the stage's steps, the
// summed log-prob and the mean argmax-token probability of each response type, averaged
// over the probes with a band of one standard error either side.
std::string ProbesSvg(const std::vector<grail::v1::ProbeRecord>& records, const std::string& title);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_PROBE_REPORT_H_
