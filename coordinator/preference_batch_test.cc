#include "coordinator/preference_batch.h"

#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

std::vector<float> Floats(const grail::v1::Tensor& t) {
  std::vector<float> out(t.data().size() / 4);
  std::memcpy(out.data(), t.data().data(), t.data().size());
  return out;
}

TEST(PreferenceBatchTest, ArithmeticPairsPreferTheCorrectSum) {
  auto tok = std::move(*tokenizer::NewTokenizer("char"));
  Dataset problems({Problem{"12+30=", "42", "math", ""}, Problem{"0+1=", "1", "math", ""}});
  auto pairs = ArithmeticPairs(problems, *tok, 3);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_EQ(pairs->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& p = (*pairs)[i];
    EXPECT_EQ(p.prompt.front(), tok->bos_id());
    EXPECT_EQ(tok->Decode(p.prompt), problems.Get(i).prompt);
    EXPECT_EQ(p.chosen.back(), tok->eos_id());
    EXPECT_EQ(tok->Decode(p.chosen), problems.Get(i).answer);
    const int64_t wrong = std::stoll(tok->Decode(p.rejected));
    const int64_t right = std::stoll(problems.Get(i).answer);
    EXPECT_NE(wrong, right);
    EXPECT_GE(wrong, 0);
    EXPECT_LE(std::abs(wrong - right), 9);
  }
}

// A reward model's pairs: per problem a near miss (as in the preference objectives'
// pairs), a malformed or unrelated answer, a slip in the tens (the units right) and another
// problem's answer.
TEST(PreferenceBatchTest, VariedPairsAddMalformedTensSlipAndOtherProblemsAnswers) {
  auto tok = std::move(*tokenizer::NewTokenizer("char"));
  std::vector<Problem> list;
  for (int i = 0; i < 50; ++i) list.push_back(Problem{absl::StrCat(i, "+", i, "="), absl::StrCat(2 * i), "", ""});
  Dataset problems(list);
  std::set<std::string> answers;
  for (const auto& p : list) answers.insert(p.answer);
  auto near = ArithmeticPairs(problems, *tok, 3);
  auto varied = ArithmeticPairs(problems, *tok, 3, PairStyle::kVaried);
  ASSERT_TRUE(near.ok() && varied.ok());
  ASSERT_EQ(varied->size(), 4 * near->size());
  int far = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    const std::string answer = problems.Get(i).answer;
    const auto* rows = &(*varied)[4 * i];
    EXPECT_EQ(tok->Decode(rows[0].chosen), answer);
    std::vector<std::string> wrong;
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(rows[k].chosen, rows[0].chosen);
      EXPECT_EQ(rows[k].rejected.back(), tok->eos_id());
      wrong.push_back(tok->Decode(rows[k].rejected));
      EXPECT_NE(wrong.back(), answer);
    }
    const int64_t miss = std::abs(std::stoll(wrong[0]) - std::stoll(answer));
    EXPECT_TRUE(miss >= 1 && miss <= 9) << answer << " " << wrong[0];
    far += std::abs(std::stoll(wrong[1]) - std::stoll(answer)) > 9 || wrong[1].size() != answer.size();
    const int64_t slip = std::stoll(wrong[2]) - std::stoll(answer);
    EXPECT_TRUE(slip == 10 || slip == 20 || slip == -10 || slip == -20) << answer << " " << wrong[2];
    EXPECT_TRUE(answers.count(wrong[3])) << wrong[3] << " is no problem's answer";
  }
  EXPECT_GT(far, 25);  // mostly not near misses
}

