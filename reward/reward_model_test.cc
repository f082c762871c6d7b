#include "reward/reward_model.h"

#include <algorithm>
#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tokenizer/char_tokenizer.h"
#include "model/checkpoint.h"
#include "reward/reward_scorer.h"

namespace grail::reward {
namespace {

model::CausalLm ValueModel(bool value_head, int vocab = 98) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_attention_heads = 4;
  c.max_position_embeddings = 32;
  c.value_head = value_head;
  model::CausalLm m(c);
  m->InitWeights(9);
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) {
    if (p.key() == "score.weight") p.value().normal_(0, 1);
  }
  return m;
}

// A text is scored as a finished response: BOS, its tokens, EOS, and the value head at the
// EOS (where the reward_model objective reads its scores).
TEST(RewardModelTest, ScoresTheValueHeadAtTheEosAfterTheText) {
  model::CausalLm m = ValueModel(true);
  auto rm = NewTorchRewardModel();
  EXPECT_EQ(rm->Score({"x"}).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(rm->Load(*model::ModelToSafetensors(m), 0).ok());
  const std::vector<std::string> texts = {"1+2=3", "a much longer text", "q"};
  auto scores = rm->Score(texts);
  ASSERT_TRUE(scores.ok()) << scores.status();
  tokenizer::CharTokenizer tok;
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = *tok.Encode(texts[i]);
    ids.insert(ids.begin(), tokenizer::CharTokenizer::kBos);
    ids.push_back(tok.eos_id());
    auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    auto valid = torch::ones_like(t, torch::kBool);
    auto v = m->Values(m->Hidden(t, model::PositionsFromValid(valid), valid));
    EXPECT_NEAR((*scores)[i], v[0][ids.size() - 1].item<double>(), 1e-4) << texts[i];
  }
  EXPECT_NE((*scores)[0], (*scores)[1]);
}

// A reward model over a real tokenizer: the blob names the tokenizer directory (under the
// scorer's data root), and texts are scored through that tokenizer.
TEST(RewardModelTest, ScoresThroughTheTokenizerItsBlobNames) {
  const std::string root = std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models";
  auto qwen = tokenizer::NewTokenizer("qwen3", root);
  ASSERT_TRUE(qwen.ok()) << qwen.status() << " (run `make deps`)";
  model::CausalLm m = ValueModel(true, (*qwen)->vocab_size());
  auto rm = NewTorchRewardModel(root);
  ASSERT_TRUE(rm->Load(*model::ModelToSafetensors(m, torch::kFloat32, {{model::kTokenizerMetadataKey, "qwen3"}}), 1).ok());
  const std::vector<std::string> texts = {"The answer is 42.", "你好，世界 🙂"};
  auto scores = rm->Score(texts);
  ASSERT_TRUE(scores.ok()) << scores.status();
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = *(*qwen)->Encode(texts[i]);  // Qwen3 has no BOS
    if ((*qwen)->eos_id() >= 0) ids.push_back((*qwen)->eos_id());
    auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    auto valid = torch::ones_like(t, torch::kBool);
    auto v = m->Values(m->Hidden(t, model::PositionsFromValid(valid), valid));
    EXPECT_NEAR((*scores)[i], v[0][ids.size() - 1].item<double>(), 1e-4) << texts[i];
  }
  // A tokenizer with more tokens than the model's vocabulary, or one that is not there, is
  // refused before the model is swapped in; the loaded model keeps serving.
  model::CausalLm small = ValueModel(true, 1000);
  auto too_big = rm->Load(*model::ModelToSafetensors(small, torch::kFloat32, {{model::kTokenizerMetadataKey, "qwen3"}}), 2);
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(too_big.message()), ::testing::HasSubstr("vocab_size"));
  EXPECT_FALSE(rm->Load(*model::ModelToSafetensors(m, torch::kFloat32, {{model::kTokenizerMetadataKey, "nope"}}), 3).ok());
  EXPECT_TRUE(rm->Score(texts).ok());
}

TEST(RewardModelTest, RefusesModelsWithoutAValueHead) {
  model::CausalLm m = ValueModel(false);
  auto rm = NewTorchRewardModel();
  EXPECT_EQ(rm->Load(*model::ModelToSafetensors(m), 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RewardModelTest, ScorerUsesTheModelForRmItems) {
  auto rm = NewTorchRewardModel();
  auto scorer = RewardScorer::Create({}, rm.get());
  grail::v1::ScoreRequest req;
  auto* item = req.add_items();
  item->set_verifier("rm");
  item->set_prompt("1+2=");
  item->set_response("3");
  auto* math = req.add_items();
  math->set_verifier("math");
  math->set_response("3");
  math->set_answer("3");
  auto before = (*scorer)->Score(req);
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(before->scores(0).failed());
  EXPECT_THAT(before->scores(0).error(), ::testing::HasSubstr("no reward model"));
  EXPECT_EQ(before->scores(1).score(), 1);
  model::CausalLm m = ValueModel(true);
  ASSERT_TRUE((*scorer)->LoadRewardModel(*model::ModelToSafetensors(m), 1).ok());
  auto after = (*scorer)->Score(req);
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->scores(0).failed());
  EXPECT_FLOAT_EQ(after->scores(0).score(), static_cast<float>((*rm->Score({"1+2=3"}))[0]));
  // Without an answer nothing is verified behind the model's score; with one, the math
  // verifier's verdict comes along (answer_correct), whatever the model scored.
  EXPECT_FALSE(after->scores(0).answer_checked());
  EXPECT_FALSE(after->scores(1).answer_checked());
  item->set_answer("3");
  auto* wrong = req.add_items();
  *wrong = *item;
  wrong->set_response("4");
  auto checked = (*scorer)->Score(req);
  ASSERT_TRUE(checked.ok());
  EXPECT_TRUE(checked->scores(0).answer_checked());
  EXPECT_TRUE(checked->scores(0).answer_correct());
  EXPECT_TRUE(checked->scores(2).answer_checked());
  EXPECT_FALSE(checked->scores(2).answer_correct());
  // The same item in a batch of three: BLAS blocks the products by batch size, so the score
  // may differ in its last bits (the scorer does not claim batch invariance).
  const float alone = after->scores(0).score();
  EXPECT_NEAR(checked->scores(0).score(), alone, 1e-5 * std::max(1.0f, std::abs(alone)));
}

}  // namespace
}  // namespace grail::reward
