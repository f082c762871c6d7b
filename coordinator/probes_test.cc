#include "coordinator/probes.h"

#include <cstring>

#include "coordinator/preference_batch.h"
#include "coordinator/probe_report.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

using ::testing::HasSubstr;

grail::v1::Tensor Floats(int64_t rows, int64_t cols, const std::vector<float>& v) {
  return FloatMatrix(rows, cols, v);
}

class ProbesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pairs = ArithmeticPairs(problems_, *tok_, 5);
    ASSERT_TRUE(pairs.ok());
    pairs_ = *pairs;
  }
  std::unique_ptr<tokenizer::Tokenizer> tok_ = std::move(*tokenizer::NewTokenizer("char"));
  Dataset problems_{{Problem{"12+30=", "42", "math", ""}, Problem{"0+1=", "1", "math", ""},
                     Problem{"5+5=", "10", "math", ""}}};
  std::vector<PreferenceRow> pairs_;
};

TEST_F(ProbesTest, BuiltInProbesAreTheTrainingPairsWithParaphrasesAndAnUnrelatedAnswer) {
  auto probes = ArithmeticProbes(problems_, pairs_, *tok_, 2);
  ASSERT_TRUE(probes.ok()) << probes.status();
  ASSERT_EQ(probes->size(), 2u);
  const ProbeRow& p = (*probes)[0];
  EXPECT_EQ(p.prompt, pairs_[0].prompt);
  EXPECT_EQ(p.chosen, pairs_[0].chosen);
  EXPECT_EQ(p.rejected, pairs_[0].rejected);
  ASSERT_EQ(p.chosen_paraphrases.size(), 2u);
  EXPECT_EQ(tok_->Decode(p.chosen_paraphrases[0]), "042");
  EXPECT_EQ(tok_->Decode(p.chosen_paraphrases[1]), "42 ");
  EXPECT_EQ(p.chosen_paraphrases[0].back(), tok_->eos_id());
  const std::string wrong = tok_->Decode(pairs_[0].rejected);
  EXPECT_EQ(tok_->Decode(p.rejected_paraphrases[0]), "0" + wrong);
  const std::string unrelated = tok_->Decode(p.unrelated);
  EXPECT_NE(unrelated, "42");
  EXPECT_NE(unrelated, wrong);
}

TEST_F(ProbesTest, RecordsSumTheResponsesLogProbsAndKeepEachPositionsArgmaxProbability) {
  auto probes = ArithmeticProbes(problems_, pairs_, *tok_, 1);
  ASSERT_TRUE(probes.ok());
  const std::vector<int> greedy = {tok_->eos_id()};
  const ProbeSequences seqs = BuildProbeSequences(*probes, {greedy});
  // chosen, rejected, 2 + 2 paraphrases, unrelated, greedy.
  ASSERT_EQ(seqs.rows.size(), 8u);
  EXPECT_EQ(seqs.labels[0].type, "chosen");
  EXPECT_EQ(seqs.labels[3].type, "chosen_paraphrase");
  EXPECT_EQ(seqs.labels[3].variant, 1);
  EXPECT_EQ(seqs.labels.back().type, "greedy");

  // Score rows 0 and 7: the chosen "42<eos>" after a 7-token prompt and the greedy "<eos>".
  const auto request = ScoreSequencesRequest(seqs, 0, 1, tok_->pad_id());
  ASSERT_EQ(request.input_ids().shape(0), 1);
  const int64_t width = request.input_ids().shape(1);
  const size_t prompt = seqs.rows[0].prompt_token_ids_size();
  ASSERT_EQ(width, static_cast<int64_t>(prompt + 3));
  std::vector<float> lp(width, -9.0f), top(width, -9.0f);
  for (size_t t = prompt; t < prompt + 3; ++t) {
    lp[t] = -0.5f * static_cast<float>(t - prompt + 1);  // -0.5, -1.0, -1.5
    top[t] = std::log(0.25f);
  }
  grail::v1::ScoreSequencesResponse response;
  *response.mutable_log_probs() = Floats(1, width, lp);
  *response.mutable_max_log_probs() = Floats(1, width, top);
  std::vector<grail::v1::ProbeRecord> records;
  ASSERT_TRUE(AppendProbeRecords(seqs, 0, 1, response, 7, &records).ok());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].step(), 7);
  EXPECT_EQ(records[0].response_type(), "chosen");
  EXPECT_DOUBLE_EQ(records[0].log_prob(), -3.0);
  ASSERT_EQ(records[0].token_log_probs_size(), 3);
  EXPECT_NEAR(records[0].argmax_probs(2), 0.25, 1e-6);
  EXPECT_DOUBLE_EQ(ProbeMeans(records).at("probe_chosen_log_prob"), -3.0);
  EXPECT_NEAR(ProbeMeans(records).at("probe_chosen_argmax_prob"), 0.25, 1e-6);

  // A learner answer of the wrong shape is refused.
  *response.mutable_log_probs() = Floats(1, width - 1, std::vector<float>(width - 1, 0.0f));
  EXPECT_EQ(AppendProbeRecords(seqs, 0, 1, response, 7, &records).code(), absl::StatusCode::kInternal);
}

