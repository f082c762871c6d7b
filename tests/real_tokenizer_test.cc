// The whole path with a real tokenizer: a run whose model.tokenizer is the real Qwen3
// tokenizer directory (under the data root) and whose model is a small random
// Qwen3-architecture decoder over that tokenizer's 151,669-token vocabulary. The coordinator
// renders chat rows with the tokenizer's template and encodes them with the BPE, the actors
// stop at its EOS (<|im_end|>), the reward scorer gets decoded text, the learner trains the
// Qwen3 layers (q_norm/k_norm), and the export reads back elsewhere.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "actor/actor_client.h"
#include "tests/local_cluster.h"
#include "tests/service_process.h"
#include "tests/tiny_spec.h"
#include "tokenizer/chat_encoding.h"
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

// Chat rows of sums: the SFT set ({"messages"}) and the RL set ({"messages", "answer"}).
void WriteChatData(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::ofstream sft(dir + "/sft.jsonl"), math(dir + "/math.jsonl");
  for (int a = 0; a < 8; ++a) {
    for (int b = 0; b < 8; ++b) {
      const std::string q = absl::StrCat(a, "+", b, "=");
      sft << nlohmann::json{{"messages", {{{"role", "user"}, {"content", q}},
                                          {{"role", "assistant"}, {"content", absl::StrCat(a + b)}}}}}.dump()
          << "\n";
      math << nlohmann::json{{"messages", {{{"role", "system"}, {"content", "Answer with the number."}},
                                           {{"role", "user"}, {"content", q}}}},
                             {"answer", absl::StrCat(a + b)}}.dump()
           << "\n";
    }
  }
}

