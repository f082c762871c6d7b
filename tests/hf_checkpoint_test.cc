// Loading Hugging Face checkpoints against an independent reference: tests/hf_models/
// make_reference.py (Debian's python3-torch) writes small seeded Llama, Llama-3 (rope_scaling
// llama3, tied embeddings, bf16), Qwen2 (QKV bias, three shards with an index) and Qwen3
// (q_norm/k_norm, head_dim apart from hidden_size / heads, f16, two shards) directories as
// Hugging Face lays them out, with the logits a plain PyTorch forward pass gives. grail's
// loader and decoder must give the same logits.
#include <cmath>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/transformer.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

// The reference's token ids and logits from <dir>/expected.json.
struct Reference {
  std::vector<int64_t> ids;
  nlohmann::json logits;  // [T][V]
};
Reference ReadReference(const std::string& dir) {
  std::ifstream in(dir + "/expected.json");
  std::stringstream ss;
  ss << in.rdbuf();
  const auto j = nlohmann::json::parse(ss.str());
  return {j["ids"][0].get<std::vector<int64_t>>(), j["logits"][0]};
}

// The model's logits [T, V] for one sequence.
torch::Tensor Logits(model::CausalLm& m, const std::vector<int64_t>& ids) {
  torch::NoGradGuard no_grad;
  const int64_t T = static_cast<int64_t>(ids.size());
  return m->Logits(m->Hidden(torch::tensor(ids).unsqueeze(0), torch::arange(T).unsqueeze(0),
                             torch::ones({1, T}, torch::kBool)))[0];
}

class HfCheckpointTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = ::testing::TempDir() + "grail_hf_XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl.data()));
    CommandResult r = RunCommand("/usr/bin/python3 " + std::string(GRAIL_SOURCE_DIR) +
                                 "/tests/hf_models/make_reference.py " + *dir_ + " 2>&1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    RunCommand("rm -rf " + *dir_);
    delete dir_;
  }
  static std::string* dir_;
};
std::string* HfCheckpointTest::dir_ = nullptr;

TEST_F(HfCheckpointTest, LogitsMatchThePyTorchReferenceForEveryArchitecture) {
  for (const char* name : {"llama", "llama3_rope_tied_bf16", "qwen2_sharded", "qwen3_head_dim_f16"}) {
    SCOPED_TRACE(name);
    const std::string d = *dir_ + "/" + name;
    auto model = model::LoadModelDir(d);
    ASSERT_TRUE(model.ok()) << model.status();
    const Reference ref = ReadReference(d);
    const auto logits = Logits(*model, ref.ids);
    const int64_t T = static_cast<int64_t>(ref.ids.size());
    ASSERT_EQ(logits.size(0), T);
    double worst = 0;
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t v = 0; v < logits.size(1); ++v) {
        const double w = ref.logits[t][v].get<double>();
        worst = std::max(worst, std::fabs(logits[t][v].item<double>() - w) / (1e-3 + std::fabs(w)));
      }
    }
    EXPECT_LT(worst, 1e-3) << "largest relative logit difference";
  }
}

TEST_F(HfCheckpointTest, ConfigJsonRoundTripsAndUnsupportedArchitecturesAreRefusedByName) {
  std::ifstream in(*dir_ + "/qwen3_head_dim_f16/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto c = model::ParseHfConfigJson(ss.str());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->architecture, "Qwen3ForCausalLM");
  EXPECT_TRUE(c->qk_norm);
  EXPECT_EQ(c->head_dim(), 16);
  auto again = model::ParseHfConfigJson(model::ToHfConfigJson(*c));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->head_dim(), 16);
  EXPECT_TRUE(again->qk_norm);
  auto mistral = model::ParseHfConfigJson(R"({"architectures": ["MistralForCausalLM"], "vocab_size": 8,
    "hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2})");
  EXPECT_THAT(std::string(mistral.status().message()), ::testing::HasSubstr("MistralForCausalLM is not supported"));
  auto yarn = model::ParseHfConfigJson(R"({"vocab_size": 8, "hidden_size": 8, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 2, "rope_scaling": {"rope_type": "yarn", "factor": 4}})");
  EXPECT_THAT(std::string(yarn.status().message()), ::testing::HasSubstr("rope_scaling type yarn"));
}

// `grailctl export` writes a directory that transformers can read: bf16 weights under HF
// names, sharded with an index, config with architectures and torch_dtype, tokenizer files
// alongside; it loads back and gives the reference's logits within bf16 precision.
TEST_F(HfCheckpointTest, ExportWritesAHuggingFaceDirectoryThatLoadsBack) {
  const std::string src = *dir_ + "/qwen2_sharded", out = *dir_ + "/exported", tok = *dir_ + "/tok";
  RunCommand("mkdir -p " + tok + " && echo '{\"model\": {}}' > " + tok + "/tokenizer.json && echo '{}' > " + tok +
             "/tokenizer_config.json");
  CommandResult r = RunCommand(BinDir() + "/grailctl export --dtype=bfloat16 --max_shard_bytes=20000 --tokenizer=" +
                               tok + " " + src + " " + out + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  CommandResult check = RunCommand("python3 " + std::string(GRAIL_SOURCE_DIR) + "/tests/hf_models/check_export.py " +
                                   src + " " + out + " BF16 2>&1");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_THAT(check.output, ::testing::HasSubstr("0 problems"));
  EXPECT_EQ(RunCommand("test -s " + out + "/model.safetensors.index.json && test -s " + out +
                       "/tokenizer.json && test -s " + out + "/tokenizer_config.json").exit_code, 0);
  auto model = model::LoadModelDir(out);
  ASSERT_TRUE(model.ok()) << model.status();
  const Reference ref = ReadReference(src);
  const auto logits = Logits(*model, ref.ids);
  double worst = 0, scale = 0;
  for (int64_t t = 0; t < logits.size(0); ++t) {
    for (int64_t v = 0; v < logits.size(1); ++v) {
      const double w = ref.logits[t][v].get<double>();
      scale = std::max(scale, std::fabs(w));
      worst = std::max(worst, std::fabs(logits[t][v].item<double>() - w));
    }
  }
  EXPECT_LT(worst / scale, 0.05) << "bf16 weights: largest logit difference relative to the largest logit";
  // Exporting over an existing directory is refused.
  CommandResult again = RunCommand(BinDir() + "/grailctl export " + src + " " + out + " 2>&1");
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.output, ::testing::HasSubstr("already exists"));
}

}  // namespace
}  // namespace grail::testing
