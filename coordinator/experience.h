#ifndef GRAIL_COORDINATOR_EXPERIENCE_H_
#define GRAIL_COORDINATOR_EXPERIENCE_H_

// The experience builder: pure functions from scored samples to the learner's requests
// (wire packing, KL in the reward, advantages, TrainStep and SupervisedStep requests). No
// RPCs, no clocks, no state: testable without fakes.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "algo/advantages.h"
#include "coordinator/dataset.h"
#include "proto/grail/v1/coordinator.pb.h"
#include "proto/grail/v1/learner.pb.h"
#include "proto/grail/v1/reference.pb.h"

namespace grail::coordinator {

using algo::Matrix;
using SamplePtrs = std::vector<const grail::v1::Sample*>;

grail::v1::Tensor Int64Matrix(int64_t rows, int64_t cols, const std::vector<int64_t>& values);
grail::v1::Tensor FloatMatrix(int64_t rows, int64_t cols, const std::vector<float>& values);

// Prompt + response token ids of each sample, right-padded with `pad_id` into one row-major
// [B, width] block; `valid` marks real tokens.
struct Packed {
  size_t width = 0;
  std::vector<int64_t> ids;
  std::vector<int64_t> valid;
};
Packed PackSequences(const SamplePtrs& samples, int pad_id);

// The reference's answer unpacked and aligned with the packed input_ids: row b, column t
// holds log p(ids[t] | ids[:t]); column 0 is 0. INTERNAL when the shape is not [B, width-1].
absl::StatusOr<std::vector<std::vector<float>>> AlignedLogProbs(const grail::v1::LogProbsResponse& response,
                                                                size_t batch, size_t width);

// KL in the reward: k1 = behaviour - reference log-prob of every response token, and its
// mean over all response tokens. Without reference log-probs (`ref_lp` empty: a step that
// skips the reference, algorithm.kl_metric_every), k1 is zero and `measured` false.
struct BehaviourKl {
  std::vector<std::vector<double>> k1;  // [B][response length]
  double mean = 0;
  bool measured = true;
};

// Whether step `step` needs the reference's log-probs: a KL term trains, or the kl metric
// is due (algorithm.kl_metric_every).
bool StepNeedsReference(const grail::v1::AlgorithmSpec& algorithm, int step);
BehaviourKl BehaviourMinusReference(const SamplePtrs& samples, const std::vector<std::vector<float>>& ref_lp);

// Per-token advantages [B, max response length] with the run's estimator.
struct StepAdvantages {
  Matrix advantages;  // [B, max response length]
  Matrix returns;     // critic targets (gae only)
  Matrix values;      // the critic's values (gae only)
  bool has_critic = false;
};

// The request for the critic's values of the samples (gae), and its answer restricted to
// response positions ([B, max response length]).
grail::v1::ComputeValuesRequest ValuesRequest(const SamplePtrs& samples, int pad_id);
absl::StatusOr<Matrix> ResponseValues(const grail::v1::ComputeValuesResponse& response, const SamplePtrs& samples);

// Advantages for `samples` with the run's estimator from the registry (algo/objectives.h):
// scores[b] on each response's last token, plus -kl_coef * k1 on every token. `index` groups
// samples by prompt. `values` (from ResponseValues) is needed by estimators that use a
// critic; `value_pretraining` makes the critic's targets Monte-Carlo returns (lambda 1).
// Takes a resolved spec (algo::ResolveDefaults).
absl::StatusOr<StepAdvantages> EstimateAdvantages(const grail::v1::AlgorithmSpec& algorithm, bool value_pretraining,
                                                  const SamplePtrs& samples, const std::vector<double>& scores,
                                                  const std::vector<int64_t>& index, const BehaviourKl& kl,
                                                  double kl_coef, const Matrix* values);

// The TrainStep request: experience right-padded, per-token tensors aligned with input_ids;
// no ref_log_probs when `ref_lp` is empty.
// With `mask_truncated` (reward.mask_truncated), responses that hit the length limit get a
// zero response mask.
grail::v1::TrainStepRequest TrainStepRequest(int step, const SamplePtrs& samples,
                                             const std::vector<std::vector<float>>& ref_lp,
                                             const StepAdvantages& advantages, bool critic_only, bool mask_truncated,
                                             int pad_id);

// A supervised step on token sequences, each with its loss mask, right-padded with pad_id.
// With `pack_length` > 0 (trainer.sft_pack_length), the sequences are packed first-fit,
// longest first, into rows of at most pack_length tokens, with segment_ids marking each
// sequence (and the padding) in its row; a sequence longer than pack_length gets a row of
// its own. Every sequence and loss-mask entry appears exactly once either way.
grail::v1::SupervisedStepRequest SupervisedStepRequest(int step, const std::vector<SupervisedRow>& rows, int pad_id,
                                                       int pack_length = 0);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_EXPERIENCE_H_