// The issue's whole path: a small random Qwen3-architecture model over the real Qwen3
// vocabulary; SFT on chat rows (loss on the assistant turns), then GRPO on math rows whose
// prompts are rendered with the chat template, through every service; `grailctl export` of
// the last checkpoint; the exported directory, read back by an independent PyTorch
// implementation, gives the log-probs the policy's actors (serving the learner's final
// weights) report for a fresh sample.
TEST(RealTokenizerTest, AQwen3RunWithTheRealTokenizerTrainsExportsAndReloads) {
  const std::string tokenizer = std::string(GRAIL_SOURCE_DIR) + "/.cache/npm/models/qwen3";
  ASSERT_TRUE(std::filesystem::exists(tokenizer + "/tokenizer.json")) << "run `make deps` (tools/fetch_tokenizers.sh)";
  std::string tmpl = ::testing::TempDir() + "grail_realtok_XXXXXX";
  const std::string root = mkdtemp(tmpl.data());
  std::filesystem::create_directories(root + "/tokenizers");
  std::filesystem::copy(tokenizer, root + "/tokenizers/qwen3");
  WriteChatData(root + "/data");
  LocalClusterOptions options;
  options.data_root = root;
  auto cluster = LocalCluster::Start(options);
  ASSERT_TRUE(cluster.ok()) << cluster.status();

  TinySpecOptions o;
  o.name = "real-tokenizer";
  o.heads = 2;
  o.kv_heads = 1;
  o.context = 48;
  o.max_new_tokens = 4;
  o.sft_steps = 4;
  o.sft_batch = 16;
  o.total_steps = 2;
  o.checkpoint_every = 2;
  grail::v1::RunSpec spec = TinySpec(o);
  spec.mutable_model()->set_tokenizer("tokenizers/qwen3");
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(151669);
  c->set_architecture("Qwen3ForCausalLM");
  c->set_head_dim(16);
  c->set_tie_word_embeddings(true);
  auto* d = spec.mutable_dataset();
  d->clear_builtin();
  d->set_jsonl_path("data/math.jsonl");
  d->set_sft_path("data/sft.jsonl");
  d->set_heldout_size(8);
  d->set_enable_thinking(false);  // the empty think block is part of the prompt

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
  int rl_steps = 0, sft_reports = 0;
  double generated = 0;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    last = r;
    if (r.phase() == "sft") {
      ++sft_reports;
      EXPECT_GT(r.metrics().at("sft_loss"), 0);
    }
    if (r.phase() != "rl") return;
    ++rl_steps;
    generated += r.metrics().at("samples_generated");
    EXPECT_GT(r.metrics().at("response_length_mean"), 0);
  }).ok());
  EXPECT_EQ(last.state(), grail::v1::RUN_STATE_SUCCEEDED) << last.message();
  EXPECT_EQ(sft_reports, 1);  // the last warm-up step reports
  EXPECT_EQ(rl_steps, 2);
  EXPECT_GT(generated, 0);
  auto run = client->Get(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->spec().model().config().architecture(), "Qwen3ForCausalLM");
  ASSERT_FALSE(run->last_checkpoint().empty());

  // Export the last checkpoint (the learner's weights after the last step) in float32.
  const std::string exported = root + "/exported";
  CommandResult ex = RunCommand(BinDir() + "/grailctl export --tokenizer=" + root + "/tokenizers/qwen3 " + root + "/" +
                                run->last_checkpoint() + " " + exported + " 2>&1");
  ASSERT_EQ(ex.exit_code, 0) << ex.output;

  // A fresh sample from an actor, which serves the final weights.
  auto qwen = tokenizer::HfTokenizer::FromDir(tokenizer);
  ASSERT_TRUE(qwen.ok());
  auto chat = tokenizer::ChatEncoder::Create(std::shared_ptr<const tokenizer::HfTokenizer>(std::move(*qwen)), "");
  ASSERT_TRUE(chat.ok());
  tokenizer::ChatOptions gen;
  gen.add_generation_prompt = true;
  gen.enable_thinking = false;
  auto prompt = (*chat)->Encode(nlohmann::ordered_json::parse(R"([{"role": "user", "content": "3+4="}])"), gen);
  ASSERT_TRUE(prompt.ok());
  auto actor = actor::NewGrpcActorClient({(*cluster)->actors()[0]->grpc_address()});
  grail::v1::GenerateRequest req;
  req.set_run_id("reload-check");
  req.set_group_size(1);
  req.mutable_sampling()->set_temperature(1.0);
  req.mutable_sampling()->set_max_new_tokens(4);
  req.mutable_sampling()->set_seed(7);
  req.add_prompts()->mutable_token_ids()->Add(prompt->ids.begin(), prompt->ids.end());
  std::vector<grail::v1::Sample> samples;
  ASSERT_TRUE(actor->Generate(req, [&](grail::v1::Sample s) { samples.push_back(std::move(s)); }).ok());
  ASSERT_EQ(samples.size(), 1u);
  const auto& sample = samples[0];
  ASSERT_GT(sample.token_ids_size(), 0);
  nlohmann::json ids = nlohmann::json::array();
  for (int t : sample.prompt_token_ids()) ids.push_back(t);
  for (int t : sample.token_ids()) ids.push_back(t);
  const std::string in = root + "/ids.jsonl";
  std::ofstream(in) << nlohmann::json{{"ids", ids}}.dump() << "\n";
  CommandResult lp = RunCommand("/usr/bin/python3 " + std::string(GRAIL_SOURCE_DIR) + "/tests/hf_models/hf_logprobs.py " +
                                exported + " < " + in + " 2>&1");
  ASSERT_EQ(lp.exit_code, 0) << lp.output;
  const auto reference = nlohmann::json::parse(lp.output)["log_probs"];
  ASSERT_EQ(reference.size(), ids.size() - 1);
  const size_t first = sample.prompt_token_ids_size() - 1;  // predicts the first response token
  double worst = 0;
  for (int t = 0; t < sample.token_ids_size(); ++t) {
    EXPECT_NEAR(sample.behavior_log_probs(t), reference[first + t].get<double>(), 2e-3) << "response token " << t;
    worst = std::max(worst, std::fabs(sample.behavior_log_probs(t) - reference[first + t].get<double>()));
  }
  std::cout << "reload: " << sample.token_ids_size() << " response tokens, largest |log-prob difference| " << worst
            << std::endl;
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace grail::testing
