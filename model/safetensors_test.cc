#include "model/safetensors.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::model {
namespace {

using ::testing::HasSubstr;

std::string WithHeader(const std::string& json, const std::string& data, int64_t claimed_len = -1) {
  std::string out;
  uint64_t len = claimed_len >= 0 ? static_cast<uint64_t>(claimed_len) : json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  return out + json + data;
}

TEST(SafetensorsTest, RoundTripsBytesExactly) {
  std::string a(4 * 6, '\x11'), b(8 * 2, '\x22');
  std::map<std::string, SafetensorsTensor> tensors = {
      {"w", {"F32", {2, 3}, a}}, {"i", {"I64", {2}, b}}, {"empty", {"F32", {0, 4}, ""}}};
  auto bytes = SerializeSafetensors(tensors, {{"k", "v"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ((bytes->size() - 8 - a.size() - b.size()) % 8, 0u);  // padded header
  auto file = SafetensorsFile::Parse(*bytes);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ(file->tensors().size(), 3u);
  EXPECT_EQ(file->tensors().at("w").data, a);
  EXPECT_EQ(file->tensors().at("i").shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(file->metadata().at("k"), "v");
  std::map<std::string, SafetensorsTensor> again(file->tensors().begin(), file->tensors().end());
  EXPECT_EQ(*SerializeSafetensors(again, file->metadata()), *bytes);
}

TEST(SafetensorsTest, ViewsSurviveMoves) {
  auto bytes = *SerializeSafetensors({{"w", {"U8", {3}, "abc"}}});
  auto file = SafetensorsFile::Parse(bytes);
  ASSERT_TRUE(file.ok());
  SafetensorsFile moved = std::move(*file);
  EXPECT_EQ(moved.tensors().at("w").data, "abc");
}

struct Corruption {
  const char* name;
  std::string bytes;
  const char* message;
};

class SafetensorsRejectsTest : public ::testing::TestWithParam<Corruption> {};

TEST_P(SafetensorsRejectsTest, IsAClearError) {
  auto file = SafetensorsFile::Parse(GetParam().bytes);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(GetParam().message));
}

const std::string kOk = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

INSTANTIATE_TEST_SUITE_P(
    All, SafetensorsRejectsTest,
    ::testing::Values(
        Corruption{"short", "abc", "shorter than the 8-byte header"},
        Corruption{"header_longer_than_file", WithHeader(kOk, std::string(8, 0), 1 << 20),
                   "header length"},
        Corruption{"huge_header_len", WithHeader(kOk, "", int64_t{1} << 62), "header length"},
        Corruption{"truncated_data", WithHeader(kOk, std::string(7, 0)), "outside the data section"},
        Corruption{"not_json", WithHeader("{nope", ""), "not a JSON object"},
        Corruption{"array_header", WithHeader("[1,2]", ""), "not a JSON object"},
        Corruption{"bad_dtype",
                   WithHeader(R"({"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"),
                   "unknown dtype"},
        Corruption{"shape_lies",
                   WithHeader(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})",
                              std::string(8, 0)),
                   "8 bytes for 3 elements"},
        Corruption{"negative_dim",
                   WithHeader(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})",
                              std::string(8, 0)),
                   "non-natural"},
        Corruption{"giant_shape",
                   WithHeader(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                              std::string(8, 0)),
                   "larger than the file"},
        Corruption{"reversed_offsets",
                   WithHeader(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[5,1]}})",
                              std::string(8, 0)),
                   "outside the data section"},
        Corruption{"overlap",
                   WithHeader(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                              std::string(8, 0)),
                   "overlap"},
        Corruption{"missing_offsets", WithHeader(R"({"w":{"dtype":"F32","shape":[2]}})", ""),
                   "needs dtype, shape and data_offsets"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(SafetensorsTest, SerializeRejectsMismatchedSizes) {
  EXPECT_FALSE(SerializeSafetensors({{"w", {"F32", {2}, "abc"}}}).ok());
  EXPECT_FALSE(SerializeSafetensors({{"w", {"Q4", {1}, "a"}}}).ok());
}

TEST(SafetensorsTest, EveryTruncationIsRejectedWithoutCrashing) {
  auto bytes = *SerializeSafetensors({{"a", {"F32", {3}, std::string(12, 1)}},
                                      {"b", {"I32", {2}, std::string(8, 2)}}});
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(SafetensorsFile::Parse(bytes.substr(0, n)).ok()) << "prefix of " << n << " bytes";
  }
}

}  // namespace
}  // namespace grail::model
