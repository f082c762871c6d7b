#include "learner/learner_group_client.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "common/tensor_validation.h"

namespace grail::learner {
namespace {

// Per row: 1 + the index of its last column where `mask` is non-zero (at least 1).
absl::StatusOr<std::vector<int64_t>> RowLengths(const grail::v1::Tensor& mask, const std::string& field) {
  RETURN_IF_ERROR(ValidateTensorAs(mask, field, 2, {grail::v1::DTYPE_FLOAT32}));
  const int64_t B = mask.shape(0), T = mask.shape(1);
  const float* m = reinterpret_cast<const float*>(mask.data().data());
  std::vector<int64_t> lengths(B, 1);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = T - 1; t >= 0; --t) {
      if (m[b * T + t] != 0.0f) {
        lengths[b] = t + 1;
        break;
      }
    }
  }
  return lengths;
}

// The rows `rows` of a [B, T] tensor (any dtype).
absl::StatusOr<grail::v1::Tensor> SliceRows(const grail::v1::Tensor& t, const std::vector<int64_t>& rows,
                                            int64_t batch, const std::string& field) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_FLOAT32, grail::v1::DTYPE_INT64}));
  if (t.shape(0) != batch) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape[0]: ", t.shape(0), " rows, expected ", batch));
  }
  const size_t row_bytes = static_cast<size_t>(t.shape(1) * DTypeItemSize(t.dtype()));
  grail::v1::Tensor out;
  out.set_dtype(t.dtype());
  out.add_shape(static_cast<int64_t>(rows.size()));
  out.add_shape(t.shape(1));
  std::string* data = out.mutable_data();
  data->reserve(rows.size() * row_bytes);
  for (int64_t r : rows) data->append(t.data(), r * row_bytes, row_bytes);
  return out;
}

absl::Status NeedRows(int64_t batch, size_t ranks, const std::string& field) {
  if (batch < static_cast<int64_t>(ranks)) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": a batch of ", batch, " rows cannot be split across ",
                                                   ranks, " learner ranks"));
  }
  return absl::OkStatus();
}

class LearnerGroupClient : public LearnerClient {
 public:
  explicit LearnerGroupClient(std::vector<std::shared_ptr<LearnerClient>> ranks) : ranks_(std::move(ranks)) {}

