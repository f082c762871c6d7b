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

// A GetProbes page: records[offset, ...) in order, as many as fit in `page_bytes` of
// serialized records but at least one, with next_offset and done set. An offset past the
// end gives an empty page that is done.
constexpr size_t kProbesPageBytes = 4 << 20;
void ProbesPage(std::vector<grail::v1::ProbeRecord> records, int64_t offset, size_t page_bytes,
                grail::v1::GetProbesResponse* page);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_PROBE_REPORT_H_
