// The whole path with a real tokenizer: a run whose model.tokenizer is the real Qwen3
// tokenizer directory (under the data root) and whose model is a small random
// Qwen3-architecture decoder over that tokenizer's 151,669-token vocabulary. The coordinator
// encodes prompts and SFT targets with the BPE, the actors stop at its EOS (<|im_end|>), the
// reward scorer gets decoded text, and the learner trains the Qwen3 layers (q_norm/k_norm).
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"
#include "tests/tiny_spec.h"
#include "tokenizer/hf_tokenizer.h"

namespace grail::testing {
namespace {

// The actors stop at every end-of-turn token of the family, EOS first.
TEST(RealTokenizerTest, StopTokensOfTheRealTokenizers) {
  const std::string models = std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models/";
  auto qwen = tokenizer::HfTokenizer::FromDir(models + "qwen3");
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  EXPECT_THAT((*qwen)->stop_ids(), ::testing::ElementsAre((*qwen)->TokenId("<|im_end|>"), (*qwen)->TokenId("<|endoftext|>")));
  auto llama = tokenizer::HfTokenizer::FromDir(models + "llama3_1");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ((*llama)->stop_ids().front(), (*llama)->eos_id());
  EXPECT_THAT((*llama)->stop_ids(), ::testing::IsSupersetOf({(*llama)->TokenId("<|eot_id|>"),
                                                               (*llama)->TokenId("<|end_of_text|>")}));
}

TEST(RealTokenizerTest, AQwen3RunWithTheRealTokenizerTrainsThroughEveryService) {
  const std::string tokenizer = std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models/qwen3";
  ASSERT_TRUE(std::filesystem::exists(tokenizer + "/tokenizer.json")) << "run `make deps` (tools/fetch_tokenizers.sh)";
  std::string tmpl = ::testing::TempDir() + "grail_realtok_XXXXXX";
  const std::string root = mkdtemp(tmpl.data());
  std::filesystem::create_directories(root + "/tokenizers");
  std::filesystem::copy(tokenizer, root + "/tokenizers/qwen3");
  LocalClusterOptions options;
  options.data_root = root;
  auto cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  TinySpecOptions o;
  o.name = "real-tokenizer";
  o.heads = 2;
  o.kv_heads = 1;
  o.context = 32;
  o.max_new_tokens = 4;
  o.sft_steps = 4;
  o.sft_batch = 16;
  o.total_steps = 2;
  grail::v1::RunSpec spec = TinySpec(o);
  spec.mutable_model()->set_tokenizer("tokenizers/qwen3");
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(151669);
  c->set_architecture("Qwen3ForCausalLM");
  c->set_head_dim(16);
  c->set_tie_word_embeddings(true);

  auto client = (*cluster)->NewRunClient();
  // A vocabulary smaller than the tokenizer's is refused at submit, naming the field.
  grail::v1::RunSpec small = spec;
  small.mutable_model()->mutable_config()->set_vocab_size(1000);
  auto refused = client->Submit(small);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("model.config.vocab_size"));

  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::StepReport last;
  int rl_steps = 0;
  double generated = 0;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    last = r;
    if (r.phase() != "rl") return;
    ++rl_steps;
    generated += r.metrics().at("samples_generated");
    EXPECT_GT(r.metrics().at("response_length_mean"), 0);
  }).ok());
  EXPECT_EQ(last.state(), grail::v1::RUN_STATE_SUCCEEDED) << last.message();
  EXPECT_EQ(rl_steps, 2);
  EXPECT_GT(generated, 0);
  auto run = client->Get(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->spec().model().config().architecture(), "Qwen3ForCausalLM");
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace grail::testing