TEST(PreferenceBatchTest, RequestsPutChosenThenRejectedWithCompletionMasks) {
  PreferenceRow a{{1, 10, 11}, {20, 2}, {21, 22, 2}}, b{{1, 12}, {23, 2}, {24, 2}};
  const auto seqs = BuildPreferenceSequences({&a, &b}, /*kto=*/false);
  ASSERT_EQ(seqs.rows.size(), 4u);
  EXPECT_THAT(seqs.rows[1].token_ids(), ::testing::ElementsAre(23, 2));   // b chosen
  EXPECT_THAT(seqs.rows[2].token_ids(), ::testing::ElementsAre(21, 22, 2));  // a rejected
  // Aligned log-probs: column t holds token t's; the completion's columns are summed.
  std::vector<std::vector<float>> aligned = {{0, -1, -1, -0.5f, -0.25f, 0},
                                             {0, -1, -2, -3, 0, 0},
                                             {0, -1, -1, -1, -2, -4},
                                             {0, -1, -0.5f, -0.5f, 0, 0}};
  EXPECT_THAT(SummedCompletionLogProbs(seqs, aligned), ::testing::ElementsAre(-0.75f, -5.0f, -7.0f, -1.0f));
  const auto req = PreferenceStepRequest(4, seqs, {-1, -2, -3, -4}, /*eval_only=*/false, /*pad_id=*/0);
  EXPECT_EQ(req.step(), 4);
  EXPECT_THAT(req.input_ids().shape(), ::testing::ElementsAre(4, 6));
  EXPECT_THAT(Floats(req.completion_mask()),
              ::testing::ElementsAre(0, 0, 0, 1, 1, 0,  //
                                     0, 0, 1, 1, 0, 0,  //
                                     0, 0, 0, 1, 1, 1,  //
                                     0, 0, 1, 1, 0, 0));
  EXPECT_THAT(req.ref_log_probs().shape(), ::testing::ElementsAre(4, 1));
  EXPECT_FALSE(req.has_labels());
  // Reference-free objectives send no reference log-probs.
  EXPECT_FALSE(PreferenceStepRequest(4, seqs, {}, false, 0).has_ref_log_probs());
}

TEST(PreferenceBatchTest, KtoRowsAreLabelledAndMismatchedAcrossPairs) {
  PreferenceRow a{{1, 10}, {20, 2}, {21, 2}}, b{{1, 12}, {23, 2}, {24, 2}};
  const auto seqs = BuildPreferenceSequences({&a, &b}, /*kto=*/true);
  ASSERT_EQ(seqs.rows.size(), 8u);
  EXPECT_THAT(seqs.labels, ::testing::ElementsAre(1, 0, 1, 0));
  // Mismatched twins: a's prompt with b's completions, b's with a's.
  EXPECT_THAT(seqs.rows[4].prompt_token_ids(), ::testing::ElementsAre(1, 10));
  EXPECT_THAT(seqs.rows[4].token_ids(), ::testing::ElementsAre(23, 2));
  EXPECT_THAT(seqs.rows[7].prompt_token_ids(), ::testing::ElementsAre(1, 12));
  EXPECT_THAT(seqs.rows[7].token_ids(), ::testing::ElementsAre(21, 2));
  const auto req = PreferenceStepRequest(1, seqs, std::vector<float>(8, -1), true, 0);
  EXPECT_TRUE(req.eval_only());
  EXPECT_THAT(req.labels().shape(), ::testing::ElementsAre(4, 1));
}

TEST(PreferenceBatchTest, SplitPairsKeepsHeldOutDisjoint) {
  std::vector<PreferenceRow> all;
  for (int i = 0; i < 20; ++i) all.push_back(PreferenceRow{{1, i}, {2}, {3}});
  Splits s{Dataset({}), Dataset({})};
  ASSERT_TRUE(SplitPairs(all, 5, 4, &s).ok());
  EXPECT_EQ(s.pairs.size(), 16u);
  EXPECT_EQ(s.heldout_pairs.size(), 4u);
  std::set<int> seen;
  for (const auto* v : {&s.pairs, &s.heldout_pairs}) {
    for (const auto& p : *v) EXPECT_TRUE(seen.insert(p.prompt[1]).second);
  }
  EXPECT_FALSE(SplitPairs(all, 5, 20, &s).ok());
}

}  // namespace
}  // namespace grail::coordinator
