#ifndef GRAIL_REFERENCE_REFERENCE_SCORER_H_
#define GRAIL_REFERENCE_REFERENCE_SCORER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/grail/v1/reference.pb.h"

namespace grail::reference {

struct ReferenceScorerOptions {
  // LibTorch intra-op threads (process-wide; set once at creation).
  int num_threads = 1;
  // Most tokens (rows x columns) scored in one call.
  int64_t max_tokens_per_request = int64_t{1} << 22;
};

// Per-token log-probs of given sequences under a frozen model. Starts with no model; the
// coordinator sends the version to freeze. Thread-safe. Hides LibTorch from its users.
class ReferenceScorer {
 public:
  static absl::StatusOr<std::unique_ptr<ReferenceScorer>> Create(const ReferenceScorerOptions& options);
  virtual ~ReferenceScorer() = default;

  virtual absl::Status LoadWeights(std::string blob, int64_t version) = 0;

  // Validates the request tensors on receipt (INVALID_ARGUMENT naming the field), then
  // scores: log_probs[b, t] = log p(input_ids[b, t+1] | input_ids[b, :t+1]), 0 where
  // either token is padding. FAILED_PRECONDITION when no model is loaded.
  virtual absl::StatusOr<grail::v1::LogProbsResponse> ComputeLogProbs(
      const grail::v1::LogProbsRequest& request) = 0;
};

}  // namespace grail::reference

#endif  // GRAIL_REFERENCE_REFERENCE_SCORER_H_
