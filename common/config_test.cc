#include "common/config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail {
namespace {

using ::testing::HasSubstr;

constexpr char kGoodYaml[] = R"(
name: demo
seed: 7
model:
  tokenizer: char
  config:
    hidden_size: 64
    rope_theta: 10000.0
    tie_word_embeddings: true
sampling:
  temperature: 1.0
  stop_token_ids: [1, 2]
trainer:
  totalSteps: 40
)";

TEST(ConfigTest, ParsesYaml) {
  grail::v1::RunSpec spec;
  ASSERT_TRUE(ParseConfig(kGoodYaml, ConfigFormat::kYaml, &spec).ok());
  EXPECT_EQ(spec.name(), "demo");
  EXPECT_EQ(spec.seed(), 7u);
  EXPECT_EQ(spec.model().config().hidden_size(), 64);
  EXPECT_TRUE(spec.model().config().tie_word_embeddings());
  EXPECT_THAT(spec.sampling().stop_token_ids(), ::testing::ElementsAre(1, 2));
  EXPECT_EQ(spec.trainer().total_steps(), 40);  // lowerCamel name accepted
}

TEST(ConfigTest, ParsesJsonTheSameWay) {
  grail::v1::RunSpec spec;
  ASSERT_TRUE(ParseConfig(R"({"name": "demo", "trainer": {"total_steps": 3},
                               "sampling": {"top_p": 0.9}})",
                          ConfigFormat::kJson, &spec)
                  .ok());
  EXPECT_EQ(spec.trainer().total_steps(), 3);
  EXPECT_FLOAT_EQ(spec.sampling().top_p(), 0.9f);
}

struct BadCase {
  const char* text;
  ConfigFormat format;
  const char* must_name;
};

class ConfigRejectsTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ConfigRejectsTest, NamesTheField) {
  grail::v1::RunSpec spec;
  absl::Status status = ParseConfig(GetParam().text, GetParam().format, &spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(GetParam().must_name));
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigRejectsTest,
    ::testing::Values(
        BadCase{"trainer:\n  totl_steps: 3\n", ConfigFormat::kYaml, "trainer.totl_steps: unknown field"},
        BadCase{"nme: x\n", ConfigFormat::kYaml, "nme: unknown field"},
        BadCase{"trainer:\n  total_steps: 1.5\n", ConfigFormat::kYaml, "trainer.total_steps"},
        BadCase{"trainer:\n  total_steps: '3'\n", ConfigFormat::kYaml, "trainer.total_steps"},
        BadCase{"trainer:\n  total_steps: 99999999999\n", ConfigFormat::kYaml, "trainer.total_steps"},
        BadCase{"seed: -1\n", ConfigFormat::kYaml, "seed"},
        BadCase{"model:\n  config:\n    attention_bias: yes\n", ConfigFormat::kYaml,
                "model.config.attention_bias"},
        BadCase{"sampling:\n  stop_token_ids: [1, x]\n", ConfigFormat::kYaml,
                "sampling.stop_token_ids[1]"},
        BadCase{"sampling: 3\n", ConfigFormat::kYaml, "sampling: expected a mapping"},
        BadCase{"sampling:\n  temperature: .nan\n", ConfigFormat::kYaml, "sampling.temperature"},
        BadCase{"name: [a]\n", ConfigFormat::kYaml, "name"},
        BadCase{"a: [unclosed\n", ConfigFormat::kYaml, "not valid YAML"},
        BadCase{R"({"trainer": {"total_steps": "3"}})", ConfigFormat::kJson, "trainer.total_steps"},
        BadCase{R"({"trainer": {"bogus": 1}})", ConfigFormat::kJson, "trainer.bogus"},
        BadCase{R"({"trainer": )", ConfigFormat::kJson, "not valid JSON"}));

TEST(ConfigTest, MissingFileIsNotFound) {
  auto spec = LoadRunSpecFile("/nonexistent/spec.yaml");
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr("/nonexistent/spec.yaml"));
}

}  // namespace
}  // namespace grail
