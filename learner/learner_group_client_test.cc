#include "learner/learner_group_client.h"

#include <cstring>
#include <mutex>
#include <numeric>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::learner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ShardRowsByTokensTest, BalancesTokensKeepsOrderAndGivesEveryRankARow) {
  const std::vector<int64_t> tokens = {10, 1, 1, 1, 9, 2, 3, 1};
  auto shards = ShardRowsByTokens(tokens, 2);
  ASSERT_EQ(shards.size(), 2u);
  int64_t load[2] = {0, 0};
  std::vector<int64_t> all;
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(std::is_sorted(shards[r].begin(), shards[r].end()));
    for (int64_t row : shards[r]) load[r] += tokens[row];
    all.insert(all.end(), shards[r].begin(), shards[r].end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_THAT(all, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));  // each row exactly once
  EXPECT_EQ(load[0], 14);
  EXPECT_EQ(load[1], 14);
  // Equal tokens: rows spread evenly; as many ranks as rows: one row each.
  for (const auto& s : ShardRowsByTokens({5, 5, 5, 5, 5, 5}, 3)) EXPECT_EQ(s.size(), 2u);
  for (const auto& s : ShardRowsByTokens({1, 50, 7}, 3)) EXPECT_EQ(s.size(), 1u);
}

grail::v1::Tensor Matrix(grail::v1::DType dtype, int64_t rows, int64_t cols, const void* data) {
  grail::v1::Tensor t;
  t.set_dtype(dtype);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(std::string(static_cast<const char*>(data), rows * cols * (dtype == grail::v1::DTYPE_INT64 ? 8 : 4)));
  return t;
}

// Records what it was sent; answers with a fixed version.
class RecordingRank : public LearnerClient {
 public:
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest&) override {
    grail::v1::InitModelResponse r;
    r.set_weights_version(version);
    return r;
  }
  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(const grail::v1::SupervisedStepRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest& request) override {
    std::lock_guard<std::mutex> lock(mu);
    received.push_back(request);
    grail::v1::TrainStepResponse r;
    r.set_weights_version(version);
    return r;
  }
  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(const grail::v1::PreferenceStepRequest& request) override {
    std::lock_guard<std::mutex> lock(mu);
    preference.push_back(request);
    grail::v1::TrainStepResponse r;
    r.set_weights_version(version);
    return r;
  }
  absl::StatusOr<Weights> GetWeights(int64_t, grail::v1::WeightsPart) override { return absl::UnimplementedError(""); }
  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(const grail::v1::ComputeValuesRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(const grail::v1::ScoreSequencesRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<std::string> SaveCheckpoint(const std::string&, const std::string&) override {
    return absl::UnimplementedError("");
  }

  std::mutex mu;
  std::vector<grail::v1::TrainStepRequest> received;
  std::vector<grail::v1::PreferenceStepRequest> preference;
  int64_t version = 3;
};

TEST(LearnerGroupClientTest, SendsEachRankWholeRowsOfEveryTensorAtFullWidth) {
  auto r0 = std::make_shared<RecordingRank>(), r1 = std::make_shared<RecordingRank>();
  auto group = NewLearnerGroupClient({r0, r1});
  const int B = 5, T = 4;
  std::vector<int64_t> ids(B * T);
  std::iota(ids.begin(), ids.end(), 0);
  std::vector<float> mask = {0, 1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1};
  std::vector<float> adv(B * T);
  for (int i = 0; i < B * T; ++i) adv[i] = 0.5f * i;
  grail::v1::TrainStepRequest request;
  request.set_step(7);
  auto* e = request.mutable_experience();
  *e->mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, B, T, ids.data());
  *e->mutable_response_mask() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, mask.data());
  *e->mutable_old_log_probs() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, adv.data());
  *e->mutable_advantages() = Matrix(grail::v1::DTYPE_FLOAT32, B, T, adv.data());
  auto result = group->TrainStep(request);
  ASSERT_TRUE(result.ok()) << result.status();
  int64_t rows = 0;
  for (auto* rank : {r0.get(), r1.get()}) {
    ASSERT_EQ(rank->received.size(), 1u);
    const auto& got = rank->received[0];
    EXPECT_EQ(got.step(), 7);
    EXPECT_FALSE(got.experience().has_returns());
    const auto& gi = got.experience().input_ids();
    EXPECT_EQ(gi.shape(1), T);
    rows += gi.shape(0);
    // Row k of every tensor is the same original row: ids[row*T] identifies it.
    for (int64_t k = 0; k < gi.shape(0); ++k) {
      int64_t first;
      std::memcpy(&first, gi.data().data() + k * T * 8, 8);
      const int64_t row = first / T;
      float a;
      std::memcpy(&a, got.experience().advantages().data().data() + k * T * 4, 4);
      EXPECT_EQ(a, adv[row * T]);
    }
  }
  EXPECT_EQ(rows, B);

  // Ranks that disagree on the version are an error, not a silent pick.
  r1->version = 4;
  EXPECT_THAT(std::string(group->TrainStep(request).status().message()), HasSubstr("disagree"));
  // A malformed tensor is refused naming it.
  e->mutable_advantages()->mutable_data()->resize(8);
  auto bad = group->TrainStep(request);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("experience.advantages"));
}

