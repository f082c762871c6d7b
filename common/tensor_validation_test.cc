#include "common/tensor_validation.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail {
namespace {

using ::testing::HasSubstr;

grail::v1::Tensor Make(grail::v1::DType dtype, std::vector<int64_t> shape, size_t bytes) {
  grail::v1::Tensor t;
  t.set_dtype(dtype);
  for (int64_t d : shape) t.add_shape(d);
  t.set_data(std::string(bytes, '\0'));
  return t;
}

TEST(TensorValidationTest, AcceptsWellFormed) {
  EXPECT_TRUE(ValidateTensor(Make(grail::v1::DTYPE_FLOAT32, {2, 3}, 24), "x").ok());
  EXPECT_TRUE(ValidateTensor(Make(grail::v1::DTYPE_INT64, {0, 5}, 0), "x").ok());
  EXPECT_TRUE(ValidateTensor(Make(grail::v1::DTYPE_BFLOAT16, {}, 2), "x").ok());  // scalar
}

TEST(TensorValidationTest, RejectsWrongByteCount) {
  absl::Status s = ValidateTensor(Make(grail::v1::DTYPE_FLOAT32, {2, 3}, 23), "experience.advantages");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("experience.advantages.data: 23 bytes, expected 24"));
}

TEST(TensorValidationTest, RejectsUnknownDtype) {
  absl::Status s = ValidateTensor(Make(static_cast<grail::v1::DType>(99), {1}, 4), "t");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("t.dtype"));
  EXPECT_FALSE(ValidateTensor(Make(grail::v1::DTYPE_UNSPECIFIED, {1}, 4), "t").ok());
}

TEST(TensorValidationTest, RejectsNegativeDimension) {
  absl::Status s = ValidateTensor(Make(grail::v1::DTYPE_FLOAT32, {2, -1}, 0), "t");
  EXPECT_THAT(std::string(s.message()), HasSubstr("t.shape[1]: negative"));
}

TEST(TensorValidationTest, RejectsOversizedShapeWithoutOverflow) {
  // 2^40 * 2^40 would overflow int64 if multiplied blindly.
  absl::Status s =
      ValidateTensor(Make(grail::v1::DTYPE_FLOAT32, {int64_t{1} << 40, int64_t{1} << 40}, 0), "t");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("exceeds the limit"));
  TensorLimits small;
  small.max_elements = 10;
  EXPECT_FALSE(ValidateTensor(Make(grail::v1::DTYPE_UINT8, {11}, 11), "t", small).ok());
  EXPECT_TRUE(ValidateTensor(Make(grail::v1::DTYPE_UINT8, {10}, 10), "t", small).ok());
}

TEST(TensorValidationTest, RejectsTooManyDims) {
  EXPECT_FALSE(ValidateTensor(Make(grail::v1::DTYPE_UINT8, std::vector<int64_t>(9, 1), 1), "t").ok());
}

TEST(TensorValidationTest, ChecksRankAndDtype) {
  auto t = Make(grail::v1::DTYPE_FLOAT32, {2, 2}, 16);
  EXPECT_TRUE(ValidateTensorAs(t, "t", 2, {grail::v1::DTYPE_FLOAT32}).ok());
  EXPECT_THAT(std::string(ValidateTensorAs(t, "t", 3, {}).message()), HasSubstr("rank 2, expected 3"));
  EXPECT_THAT(std::string(ValidateTensorAs(t, "ids", 2, {grail::v1::DTYPE_INT64}).message()),
              HasSubstr("ids.dtype: float32, expected int64"));
}

}  // namespace
}  // namespace grail
