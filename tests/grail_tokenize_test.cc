// grail-tokenize on bad input: each bad line gets one JSON error line naming the field, and
// the tool goes on with the next line (real Qwen3 tokenizer files, `make deps`).
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

std::vector<nlohmann::json> RunTool(const std::string& mode, const std::string& input) {
  const std::string dir = std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models/qwen3";
  const std::string in = ::testing::TempDir() + "grail_tokenize_in.jsonl";
  FILE* f = fopen(in.c_str(), "w");
  fputs(input.c_str(), f);
  fclose(f);
  CommandResult r = RunCommand(BinDir() + "/grail-tokenize --tokenizer=" + dir + " " + mode + " < " + in);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> out;
  std::istringstream lines(r.output);
  for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(GrailTokenizeTest, BadLinesGetAnErrorNamingTheFieldAndTheToolGoesOn) {
  auto enc = RunTool("encode", "not json\n{\"text\": 3}\n{\"text\": \"hi\", \"add_special_tokens\": 1}\n{\"text\": \"hi\"}\n");
  ASSERT_EQ(enc.size(), 4u);
  EXPECT_THAT(enc[0].value("error", ""), ::testing::HasSubstr("not a JSON object"));
  EXPECT_THAT(enc[1].value("error", ""), ::testing::HasSubstr("text"));
  EXPECT_THAT(enc[2].value("error", ""), ::testing::HasSubstr("add_special_tokens"));
  EXPECT_TRUE(enc[3].contains("ids"));
  auto dec = RunTool("decode", "{\"ids\": [1, -5]}\n{\"ids\": [999999999]}\n{\"ids\": [9707], \"stream\": true}\n");
  ASSERT_EQ(dec.size(), 3u);
  EXPECT_THAT(dec[0].value("error", ""), ::testing::HasSubstr("ids[1]"));
  EXPECT_THAT(dec[1].value("error", ""), ::testing::HasSubstr("ids[0]"));
  EXPECT_EQ(dec[2]["pieces"].size(), 1u);
  auto chat = RunTool("chat", "{\"messages\": [{\"role\": 1}]}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                          "\"enable_thinking\": \"no\"}\n{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n");
  ASSERT_EQ(chat.size(), 3u);
  EXPECT_THAT(chat[0].value("error", ""), ::testing::HasSubstr("messages[0].role"));
  EXPECT_THAT(chat[1].value("error", ""), ::testing::HasSubstr("enable_thinking"));
  EXPECT_TRUE(chat[2].contains("assistant_mask"));
}

}  // namespace
}  // namespace grail::testing