grail::v1::ProbeRecord Record(const std::string& stage, int step, int probe, const std::string& type, double lp) {
  grail::v1::ProbeRecord r;
  r.set_stage(stage);
  r.set_step(step);
  r.set_probe(probe);
  r.set_response_type(type);
  r.set_log_prob(lp);
  r.add_token_log_probs(static_cast<float>(lp));
  r.add_argmax_probs(0.5f);
  return r;
}

TEST(ProbeReportTest, CsvCountsStepsAcrossStagesAndSvgDrawsOneCurvePerResponseTypeAndStage) {
  std::vector<grail::v1::ProbeRecord> records = {
      Record("sft", 0, 0, "chosen", -4), Record("sft", 0, 1, "chosen", -6), Record("sft", 10, 0, "chosen", -2),
      Record("sft", 10, 0, "rejected", -5), Record("dpo", 0, 0, "chosen", -2), Record("dpo", 5, 0, "rejected", -9)};
  const std::string csv = ProbesCsv(records);
  EXPECT_THAT(csv, HasSubstr("stage,step,x,probe,response_type"));
  EXPECT_THAT(csv, HasSubstr("\ndpo,5,15,0,rejected,0,-9,1,-9,0.5,-9,0.5\n"));  // x = 10 sft steps + 5
  const std::string svg = ProbesSvg(records, "probes of <run>");
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, HasSubstr("probes of &lt;run&gt;"));
  // Two stages of two panels, two response types each: eight curves; the stages are named.
  size_t curves = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++curves;
  EXPECT_EQ(curves, 8u);
  EXPECT_THAT(svg, HasSubstr(">stage sft</text>"));
  EXPECT_THAT(svg, HasSubstr(">stage dpo</text>"));
}

// GetProbes pages: every record exactly once and in order over the pages, each page within
// its byte budget unless one record alone exceeds it, and the last page says it is done.
TEST(ProbeReportTest, PagesCoverEveryRecordOnceInOrder) {
  std::vector<grail::v1::ProbeRecord> records(10);
  for (int i = 0; i < 10; ++i) {
    records[i].set_probe(i);
    for (int t = 0; t < (i == 7 ? 400 : 20); ++t) records[i].add_token_log_probs(-0.5f);  // record 7 is big
  }
  const size_t budget = records[0].ByteSizeLong() * 3 + 1;
  std::vector<int> seen;
  int64_t offset = 0;
  int pages = 0;
  for (bool done = false; !done; ++pages) {
    grail::v1::GetProbesResponse page;
    ProbesPage(records, offset, budget, &page);
    ASSERT_GT(page.probes_size(), 0);
    size_t bytes = 0;
    for (const auto& r : page.probes()) {
      seen.push_back(r.probe());
      bytes += r.ByteSizeLong();
    }
    if (page.probes_size() > 1) EXPECT_LE(bytes, budget);
    EXPECT_EQ(page.next_offset(), offset + page.probes_size());
    offset = page.next_offset();
    done = page.done();
    ASSERT_LT(pages, 20);
  }
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_GE(pages, 4);
  grail::v1::GetProbesResponse past;
  ProbesPage(records, 99, budget, &past);
  EXPECT_EQ(past.probes_size(), 0);
  EXPECT_TRUE(past.done());
}

}  // namespace
}  // namespace grail::coordinator
