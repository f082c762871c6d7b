#include "reference/reference_scorer.h"

#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/tiny_model.h"

namespace grail::reference {
namespace {

grail::v1::Tensor Int64Matrix(int64_t rows, int64_t cols, const std::vector<int64_t>& v) {
  grail::v1::Tensor t;
  t.set_dtype(grail::v1::DTYPE_INT64);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t));
  return t;
}

std::vector<float> Floats(const grail::v1::Tensor& t) {
  std::vector<float> out(t.data().size() / sizeof(float));
  std::memcpy(out.data(), t.data().data(), t.data().size());
  return out;
}

TEST(ReferenceScorerTest, ScoresWithTheFrozenModelAndZeroesPadding) {
  auto scorer = *ReferenceScorer::Create({});
  grail::v1::LogProbsRequest req;
  const std::vector<int64_t> ids = {1, 5, 7, 9, 1, 6, 2, 0};  // row 1 ends in one pad
  *req.mutable_input_ids() = Int64Matrix(2, 4, ids);
  *req.mutable_attention_mask() = Int64Matrix(2, 4, {1, 1, 1, 1, 1, 1, 1, 0});
  EXPECT_EQ(scorer->ComputeLogProbs(req).status().code(), absl::StatusCode::kFailedPrecondition);

  auto model = model::testing::TinyModel();
  ASSERT_TRUE(scorer->LoadWeights(model::testing::TinyBlob(model), 7).ok());
  auto resp = scorer->ComputeLogProbs(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(resp->weights_version(), 7);
  EXPECT_THAT(resp->log_probs().shape(), ::testing::ElementsAre(2, 3));
  const auto got = Floats(resp->log_probs());
  auto want = model::testing::NextTokenLogProbs(model, torch::tensor(ids).view({2, 4}));
  for (int b = 0; b < 2; ++b) {
    for (int t = 0; t < 3; ++t) {
      if (b == 1 && t == 2) {
        EXPECT_EQ(got[b * 3 + t], 0.0f);  // the next token is padding
      } else {
        EXPECT_NEAR(got[b * 3 + t], want[b][t].item<float>(), 1e-5) << b << "," << t;
      }
    }
  }
  // The sampling temperature divides the logits, as the actors' sampler does.
  req.set_temperature(2.0f);
  auto warm = scorer->ComputeLogProbs(req);
  ASSERT_TRUE(warm.ok());
  auto want_t2 = model::testing::NextTokenLogProbs(model, torch::tensor(ids).view({2, 4}), 2.0);
  EXPECT_NEAR(Floats(warm->log_probs())[0], want_t2[0][0].item<float>(), 1e-5);
}

TEST(ReferenceScorerTest, RefusesMalformedRequestsNamingTheField) {
  auto scorer = *ReferenceScorer::Create({});
  auto model = model::testing::TinyModel();
  ASSERT_TRUE(scorer->LoadWeights(model::testing::TinyBlob(model), 1).ok());
  grail::v1::LogProbsRequest req;
  *req.mutable_input_ids() = Int64Matrix(1, 3, {1, 99, 2});  // 99 is outside the vocabulary
  *req.mutable_attention_mask() = Int64Matrix(1, 3, {1, 1, 1});
  auto s = scorer->ComputeLogProbs(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("input_ids"));
  *req.mutable_input_ids() = Int64Matrix(1, 3, {1, 2, 3});
  *req.mutable_attention_mask() = Int64Matrix(1, 2, {1, 1});
  s = scorer->ComputeLogProbs(req).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("attention_mask"));
  EXPECT_FALSE(scorer->LoadWeights("not safetensors", 2).ok());
  EXPECT_TRUE(scorer->ComputeLogProbs([&] {
                      grail::v1::LogProbsRequest ok;
                      *ok.mutable_input_ids() = Int64Matrix(1, 2, {1, 2});
                      *ok.mutable_attention_mask() = Int64Matrix(1, 2, {1, 1});
                      return ok;
                    }())
                  .ok());  // the old model keeps serving after a failed load
}

}  // namespace
}  // namespace grail::reference
