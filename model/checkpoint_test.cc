#include "model/checkpoint.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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
  ModelConfig c = Config();
  c.value_head = false;
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
  // Without --merge: the adapters alone, as the PEFT library writes them.
  ASSERT_TRUE(ExportHfDir(dir + "/ckpt", dir + "/peft", HfExportOptions{}).ok());
  auto adapter_file = SafetensorsFile::Read(dir + "/peft/adapter_model.safetensors");
  ASSERT_TRUE(adapter_file.ok()) << adapter_file.status();
  EXPECT_EQ(adapter_file->tensors().size(), 2u * 4 * 2);  // A and B, four projections, two layers
  EXPECT_EQ(adapter_file->tensors().count("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"), 1u);
  auto peft = ReadPeftAdapterDir(dir + "/peft");
  ASSERT_TRUE(peft.ok()) << peft.status();
  EXPECT_EQ(peft->lora.r, 4);
  EXPECT_EQ(peft->lora.alpha, 8);
  EXPECT_EQ(peft->lora.targets, (std::vector<std::string>{"q", "v", "up", "down"}));
  for (const auto& [name, t] : peft->tensors) {
    ASSERT_NE(original.find(name), nullptr) << name;
    auto back = torch::from_blob(const_cast<char*>(t.second.data()), t.first, torch::kFloat32);
    EXPECT_TRUE(torch::equal(*original.find(name), back)) << name;
  }
  std::ifstream config_in(dir + "/peft/adapter_config.json");
  const std::string config_text((std::istreambuf_iterator<char>(config_in)), std::istreambuf_iterator<char>());
  for (const char* key : {"\"peft_type\": \"LORA\"", "\"lora_alpha\"", "\"target_modules\"", "\"q_proj\"",
                          "\"task_type\": \"CAUSAL_LM\""}) {
    EXPECT_NE(config_text.find(key), std::string::npos) << key;
  }
  HfExportOptions merge;
  merge.merge_adapters = true;
  ASSERT_TRUE(ExportHfDir(dir + "/ckpt", dir + "/hf", merge).ok());
  auto exported = LoadModelDir(dir + "/hf");
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_FALSE((*exported)->config().lora.enabled());
  for (const auto& item : (*exported)->named_parameters()) EXPECT_EQ(item.key().find("lora_"), std::string::npos);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, 30, {2, 10}, torch::kInt64);
  auto valid = torch::ones({2, 10}, torch::kBool);
  auto pos = PositionsFromValid(valid);
  auto want = m->Logits(m->Hidden(ids, pos, valid));
  auto got = (*exported)->Logits((*exported)->Hidden(ids, pos, valid));
  EXPECT_LT((want - got).abs().max().item<double>(), 1e-5);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace grail::model

#include "model/versioned_model.h"

namespace grail::model {
namespace {

// A LoRA model's parts: the frozen part alone serves nothing; each trainable part becomes a
// model whose frozen parameters are the one resident copy (shared storage, never copied),
// with exactly the sender's weights; a trainable part for another frozen part is refused.
TEST(VersionedModelTest, TrainablePartsShareOneFrozenPart) {
  ModelConfig c = Config();
  c.value_head = false;
  c.lora.r = 2;
  c.lora.targets = {"q", "v"};
  CausalLm sender(c);
  sender->InitWeights(4);
  for (auto& item : sender->named_parameters()) {
    item.value().set_requires_grad(item.key().find("lora_") != std::string::npos);
  }
  auto digest = FrozenPartDigest(sender);
  ASSERT_TRUE(digest.ok());
  VersionedModel served;
  auto trainable = [&]() { return *ModelPartToSafetensors(sender, WeightsPart::kTrainable, *digest); };
  absl::Status early = served.Load(trainable(), 1);
  EXPECT_EQ(early.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(served.Load(*ModelPartToSafetensors(sender, WeightsPart::kFrozen, *digest), 1).ok());
  EXPECT_EQ(served.Get().version, -1);
  const void* base_data = nullptr;
  for (int v = 1; v <= 3; ++v) {
    {
      torch::NoGradGuard no_grad;
      for (auto& item : sender->named_parameters()) {
        if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.1);
      }
    }
    ASSERT_TRUE(served.Load(trainable(), v).ok()) << v;
    auto snap = served.Get();
    EXPECT_EQ(snap.version, v);
    ExpectSameParameters(*snap.model, sender);
    const void* data = (*snap.model)->named_parameters()["model.embed_tokens.weight"].data_ptr();
    if (base_data == nullptr) base_data = data;
    EXPECT_EQ(data, base_data) << "version " << v << " copied the frozen part";
  }
  EXPECT_EQ(served.frozen_digest(), *digest);
  std::string other = std::string(*digest);
  other[0] = other[0] == '0' ? '1' : '0';
  absl::Status refused = served.Load(*ModelPartToSafetensors(sender, WeightsPart::kTrainable, other), 4);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(served.Get().version, 3);
}

// An actor's VersionedModel packs each version it stages, including one staged into the
// retired model (its copies went stale when the parameters were overwritten), and serves
// what a plain model of the same weights computes.
TEST(VersionedModelTest, PackedVersionsServeTheirOwnWeights) {
  ModelConfig c = Config();
  CausalLm sender(c);
  VersionedModel served(/*pack_for_inference=*/true);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, 30, {2, 7}, torch::kInt64);
  auto valid = torch::ones({2, 7}, torch::kBool);
  auto pos = PositionsFromValid(valid);
  for (int v = 1; v <= 3; ++v) {
    sender->InitWeights(10 + v);
    auto blob = ModelToSafetensors(sender);
    ASSERT_TRUE(blob.ok());
    ASSERT_TRUE(served.Load(*blob, v).ok()) << v;
    CausalLm& model = *served.Get().model;
    auto* q = model->named_modules()["model.layers.0.self_attn.q_proj"]->as<ProjectionImpl>();
    EXPECT_TRUE(q->packed().FreshFor(q->weight)) << "version " << v;
    auto got = model->Logits(model->Hidden(ids, pos, valid));
    auto want = sender->Logits(sender->Hidden(ids, pos, valid));
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << "version " << v;
  }
}

}  // namespace
}  // namespace grail::model