// Preference batches are split by pairs: each rank gets whole pairs, its chosen rows first
// and their rejected rows after them in the same order, with the matching reference log-probs.
TEST(LearnerGroupClientTest, SplitsPreferenceBatchesIntoWholePairs) {
  auto r0 = std::make_shared<RecordingRank>(), r1 = std::make_shared<RecordingRank>();
  auto group = NewLearnerGroupClient({r0, r1});
  const int B = 3, T = 3;
  std::vector<int64_t> ids(2 * B * T);
  std::vector<float> mask(2 * B * T, 1), ref(2 * B);
  for (int r = 0; r < 2 * B; ++r) {
    for (int t = 0; t < T; ++t) ids[r * T + t] = r;  // the row's original index
    ref[r] = static_cast<float>(r);
  }
  grail::v1::PreferenceStepRequest request;
  request.set_step(2);
  *request.mutable_input_ids() = Matrix(grail::v1::DTYPE_INT64, 2 * B, T, ids.data());
  *request.mutable_completion_mask() = Matrix(grail::v1::DTYPE_FLOAT32, 2 * B, T, mask.data());
  *request.mutable_ref_log_probs() = Matrix(grail::v1::DTYPE_FLOAT32, 2 * B, 1, ref.data());
  ASSERT_TRUE(group->PreferenceStep(request).ok());
  int pairs = 0;
  for (auto* rank : {r0.get(), r1.get()}) {
    ASSERT_EQ(rank->preference.size(), 1u);
    const auto& got = rank->preference[0];
    const int64_t rows = got.input_ids().shape(0);
    ASSERT_EQ(rows % 2, 0);
    EXPECT_FALSE(got.has_labels());
    for (int64_t k = 0; k < rows / 2; ++k) {
      int64_t chosen, rejected;
      std::memcpy(&chosen, got.input_ids().data().data() + k * T * 8, 8);
      std::memcpy(&rejected, got.input_ids().data().data() + (rows / 2 + k) * T * 8, 8);
      EXPECT_LT(chosen, B);
      EXPECT_EQ(rejected, chosen + B);  // its own pair's rejected row
      float ref_rejected;
      std::memcpy(&ref_rejected, got.ref_log_probs().data().data() + (rows / 2 + k) * 4, 4);
      EXPECT_EQ(ref_rejected, static_cast<float>(chosen + B));
      ++pairs;
    }
  }
  EXPECT_EQ(pairs, B);
}

}  // namespace
}  // namespace grail::learner