  using LearnerClient::InitModel;
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) override {
    return OnEveryRank<grail::v1::InitModelResponse>(
        [&](size_t r) { return ranks_[r]->InitModel(request); });
  }

  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) override {
    if (ranks_.size() == 1) return ranks_[0]->SupervisedStep(request);
    ASSIGN_OR_RETURN(std::vector<int64_t> lengths, RowLengths(request.loss_mask(), "loss_mask"));
    const int64_t B = static_cast<int64_t>(lengths.size());
    RETURN_IF_ERROR(NeedRows(B, ranks_.size(), "input_ids"));
    const auto shards = ShardRowsByTokens(lengths, static_cast<int>(ranks_.size()));
    std::vector<grail::v1::SupervisedStepRequest> parts(ranks_.size());
    for (size_t r = 0; r < ranks_.size(); ++r) {
      parts[r].set_step(request.step());
      parts[r].set_eval_only(request.eval_only());
      ASSIGN_OR_RETURN(*parts[r].mutable_input_ids(), SliceRows(request.input_ids(), shards[r], B, "input_ids"));
      ASSIGN_OR_RETURN(*parts[r].mutable_loss_mask(), SliceRows(request.loss_mask(), shards[r], B, "loss_mask"));
      if (request.has_segment_ids()) {
        ASSIGN_OR_RETURN(*parts[r].mutable_segment_ids(),
                         SliceRows(request.segment_ids(), shards[r], B, "segment_ids"));
      }
    }
    return OnEveryRank<grail::v1::TrainStepResponse>(
        [&](size_t r) { return ranks_[r]->SupervisedStep(parts[r]); });
  }

  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest& request) override {
    if (ranks_.size() == 1) return ranks_[0]->TrainStep(request);
    const auto& e = request.experience();
    ASSIGN_OR_RETURN(std::vector<int64_t> lengths, RowLengths(e.response_mask(), "experience.response_mask"));
    const int64_t B = static_cast<int64_t>(lengths.size());
    RETURN_IF_ERROR(NeedRows(B, ranks_.size(), "experience.input_ids"));
    const auto shards = ShardRowsByTokens(lengths, static_cast<int>(ranks_.size()));
    std::vector<grail::v1::TrainStepRequest> parts(ranks_.size());
    for (size_t r = 0; r < ranks_.size(); ++r) {
      parts[r].set_step(request.step());
      parts[r].set_critic_only(request.critic_only());
      auto* out = parts[r].mutable_experience();
      auto slice = [&](const grail::v1::Tensor& t, grail::v1::Tensor* dst, const char* name) -> absl::Status {
        ASSIGN_OR_RETURN(*dst, SliceRows(t, shards[r], B, absl::StrCat("experience.", name)));
        return absl::OkStatus();
      };
      RETURN_IF_ERROR(slice(e.input_ids(), out->mutable_input_ids(), "input_ids"));
      RETURN_IF_ERROR(slice(e.response_mask(), out->mutable_response_mask(), "response_mask"));
      RETURN_IF_ERROR(slice(e.old_log_probs(), out->mutable_old_log_probs(), "old_log_probs"));
      RETURN_IF_ERROR(slice(e.advantages(), out->mutable_advantages(), "advantages"));
      // Optional tensors stay absent when absent (mutable_* would create them).
      if (e.has_ref_log_probs()) {
        RETURN_IF_ERROR(slice(e.ref_log_probs(), out->mutable_ref_log_probs(), "ref_log_probs"));
      }
      if (e.has_returns()) RETURN_IF_ERROR(slice(e.returns(), out->mutable_returns(), "returns"));
      if (e.has_values()) RETURN_IF_ERROR(slice(e.values(), out->mutable_values(), "values"));
    }
    return OnEveryRank<grail::v1::TrainStepResponse>([&](size_t r) { return ranks_[r]->TrainStep(parts[r]); });
  }

  // Pairs are split across ranks whole: rank r gets pairs shards[r], i.e. those chosen rows
  // and the matching rejected rows (B + i), chosen first.
  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(
      const grail::v1::PreferenceStepRequest& request) override {
    if (ranks_.size() == 1) return ranks_[0]->PreferenceStep(request);
    ASSIGN_OR_RETURN(std::vector<int64_t> lengths, RowLengths(request.completion_mask(), "completion_mask"));
    const int64_t rows = static_cast<int64_t>(lengths.size());
    if (rows % 2 != 0) return absl::InvalidArgumentError("input_ids.shape: need 2B rows (chosen, then rejected)");
    const int64_t B = rows / 2;
    RETURN_IF_ERROR(NeedRows(B, ranks_.size(), "input_ids (pairs)"));
    std::vector<int64_t> pair_lengths(B);
    for (int64_t i = 0; i < B; ++i) pair_lengths[i] = lengths[i] + lengths[B + i];
    const auto shards = ShardRowsByTokens(pair_lengths, static_cast<int>(ranks_.size()));
    std::vector<grail::v1::PreferenceStepRequest> parts(ranks_.size());
    for (size_t r = 0; r < ranks_.size(); ++r) {
      std::vector<int64_t> pair_rows = shards[r];
      for (int64_t i : shards[r]) pair_rows.push_back(B + i);
      auto& p = parts[r];
      p.set_step(request.step());
      p.set_eval_only(request.eval_only());
      ASSIGN_OR_RETURN(*p.mutable_input_ids(), SliceRows(request.input_ids(), pair_rows, rows, "input_ids"));
      ASSIGN_OR_RETURN(*p.mutable_completion_mask(),
                       SliceRows(request.completion_mask(), pair_rows, rows, "completion_mask"));
      if (request.has_ref_log_probs()) {
        ASSIGN_OR_RETURN(*p.mutable_ref_log_probs(),
                         SliceRows(request.ref_log_probs(), pair_rows, rows, "ref_log_probs"));
      }
      if (request.has_labels()) {
        ASSIGN_OR_RETURN(*p.mutable_labels(), SliceRows(request.labels(), shards[r], B, "labels"));
      }
    }
    return OnEveryRank<grail::v1::TrainStepResponse>(
        [&](size_t r) { return ranks_[r]->PreferenceStep(parts[r]); });
  }

  using LearnerClient::GetWeights;
  absl::StatusOr<Weights> GetWeights(int64_t min_version, grail::v1::WeightsPart part) override {
    return ranks_[0]->GetWeights(min_version, part);
  }

  absl::StatusOr<Weights> StreamWeights(int64_t min_version, grail::v1::WeightsPart part,
                                        const ChunkSink& sink) override {
    return ranks_[0]->StreamWeights(min_version, part, sink);
  }

  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) override {
    return ranks_[0]->ComputeValues(request);
  }

  // A forward pass without collectives: rank 0 holds the same weights as every rank.
  absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(
      const grail::v1::ScoreSequencesRequest& request) override {
    return ranks_[0]->ScoreSequences(request);
  }

  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    return ranks_[0]->SaveCheckpoint(dir, run_state);
  }

  absl::Status WaitUntilServing(absl::Duration timeout) override {
    return ParallelFor(ranks_.size(), [&](size_t r) { return ranks_[r]->WaitUntilServing(timeout); });
  }

 private:
  // Calls every rank at once (the ranks meet in collectives, so they must all be called);
  // returns rank 0's answer once every rank agrees on the new weights version.
  template <typename Response>
  absl::StatusOr<Response> OnEveryRank(const std::function<absl::StatusOr<Response>(size_t)>& call) {
    std::vector<absl::StatusOr<Response>> results(ranks_.size(), absl::UnknownError("not called"));
    (void)ParallelFor(ranks_.size(), [&](size_t r) {
      results[r] = call(r);
      return absl::OkStatus();
    });
    // A rank that refused the call makes its peers wait in a collective until they time
    // out: its own error says why, so it comes before timeouts and broken groups.
    const absl::Status* worst = nullptr;
    size_t worst_rank = 0;
    for (size_t r = 0; r < ranks_.size(); ++r) {
      const absl::Status& s = results[r].status();
      if (s.ok()) continue;
      const bool consequence = s.code() == absl::StatusCode::kDeadlineExceeded || s.code() == absl::StatusCode::kUnavailable;
      if (worst == nullptr || (!consequence && (worst->code() == absl::StatusCode::kDeadlineExceeded ||
                                                worst->code() == absl::StatusCode::kUnavailable))) {
        worst = &s;
        worst_rank = r;
      }
    }
    if (worst != nullptr) {
      return absl::Status(worst->code(), absl::StrCat("learner rank ", worst_rank, ": ", worst->message()));
    }
    for (size_t r = 1; r < ranks_.size(); ++r) {
      if (results[r]->weights_version() != results[0]->weights_version()) {
        return absl::InternalError(absl::StrCat("learner ranks disagree on the weights version: rank 0 has ",
                                                results[0]->weights_version(), ", rank ", r, " has ",
                                                results[r]->weights_version()));
      }
    }
    return std::move(results[0]);
  }

  std::vector<std::shared_ptr<LearnerClient>> ranks_;
};

}  // namespace

std::vector<std::vector<int64_t>> ShardRowsByTokens(const std::vector<int64_t>& tokens, int ranks) {
  std::vector<std::vector<int64_t>> shards(std::max(1, ranks));
  std::vector<int64_t> order(tokens.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return tokens[a] > tokens[b]; });
  std::vector<int64_t> load(shards.size(), 0);
  for (int64_t row : order) {
    size_t best = 0;
    for (size_t s = 1; s < shards.size(); ++s) {
      if (load[s] < load[best] || (load[s] == load[best] && shards[s].size() < shards[best].size())) best = s;
    }
    shards[best].push_back(row);
    load[best] += tokens[row];
  }
  for (auto& s : shards) std::sort(s.begin(), s.end());
  return shards;
}

std::unique_ptr<LearnerClient> NewLearnerGroupClient(std::vector<std::shared_ptr<LearnerClient>> ranks) {
  return std::make_unique<LearnerGroupClient>(std::move(ranks));
}

}  // namespace grail::learner
