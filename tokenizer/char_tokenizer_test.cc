#include "tokenizer/char_tokenizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::tokenizer {
namespace {

TEST(CharTokenizerTest, RoundTrips) {
  CharTokenizer tok;
  auto ids = tok.Encode("12+345=357 ok");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), 13u);
  for (int id : *ids) EXPECT_GE(id, 3);
  EXPECT_EQ(tok.Decode(*ids), "12+345=357 ok");
  std::vector<int> with_specials = {CharTokenizer::kBos, (*ids)[0], CharTokenizer::kEos};
  EXPECT_EQ(tok.Decode(with_specials), "1");
}

TEST(CharTokenizerTest, RejectsUnknownCharacterNamingPosition) {
  CharTokenizer tok;
  auto ids = tok.Encode("ab\ncd");
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(std::string(ids.status().message()), ::testing::HasSubstr("text[2]"));
}

}  // namespace
}  // namespace grail::tokenizer

namespace grail::tokenizer {
namespace {

TEST(NewTokenizerTest, NamesTheCharTokenizerOrADirectoryUnderTheDataRoot) {
  auto tok = NewTokenizer("char");
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->vocab_size(), 98);
  EXPECT_EQ((*tok)->eos_id(), CharTokenizer::kEos);
  ASSERT_TRUE(NewTokenizer("").ok());
  auto no_root = NewTokenizer("bpe");
  ASSERT_FALSE(no_root.ok());
  EXPECT_THAT(std::string(no_root.status().message()), ::testing::HasSubstr("model.tokenizer: 'bpe'"));
  auto escape = NewTokenizer("../../etc", "/tmp");
  EXPECT_THAT(std::string(escape.status().message()), ::testing::HasSubstr("model.tokenizer"));
  auto missing = NewTokenizer("no-such-tokenizer", "/tmp");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("model.tokenizer 'no-such-tokenizer'"));
  EXPECT_THAT(std::string(missing.status().message()), ::testing::Not(::testing::HasSubstr("/tmp")));
}

}  // namespace
}  // namespace grail::tokenizer
