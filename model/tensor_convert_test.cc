#include "model/tensor_convert.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::model {
namespace {

TEST(TensorConvertTest, RoundTrips) {
  auto t = torch::randn({3, 4});
  auto proto = TensorToProto(t);
  ASSERT_TRUE(proto.ok());
  EXPECT_EQ(proto->data().size(), 48u);
  auto back = TensorFromProto(*proto, "x");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(torch::equal(*back, t));
  auto ids = torch::arange(6, torch::kInt64).view({2, 3}).t();  // non-contiguous
  auto ids_back = TensorFromProto(*TensorToProto(ids), "ids");
  EXPECT_TRUE(torch::equal(*ids_back, ids));
}

TEST(TensorConvertTest, RejectsMalformedTensors) {
  auto proto = *TensorToProto(torch::ones({2, 2}));
  proto.mutable_data()->pop_back();
  auto bad = TensorFromProto(proto, "experience.values");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("experience.values.data"));
}

}  // namespace
}  // namespace grail::model
