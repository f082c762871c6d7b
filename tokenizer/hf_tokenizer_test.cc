#include "tokenizer/hf_tokenizer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::tokenizer {
namespace {

using ::testing::ElementsAre;

// A byte-level BPE over a tiny alphabet: "Ġ" is the byte-level character of a space.
std::string TinyJson(bool ignore_merges = false, const std::string& merges_style = "strings",
                     bool bos_template = false) {
  const std::string merges = merges_style == "strings" ? R"(["a b", "ab c", "Ġ a", "b c"])"
                                                       : R"([["a", "b"], ["ab", "c"], ["Ġ", "a"], ["b", "c"]])";
  return std::string(R"({
  "added_tokens": [
    {"id": 20, "content": "<|x|>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
    {"id": 21, "content": "<t>", "special": false, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
    {"id": 22, "content": "<s>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false}
  ],
  "normalizer": {"type": "NFC"},
  "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": " ?\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+"}, "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}]},
  "post_processor": )") +
         (bos_template ? R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {"<s>": {"id": "<s>", "ids": [22]}}})"
                       : R"({"type": "ByteLevel"})") +
         R"(,
  "decoder": {"type": "ByteLevel"},
  "model": {"type": "BPE", "ignore_merges": )" + (ignore_merges ? "true" : "false") + R"(,
    "vocab": {"a": 0, "b": 1, "c": 2, "Ġ": 3, "ab": 4, "abc": 5, "Ġa": 6, "bc": 7, "1": 8, "!": 9,
              "Ã": 10, "©": 11, "Ċ": 12, "e": 13, "Ì": 14, "ģ": 15, "x": 16, "ca": 17},
    "merges": )" + merges + R"(}
})";
}

std::unique_ptr<HfTokenizer> Load(const std::string& tokenizer_json, const std::string& config = "") {
  auto t = HfTokenizer::FromJson(tokenizer_json, config);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

TEST(HfTokenizerTest, MergesLowestRankFirstInBothEncodings) {
  for (const char* style : {"strings", "pairs"}) {
    auto tok = Load(TinyJson(false, style));
    // "abc": a+b (rank 0) first, then ab+c (rank 1) -> abc; "bc" would be rank 3.
    EXPECT_THAT(*tok->Encode("abc"), ElementsAre(5)) << style;
    // " abc" is one pre-token: Ġ+a (rank 2) and a+b (rank 0) compete for "a"; a+b wins.
    EXPECT_THAT(*tok->Encode(" abc"), ElementsAre(3, 5)) << style;
    EXPECT_THAT(*tok->Encode("cab"), ElementsAre(2, 4)) << style;  // "ca" is in the vocab but no merge makes it
  }
}

TEST(HfTokenizerTest, IgnoreMergesTakesAPieceThatIsInTheVocabulary) {
  auto tok = Load(TinyJson(/*ignore_merges=*/true));
  EXPECT_THAT(*tok->Encode("ca"), ElementsAre(17));
  EXPECT_THAT(*Load(TinyJson(false))->Encode("ca"), ElementsAre(2, 0));
}

TEST(HfTokenizerTest, SpecialTokenTextIsParsedOnlyWhenAsked) {
  auto tok = Load(TinyJson());
  EncodeOptions parse;
  parse.parse_special_tokens = true;
  EXPECT_THAT(*tok->Encode("ab<|x|>c", parse), ElementsAre(4, 20, 2));
  auto plain = *tok->Encode("ab<|x|>c");  // data: the special token's text stays text
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 20), 0);
  // A non-special added token is matched either way, as the reference library does.
  EXPECT_THAT(*tok->Encode("a<t>"), ElementsAre(0, 21));
}

TEST(HfTokenizerTest, PostProcessorTemplateAddsBosOnlyWithAddSpecialTokens) {
  auto tok = Load(TinyJson(false, "strings", /*bos_template=*/true));
  EncodeOptions with;
  with.add_special_tokens = true;
  EXPECT_THAT(*tok->Encode("ab", with), ElementsAre(22, 4));
  EXPECT_THAT(*tok->Encode("ab"), ElementsAre(4));
}

TEST(HfTokenizerTest, NormalizesToNfcAndMapsBytes) {
  auto tok = Load(TinyJson());
  // "e" + combining acute (U+0301) composes to U+00E9, whose UTF-8 bytes C3 A9 are the
  // byte-level characters Ã and ©.
  EXPECT_THAT(*tok->Encode("e\xCC\x81"), ElementsAre(10, 11));
  EXPECT_EQ(*tok->Decode({10, 11}, false), "\xC3\xA9");
  EXPECT_THAT(*tok->Encode("a\nb"), ElementsAre(0, 12, 1));
}

TEST(HfTokenizerTest, DecodeSkipsSpecialTokensAndReplacesBrokenUtf8) {
  auto tok = Load(TinyJson());
  EXPECT_EQ(*tok->Decode({4, 20, 21, 3, 0}, /*skip_special_tokens=*/false), "ab<|x|><t> a");
  EXPECT_EQ(*tok->Decode({4, 20, 21, 3, 0}, /*skip_special_tokens=*/true), "ab<t> a");
  // Half of a two-byte character: one replacement character, as Rust's from_utf8_lossy.
  EXPECT_EQ(*tok->Decode({10, 0}, false), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(tok->Decode({99}, false).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HfTokenizerTest, CleanUpTokenizationSpacesWhenTheConfigAsks) {
  auto tok = Load(TinyJson(), R"({"clean_up_tokenization_spaces": true, "eos_token": "<|x|>"})");
  EXPECT_EQ(*tok->Decode({0, 3, 9}, false), "a!");  // "a !" -> "a!"
  EXPECT_EQ(tok->eos_id(), 20);
  EXPECT_THAT(tok->stop_ids(), ElementsAre(20));
  EXPECT_EQ(Load(TinyJson())->eos_id(), -1);
  EXPECT_TRUE(Load(TinyJson())->stop_ids().empty());
}

TEST(HfTokenizerTest, RefusesInvalidInputAndUnsupportedFilesByName) {
  auto tok = Load(TinyJson());
  auto bad = tok->Encode("a\xFF");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), ::testing::HasSubstr("text[1]"));
  std::string unigram = TinyJson();
  unigram.replace(unigram.find("\"BPE\""), 5, "\"Unigram\"");
  auto refused = HfTokenizer::FromJson(unigram, "");
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("model.type 'Unigram'"));
  EXPECT_FALSE(HfTokenizer::FromJson("not json", "").ok());
}

TEST(HfTokenizerTest, LongWhitespaceRunsStayLinear) {
  auto tok = Load(TinyJson());
  const std::string spaces(200000, ' ');
  auto ids = tok->Encode(spaces);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->size(), spaces.size());  // no merge joins "ĠĠ" in this vocabulary
}

}  // namespace
}  // namespace grail::tokenizer
