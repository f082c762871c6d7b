#include "actor/rollout_engine.h"

#include <map>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/testing/tiny_model.h"

namespace grail::actor {
namespace {

constexpr int kEos = 2;

grail::v1::GenerateRequest Request(int group_size, float temperature, int max_new_tokens, uint64_t seed) {
  grail::v1::GenerateRequest req;
  req.set_run_id("r");
  req.set_group_size(group_size);
  auto* p = req.add_prompts();
  p->set_prompt_id(4);
  for (int id : {1, 5, 9, 7}) p->add_token_ids(id);
  auto* q = req.add_prompts();
  q->set_prompt_id(5);
  for (int id : {1, 6}) q->add_token_ids(id);
  auto* s = req.mutable_sampling();
  s->set_temperature(temperature);
  s->set_max_new_tokens(max_new_tokens);
  s->add_stop_token_ids(kEos);
  s->set_seed(seed);
  return req;
}

std::vector<grail::v1::Sample> Generate(RolloutEngine& engine, const grail::v1::GenerateRequest& req) {
  std::vector<grail::v1::Sample> out;
  absl::Status s = engine.Generate(req, [&](grail::v1::Sample x) {
    out.push_back(std::move(x));
    return true;
  });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

// Samples keyed by (prompt, index): the engine emits them as they finish, in any order.
std::map<std::pair<int64_t, int>, std::vector<int>> Tokens(const std::vector<grail::v1::Sample>& samples) {
  std::map<std::pair<int64_t, int>, std::vector<int>> out;
  for (const auto& s : samples) out[{s.prompt_id(), s.sample_index()}] = {s.token_ids().begin(), s.token_ids().end()};
  return out;
}

class RolloutEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = *RolloutEngine::Create({});
    model_ = model::testing::TinyModel();
  }
  std::unique_ptr<RolloutEngine> engine_;
  model::CausalLm model_{nullptr};
};

TEST_F(RolloutEngineTest, RefusesToGenerateWithoutWeights) {
  auto s = engine_->Generate(Request(2, 1, 4, 1), [](grail::v1::Sample) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(engine_->Info().weights_version(), -1);
}

TEST_F(RolloutEngineTest, EverySampleOnceWithItsProvenanceAndTheModelsOwnLogProbs) {
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(model_), 3).ok());
  const auto samples = Generate(*engine_, Request(3, 1.0f, 6, 11));
  ASSERT_EQ(samples.size(), 6u);
  EXPECT_EQ(Tokens(samples).size(), 6u);  // no (prompt, index) twice
  for (const auto& s : samples) {
    EXPECT_EQ(s.policy_version(), 3);
    EXPECT_EQ(s.run_id(), "r");
    ASSERT_GT(s.token_ids_size(), 0);
    ASSERT_LE(s.token_ids_size(), 6);
    ASSERT_EQ(s.behavior_log_probs_size(), s.token_ids_size());
    const bool stopped = s.token_ids(s.token_ids_size() - 1) == kEos;
    EXPECT_EQ(s.finish_reason(), stopped ? grail::v1::FINISH_REASON_EOS : grail::v1::FINISH_REASON_LENGTH);
    // The behaviour log-probs are the model's log-probs of the sampled tokens (T = 1).
    std::vector<int64_t> ids(s.prompt_token_ids().begin(), s.prompt_token_ids().end());
    ids.insert(ids.end(), s.token_ids().begin(), s.token_ids().end());
    auto lp = model::testing::NextTokenLogProbs(model_, torch::tensor(ids).unsqueeze(0));
    const int P = s.prompt_token_ids_size();
    for (int i = 0; i < s.token_ids_size(); ++i) {
      EXPECT_NEAR(s.behavior_log_probs(i), lp[0][P - 1 + i].item<float>(), 1e-4) << "token " << i;
    }
  }
}

TEST_F(RolloutEngineTest, SeededSamplingReproducesAndGreedyIsDeterministic) {
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(model_), 1).ok());
  EXPECT_EQ(Tokens(Generate(*engine_, Request(4, 1.0f, 8, 5))), Tokens(Generate(*engine_, Request(4, 1.0f, 8, 5))));
  EXPECT_NE(Tokens(Generate(*engine_, Request(4, 1.0f, 8, 5))), Tokens(Generate(*engine_, Request(4, 1.0f, 8, 6))));
  // Greedy: every sample of a prompt is the same, whatever the seed.
  auto greedy = Tokens(Generate(*engine_, Request(3, 0.0f, 8, 1)));
  EXPECT_EQ((greedy[{4, 0}]), (greedy[{4, 2}]));
  EXPECT_EQ(greedy, Tokens(Generate(*engine_, Request(3, 0.0f, 8, 99))));
}

TEST_F(RolloutEngineTest, AWeightsSwapChangesTheVersionAndABadBlobKeepsTheOldModel) {
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(model_), 1).ok());
  auto other = model::testing::TinyModel(/*seed=*/9);
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(other), 2).ok());
  EXPECT_EQ(engine_->Info().weights_version(), 2);
  EXPECT_FALSE(engine_->LoadWeights("not safetensors", 3).ok());
  EXPECT_EQ(engine_->Info().weights_version(), 2);
  for (const auto& s : Generate(*engine_, Request(1, 0.0f, 3, 1))) EXPECT_EQ(s.policy_version(), 2);
}

TEST_F(RolloutEngineTest, RefusesBadRequestsNamingTheField) {
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(model_), 1).ok());
  auto no_group = Request(0, 1.0f, 4, 1);
  EXPECT_THAT(std::string(engine_->Generate(no_group, [](grail::v1::Sample) { return true; }).message()),
              ::testing::HasSubstr("group_size"));
  auto bad_token = Request(1, 1.0f, 4, 1);
  bad_token.mutable_prompts(0)->set_token_ids(1, 500);
  auto s = engine_->Generate(bad_token, [](grail::v1::Sample) { return true; });
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("prompt"));
}

TEST_F(RolloutEngineTest, GenerationStopsAtTheModelContext) {
  ASSERT_TRUE(engine_->LoadWeights(model::testing::TinyBlob(model_), 1).ok());
  auto req = Request(2, 1.0f, 64, 1);  // 4 + 64 tokens would exceed the context of 32
  req.mutable_sampling()->clear_stop_token_ids();
  for (const auto& s : Generate(*engine_, req)) {
    EXPECT_LE(s.prompt_token_ids_size() + s.token_ids_size(), 32);
    EXPECT_EQ(s.finish_reason(), grail::v1::FINISH_REASON_LENGTH);
  }
}

}  // namespace
}  // namespace grail::actor
