// Streaming decode and SentencePiece-style BPE over the real tokenizer files (`make deps`):
// characters split across byte-level or byte-fallback tokens are held back until complete.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tokenizer/hf_tokenizer.h"

namespace grail::tokenizer {
namespace {

std::unique_ptr<HfTokenizer> Load(const std::string& name) {
  auto tok = HfTokenizer::FromDir(std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models/" + name);
  EXPECT_TRUE(tok.ok()) << tok.status() << " (run `make deps`)";
  return tok.ok() ? std::move(*tok) : nullptr;
}

std::vector<std::string> Stream(const HfTokenizer& tok, const std::vector<int>& ids) {
  DecodeStream stream(tok, /*skip_special_tokens=*/true);
  std::vector<std::string> pieces;
  for (int id : ids) pieces.push_back(*stream.Next(id));
  return pieces;
}

std::string Join(const std::vector<std::string>& pieces) {
  std::string s;
  for (const auto& p : pieces) s += p;
  return s;
}

TEST(DecodeStreamTest, HoldsBackCharactersSplitAcrossTokens) {
  for (const char* name : {"qwen3", "llama2"}) {
    auto tok = Load(name);
    ASSERT_NE(tok, nullptr);
    // Rare CJK and emoji with modifiers: several tokens per character in both vocabularies.
    const std::string text = "Hi 𠜎 and 🙋🏽‍♀️ ok";
    auto ids = tok->Encode(text);
    ASSERT_TRUE(ids.ok()) << ids.status();
    const auto pieces = Stream(*tok, *ids);
    ASSERT_EQ(pieces.size(), ids->size());
    EXPECT_EQ(Join(pieces), *tok->Decode(*ids, true)) << name;
    int held = 0;
    for (const auto& p : pieces) {
      EXPECT_EQ(p.find("\xEF\xBF\xBD"), std::string::npos) << name << ": a piece shows a split character";
      held += p.empty();
    }
    EXPECT_GT(held, 0) << name << ": some token ends inside a character";
  }
}

TEST(SentencePieceTest, Llama2EncodesWithByteFallbackAndDecodesBack) {
  auto tok = Load("llama2");
  ASSERT_NE(tok, nullptr);
  EncodeOptions with_bos;
  with_bos.add_special_tokens = true;
  auto ids = tok->Encode("Hello world", with_bos);
  ASSERT_TRUE(ids.ok()) << ids.status();
  // <s> ▁Hello ▁world, as the reference tokenizes it.
  EXPECT_THAT(*ids, ::testing::ElementsAre(1, tok->TokenId("\xE2\x96\x81Hello"), tok->TokenId("\xE2\x96\x81world")));
  EXPECT_EQ(*tok->Decode(*ids, /*skip_special_tokens=*/true), "Hello world");
  // A character outside the vocabulary becomes its UTF-8 bytes as <0xXX> tokens.
  auto rare = tok->Encode("𠜎");
  ASSERT_TRUE(rare.ok());
  EXPECT_THAT(*rare, ::testing::Contains(tok->TokenId("<0xF0>")));
  EXPECT_EQ(*tok->Decode(*rare, true), "𠜎");
}

}  // namespace
}  // namespace grail::tokenizer
