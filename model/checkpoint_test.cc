#include "model/checkpoint.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/hf_export.h"

namespace grail::model {
namespace {

std::string TempDir() {
  std::string tmpl = ::testing::TempDir() + "grail_ckpt_XXXXXX";
  return std::string(mkdtemp(tmpl.data()));
}

ModelConfig Config() {
  ModelConfig c;
  c.vocab_size = 30;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.attention_bias = true;
  c.value_head = true;
  return c;
}

void ExpectSameParameters(CausalLm& a, CausalLm& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    ASSERT_TRUE(pb.contains(item.key())) << item.key();
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
  }
}

TEST(CheckpointTest, DirectoryRoundTripIsBitExact) {
  CausalLm model(Config());
  model->InitWeights(21);
  const std::string dir = TempDir();
  ASSERT_TRUE(SaveModelDir(model, dir).ok());
  auto loaded = LoadModelDir(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->get()->config().value_head);
  ExpectSameParameters(model, *loaded);
  // Saving the loaded model reproduces the same file byte for byte.
  const std::string dir2 = TempDir();
  ASSERT_TRUE(SaveModelDir(*loaded, dir2).ok());
  EXPECT_EQ(*ReadFileToString(dir + "/model.safetensors"), *ReadFileToString(dir2 + "/model.safetensors"));
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(dir2);
}

TEST(CheckpointTest, BlobCarriesItsConfig) {
  CausalLm model(Config());
  model->InitWeights(5);
  auto blob = ModelToSafetensors(model);
  ASSERT_TRUE(blob.ok());
  auto file = SafetensorsFile::Parse(*blob);
  ASSERT_TRUE(file.ok());
  auto rebuilt = ModelFromSafetensors(*file);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
  ExpectSameParameters(model, *rebuilt);
}

TEST(CheckpointTest, MismatchedWeightsAreClearErrors) {
  CausalLm model(Config());
  auto file = SafetensorsFile::Parse(*ModelToSafetensors(model));
  ModelConfig other = Config();
  other.hidden_size = 64;
  CausalLm bigger(other);
  auto status = LoadParameters(*file, bigger);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("has shape"));

  other = Config();
  other.value_head = false;
  CausalLm no_head(other);
  EXPECT_THAT(std::string(LoadParameters(*file, no_head).message()),
              ::testing::HasSubstr("unexpected tensor score.weight"));

  auto missing = SerializeSafetensors({{"model.norm.weight", {"F32", {32}, std::string(128, 0)}}});
  EXPECT_THAT(std::string(LoadParameters(*SafetensorsFile::Parse(*missing), model).message()),
              ::testing::HasSubstr("missing tensor"));
}

TEST(CheckpointTest, LoadsBf16Weights) {
  CausalLm model(Config());
  model->InitWeights(8);
  std::map<std::string, SafetensorsTensor> tensors;
  std::vector<torch::Tensor> keep;
  for (const auto& item : model->named_parameters()) {
    keep.push_back(item.value().detach().to(torch::kBFloat16).contiguous());
    tensors[item.key()] = {"BF16", keep.back().sizes().vec(),
                           absl::string_view(static_cast<const char*>(keep.back().data_ptr()),
                                             keep.back().nbytes())};
  }
  auto file = SafetensorsFile::Parse(*SerializeSafetensors(tensors));
  CausalLm target(Config());
  ASSERT_TRUE(LoadParameters(*file, target).ok());
  auto w = target->named_parameters()["model.layers.0.mlp.up_proj.weight"];
  auto ref = model->named_parameters()["model.layers.0.mlp.up_proj.weight"];
  EXPECT_LT((w - ref).abs().max().item<float>(), 1e-3);
}

TEST(CheckpointTest, MissingDirectoryIsNotFound) {
  EXPECT_EQ(LoadModelDir("/nonexistent/ckpt").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace grail::model

namespace grail::model {
namespace {

// A LoRA checkpoint saves its adapters under PEFT's names and reloads bit for bit; exported
// to a Hugging Face directory, the adapters are merged into their projections (W + s B A)
// and the exported model computes what the adapted one does, to 1e-5.
TEST(LoraCheckpointTest, SavesReloadsAndExportsMerged) {
  ModelConfig c;
  c.vocab_size = 40;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.lora.r = 4;
  c.lora.alpha = 8;
  c.lora.targets = {"q", "v", "up", "down"};
  CausalLm m(c);
  m->InitWeights(3);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : m->named_parameters()) {
      if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.05);
    }
  }
  const std::string dir = TempDir();
  ASSERT_TRUE(SaveModelDir(m, dir + "/ckpt").ok());
  auto reloaded = LoadModelDir(dir + "/ckpt");
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  auto original = m->named_parameters();
  for (const auto& item : (*reloaded)->named_parameters()) {
    ASSERT_NE(original.find(item.key()), nullptr) << item.key();
    EXPECT_TRUE(torch::equal(*original.find(item.key()), item.value())) << item.key();
  }
  ASSERT_TRUE(ExportHfDir(dir + "/ckpt", dir + "/hf", HfExportOptions{}).ok());
  auto exported = LoadModelDir(dir + "/hf");
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_FALSE((*exported)->config().lora.enabled());
  for (const auto& item : (*exported)->named_parameters()) EXPECT_EQ(item.key().find("lora_"), std::string::npos);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, 40, {2, 10}, torch::kInt64);
  auto valid = torch::ones({2, 10}, torch::kBool);
  auto pos = PositionsFromValid(valid);
  auto want = m->Logits(m->Hidden(ids, pos, valid));
  auto got = (*exported)->Logits((*exported)->Hidden(ids, pos, valid));
  EXPECT_LT((want - got).abs().max().item<double>(), 1e-5);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace grail::model
