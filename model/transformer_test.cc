#include "model/transformer.h"

#include "model/cpu_kernels.h"

#include "gtest/gtest.h"

namespace grail::model {
namespace {

// Cached decoding must match a full forward pass. Both run the same float32 kernels, but on
// differently shaped matmuls, so results agree to rounding: we allow 1e-4 absolute on logits
// of magnitude ~1 (observed differences are ~1e-6).
constexpr double kTol = 1e-4;

ModelConfig SmallConfig(bool gqa, bool bias, bool tied) {
  ModelConfig c;
  c.vocab_size = 50;
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = gqa ? 2 : 4;
  c.max_position_embeddings = 64;
  c.attention_bias = bias;
  c.tie_word_embeddings = tied;
  c.value_head = true;
  return c;
}

class TransformerVariantTest : public ::testing::TestWithParam<std::tuple<bool, bool, bool>> {};

TEST_P(TransformerVariantTest, CachedDecodingMatchesFullForward) {
  auto [gqa, bias, tied] = GetParam();
  CausalLm model(SmallConfig(gqa, bias, tied));
  model->InitWeights(3);
  if (bias) {  // make biases matter
    torch::NoGradGuard g;
    for (auto& p : model->named_parameters()) {
      if (p.key().find("bias") != std::string::npos) p.value().normal_(0, 0.5);
    }
  }
  torch::NoGradGuard no_grad;
  const int64_t B = 3, T = 12;
  auto ids = torch::randint(3, 50, {B, T}, torch::kInt64);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto full = model->Logits(model->Hidden(ids, PositionsFromValid(valid), valid));

  // Prefill 5 tokens, then feed the rest one at a time.
  KVCache cache = model->NewCache(B, T);
  auto pos = PositionsFromValid(valid);
  auto pre = model->Logits(model->Hidden(ids.narrow(1, 0, 5), pos.narrow(1, 0, 5),
                                         valid.narrow(1, 0, 5), &cache));
  EXPECT_LT((pre - full.narrow(1, 0, 5)).abs().max().item<double>(), kTol);
  for (int64_t t = 5; t < T; ++t) {
    auto step = model->Logits(model->Hidden(ids.narrow(1, t, 1), pos.narrow(1, t, 1),
                                            valid.narrow(1, t, 1), &cache));
    EXPECT_LT((step.squeeze(1) - full.select(1, t)).abs().max().item<double>(), kTol) << "t=" << t;
  }
  EXPECT_EQ(cache.length, T);
  EXPECT_GT(full.abs().max().item<double>(), 1e-3);  // not trivially zero
}

INSTANTIATE_TEST_SUITE_P(All, TransformerVariantTest,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(), ::testing::Bool()));

// Packed weights (PackForInference): inference gives a plain model's logits; a weight
// written in place stops its copy serving until the model is packed again; a model that
// shares a weight with a packed one shares its copy.
TEST_P(TransformerVariantTest, PackedWeightsServeInferenceUntilAWeightChanges) {
  auto [gqa, bias, tied] = GetParam();
  CausalLm packed(SmallConfig(gqa, bias, tied)), plain(SmallConfig(gqa, bias, tied));
  packed->InitWeights(3);
  plain->InitWeights(3);
  torch::NoGradGuard no_grad;
  if (bias) {
    for (CausalLm* m : {&packed, &plain}) {
      for (auto& p : (*m)->named_parameters()) {
        if (p.key().find("bias") != std::string::npos) p.value().copy_(torch::linspace(-1, 1, p.value().numel()));
      }
    }
  }
  EXPECT_GT(packed->PackForInference(), 0);
  auto q_proj = [](CausalLm& m) { return m->named_modules()["model.layers.0.self_attn.q_proj"]->as<ProjectionImpl>(); };
  ASSERT_TRUE(q_proj(packed)->packed().FreshFor(q_proj(packed)->weight));
  auto ids = torch::randint(3, 50, {3, 9}, torch::kInt64);
  auto valid = torch::ones({3, 9}, torch::kBool);
  auto pos = PositionsFromValid(valid);
  auto logits = [&](CausalLm& m) { return m->Logits(m->Hidden(ids, pos, valid)); };
  EXPECT_LT((logits(packed) - logits(plain)).abs().max().item<double>(), 1e-5);
  // The copies do serve: a write that bypasses the version counter (.data()) leaves them
  // looking fresh, and the packed model keeps computing with the old weights.
  q_proj(packed)->weight.data().add_(1);
  q_proj(plain)->weight.add_(1);
  EXPECT_GT((logits(packed) - logits(plain)).abs().max().item<double>(), 1e-3);
  q_proj(packed)->weight.mul_(1);  // an in-place write: the copy is stale now
  EXPECT_FALSE(q_proj(packed)->packed().FreshFor(q_proj(packed)->weight));
  EXPECT_LT((logits(packed) - logits(plain)).abs().max().item<double>(), 1e-5);
  packed->PackForInference();
  EXPECT_TRUE(q_proj(packed)->packed().FreshFor(q_proj(packed)->weight));
  EXPECT_LT((logits(packed) - logits(plain)).abs().max().item<double>(), 1e-5);
  // Sharing: a third model on the packed model's q_proj weight takes its copy.
  CausalLm sharer(SmallConfig(gqa, bias, tied));
  q_proj(sharer)->weight.set_data(q_proj(packed)->weight);
  sharer->PackForInference(packed.get());
  EXPECT_EQ(q_proj(sharer)->packed().packed.get(), q_proj(packed)->packed().packed.get());
  EXPECT_NE(sharer->named_modules()["model.layers.0.self_attn.k_proj"]->as<ProjectionImpl>()->packed().packed.get(),
            packed->named_modules()["model.layers.0.self_attn.k_proj"]->as<ProjectionImpl>()->packed().packed.get());
}

TEST(TransformerTest, LeftPaddingDoesNotChangeLogits) {
  CausalLm model(SmallConfig(true, false, false));
  model->InitWeights(5);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(3, 50, {1, 6}, torch::kInt64);
  auto valid = torch::ones({1, 6}, torch::kBool);
  auto alone = model->Logits(model->Hidden(ids, PositionsFromValid(valid), valid));
  auto padded_ids = torch::cat({torch::zeros({1, 3}, torch::kInt64), ids}, 1);
  auto padded_valid = torch::cat({torch::zeros({1, 3}, torch::kBool), valid}, 1);
  auto padded = model->Logits(model->Hidden(padded_ids, PositionsFromValid(padded_valid), padded_valid));
  EXPECT_LT((padded.narrow(1, 3, 6) - alone).abs().max().item<double>(), kTol);
  EXPECT_FALSE(padded.isnan().any().item<bool>());
}

// The decoding kernel against the same attention written with LibTorch operators (repeated
// K/V, masked softmax), with masked positions inside the span and a row with none left.
TEST(TransformerTest, DecodeAttentionKernelMatchesTheOperatorForm) {
  torch::manual_seed(3);
  const int64_t B = 3, H = 6, KV = 2, D = 16, cap = 12, span = 9;
  auto q = torch::randn({B, H, D}), keys = torch::randn({B, KV, cap, D}), values = torch::randn({B, KV, cap, D});
  auto mask = torch::rand({B, cap}) > 0.3;
  mask[0][4] = false;
  mask[1].fill_(true);
  mask[2].fill_(false);  // nothing to attend to: zeros
  auto out = torch::empty({B, H, D});
  DecodeAttentionShape shape{B, H, KV, D, cap, span};
  const float scale = 0.25f;
  DecodeAttention(shape, q.data_ptr<float>(), keys.data_ptr<float>(), values.data_ptr<float>(), mask.data_ptr<bool>(),
                  cap, scale, out.data_ptr<float>(), 0, B * KV);
  auto k = keys.narrow(2, 0, span).repeat_interleave(H / KV, 1), v = values.narrow(2, 0, span).repeat_interleave(H / KV, 1);
  auto scores = torch::matmul(q.unsqueeze(2), k.transpose(-2, -1)).squeeze(2) * scale;  // [B,H,span]
  auto m = mask.narrow(1, 0, span).unsqueeze(1);
  auto probs = torch::softmax(scores.masked_fill(m.logical_not(), -INFINITY), -1);
  auto expected = torch::matmul(probs.unsqueeze(2), v).squeeze(2);
  EXPECT_TRUE(torch::allclose(out.narrow(0, 0, 2), expected.narrow(0, 0, 2), 1e-5, 1e-5))
      << (out - expected).abs().max();
  EXPECT_EQ(out[2].abs().max().item<float>(), 0.0f);
}

// Rows that read their first positions from a shared prefix compute bit for bit what they
// compute holding those positions themselves; a row without one reads only its own.
TEST(TransformerTest, DecodeAttentionReadsSharedPrefixesAsItsOwnRows) {
  torch::manual_seed(5);
  const int64_t B = 4, H = 4, KV = 2, D = 16, cap = 10, span = 8, NP = 2, pcap = 6;
  auto q = torch::randn({B, H, D}), own_keys = torch::randn({B, KV, cap, D}), own_values = torch::randn({B, KV, cap, D});
  auto prefix_keys = torch::randn({NP, KV, pcap, D}), prefix_values = torch::randn({NP, KV, pcap, D});
  auto mask = torch::ones({B, cap}, torch::kBool);
  mask[1][2] = false;
  std::vector<int64_t> index = {1, 0, -1, 1}, length = {5, 3, 0, 6};
  // The same rows with each prefix copied in, and garbage where the shared rows are not read.
  auto keys = own_keys.clone(), values = own_values.clone();
  for (int64_t b = 0; b < B; ++b) {
    if (index[b] < 0) continue;
    keys[b].narrow(1, 0, length[b]).copy_(prefix_keys[index[b]].narrow(1, 0, length[b]));
    values[b].narrow(1, 0, length[b]).copy_(prefix_values[index[b]].narrow(1, 0, length[b]));
    own_keys[b].narrow(1, 0, length[b]).fill_(1e9);
    own_values[b].narrow(1, 0, length[b]).fill_(1e9);
  }
  DecodeAttentionShape shape{B, H, KV, D, cap, span};
  auto copied = torch::empty({B, H, D}), shared = torch::empty({B, H, D});
  DecodeAttention(shape, q.data_ptr<float>(), keys.data_ptr<float>(), values.data_ptr<float>(), mask.data_ptr<bool>(),
                  cap, 0.25f, copied.data_ptr<float>(), 0, B * KV);
  DecodePrefixes prefixes{prefix_keys.data_ptr<float>(), prefix_values.data_ptr<float>(), pcap, index.data(),
                          length.data()};
  DecodeAttention(shape, q.data_ptr<float>(), own_keys.data_ptr<float>(), own_values.data_ptr<float>(),
                  mask.data_ptr<bool>(), cap, 0.25f, shared.data_ptr<float>(), 0, B * KV, &prefixes);
  EXPECT_TRUE(torch::equal(shared, copied)) << (shared - copied).abs().max();
}

// Only the CPU decoding kernel reads shared prefixes: the operator form (here with a
// gradient recorded) refuses a cache that has them rather than read the rows' own entries.
TEST(TransformerTest, SharedPrefixesOutsideTheDecodingKernelAreRefused) {
  CausalLm model(SmallConfig(/*gqa=*/true, /*bias=*/false, /*tied=*/false));
  model->InitWeights(1);
  KVCache cache = model->NewCache(2, 8);
  const auto& k = cache.keys.front();
  for (size_t l = 0; l < cache.keys.size(); ++l) {
    cache.prefix_keys.push_back(torch::zeros({1, k.size(1), 4, k.size(3)}));
    cache.prefix_values.push_back(torch::zeros({1, k.size(1), 4, k.size(3)}));
  }
  cache.prefix_of = {0, -1};
  cache.prefix_length = {3, 0};
  auto tokens = torch::tensor({5, 6}), positions = torch::tensor({3, 0}), at = torch::tensor({3, 0});
  {
    torch::NoGradGuard no_grad;
    EXPECT_NO_THROW(model->DecodeHidden(tokens, positions, at, &cache));
  }
  EXPECT_THROW(model->DecodeHidden(tokens, positions, at, &cache), c10::Error);
}

// The elementwise inference kernels against their operator forms (the training path).
TEST(TransformerTest, NormAndRopeKernelsMatchTheOperatorForms) {
  torch::manual_seed(4);
  auto x = torch::randn({5, 3, 32}), w = torch::randn({32});
  auto out = torch::empty_like(x);
  RmsNorm(x.data_ptr<float>(), w.data_ptr<float>(), 15, 32, 1e-6f, out.data_ptr<float>());
  auto expected = x * torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * w;
  EXPECT_TRUE(torch::allclose(out, expected, 1e-5, 1e-6)) << (out - expected).abs().max();

  auto q = torch::randn({2, 3, 4, 16}), angles = torch::randn({2, 3, 8});  // [B,T,H,D], [B,T,D/2]
  auto emb = torch::cat({angles, angles}, -1);
  auto cos = emb.cos(), sin = emb.sin();
  auto rotated = q.clone();
  Rope(rotated.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), 6, 4, 16);
  auto half = torch::cat({-q.narrow(-1, 8, 8), q.narrow(-1, 0, 8)}, -1);
  auto want = q * cos.unsqueeze(2) + half * sin.unsqueeze(2);
  EXPECT_TRUE(torch::allclose(rotated, want, 1e-5, 1e-6)) << (rotated - want).abs().max();
}

// Inference (kernels) and training (operators) forwards of the same model agree.
TEST(TransformerTest, InferenceAndTrainingForwardsAgree) {
  ModelConfig c;
  c.qk_norm = true;  // the per-head norm takes the kernel too
  CausalLm m(c);
  m->InitWeights(8);
  auto ids = torch::randint(0, c.vocab_size, {2, 9});
  auto valid = torch::ones({2, 9}, torch::kBool);
  auto positions = PositionsFromValid(valid);
  auto trained = m->Logits(m->Hidden(ids, positions, valid)).detach();
  torch::NoGradGuard no_grad;
  auto inferred = m->Logits(m->Hidden(ids, positions, valid));
  EXPECT_TRUE(torch::allclose(inferred, trained, 1e-5, 1e-5)) << (inferred - trained).abs().max();
}

TEST(TransformerTest, ParameterNamesFollowHf) {
  CausalLm model(SmallConfig(true, true, false));
  auto params = model->named_parameters();
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
        "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.bias",
        "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.post_attention_layernorm.weight", "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
        "model.norm.weight", "lm_head.weight", "score.weight"}) {
    EXPECT_TRUE(params.contains(name)) << name;
  }
  EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].size(0), 2 * 8);  // 2 kv heads
  CausalLm tied(SmallConfig(false, false, true));
  EXPECT_FALSE(tied->named_parameters().contains("lm_head.weight"));
}

TEST(TransformerTest, InitIsSeeded) {
  CausalLm a(SmallConfig(false, false, false)), b(SmallConfig(false, false, false));
  a->InitWeights(11);
  b->InitWeights(11);
  auto pa = a->parameters(), pb = b->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i]));
  b->InitWeights(12);
  EXPECT_FALSE(torch::equal(a->parameters()[0], b->parameters()[0]));
}

TEST(TransformerTest, ValueHeadAndLogProbs) {
  CausalLm model(SmallConfig(false, false, false));
  auto ids = torch::randint(3, 50, {2, 7}, torch::kInt64);
  auto valid = torch::ones({2, 7}, torch::kBool);
  auto h = model->Hidden(ids, PositionsFromValid(valid), valid);
  EXPECT_EQ(model->Values(h).sizes(), (std::vector<int64_t>{2, 7}));
  auto lp = TokenLogProbs(model->Logits(h).narrow(1, 0, 6), ids.narrow(1, 1, 6));
  EXPECT_EQ(lp.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_TRUE((lp <= 0).all().item<bool>());
  // Gradients flow to every parameter.
  (lp.sum() + model->Values(h).sum()).backward();
  for (const auto& p : model->named_parameters()) {
    EXPECT_TRUE(p.value().grad().defined()) << p.key();
  }
}

}  // namespace
}  // namespace grail::model

namespace grail::model {
namespace {

ModelConfig LoraConfigFor(const std::vector<std::string>& targets, bool rslora) {
  ModelConfig c = SmallConfig(/*gqa=*/true, /*bias=*/true, /*tied=*/false);
  c.value_head = false;
  c.lora.r = 4;
  c.lora.alpha = 8;
  c.lora.use_rslora = rslora;
  c.lora.targets = targets;
  return c;
}

torch::Tensor LogitsOf(CausalLm& m, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  auto valid = torch::ones(ids.sizes(), torch::kBool);
  return m->Logits(m->Hidden(ids, PositionsFromValid(valid), valid));
}

// Adapters are named as the PEFT library names them, leave every other parameter as a model
// without them initialises it, and a fresh adapter (B zero) changes no logit, bit for bit.
TEST(LoraTest, AFreshAdapterChangesNothing) {
  const ModelConfig with = LoraConfigFor({"q", "v", "down"}, false);
  ModelConfig without = with;
  without.lora = LoraConfig{};
  CausalLm adapted(with), plain(without);
  adapted->InitWeights(5);
  plain->InitWeights(5);
  auto params = adapted->named_parameters();
  int adapters = 0;
  for (const auto& item : plain->named_parameters()) {
    ASSERT_NE(params.find(item.key()), nullptr) << item.key();
    EXPECT_TRUE(torch::equal(*params.find(item.key()), item.value())) << item.key();
  }
  for (const auto& item : params) {
    if (item.key().find("lora_") == std::string::npos) continue;
    ++adapters;
    if (item.key().find("lora_B") != std::string::npos) EXPECT_EQ(item.value().abs().max().item<float>(), 0.0f);
  }
  EXPECT_EQ(adapters, 2 * 3 * 2);  // A and B, three projections, two layers
  ASSERT_NE(params.find("model.layers.0.self_attn.q_proj.lora_A.weight"), nullptr);
  EXPECT_EQ(params.find("model.layers.1.mlp.down_proj.lora_B.weight")->sizes(), (std::vector<int64_t>{32, 4}));
  auto ids = torch::randint(3, 50, {2, 9}, torch::kInt64);
  EXPECT_TRUE(torch::equal(LogitsOf(adapted, ids), LogitsOf(plain, ids)));
}

// The unmerged forward (x W + s (x A) B) agrees with a model whose weights have the adapter
// merged in (W + s B A) to 1e-5, with alpha / r and with rsLoRA's alpha / sqrt(r); with the
// adapters off the model is its base.
TEST(LoraTest, MergedAndUnmergedForwardsAgree) {
  for (bool rslora : {false, true}) {
    const ModelConfig c = LoraConfigFor({"q", "k", "v", "o", "gate", "up", "down"}, rslora);
    EXPECT_DOUBLE_EQ(c.lora.scale(), rslora ? 8 / 2.0 : 8 / 4.0);
    CausalLm adapted(c);
    adapted->InitWeights(7);
    {
      torch::NoGradGuard no_grad;
      for (auto& item : adapted->named_parameters()) {
        if (item.key().find("lora_B") != std::string::npos) item.value().normal_(0, 0.05);
      }
    }
    ModelConfig base_config = c;
    base_config.lora = LoraConfig{};
    CausalLm merged(base_config), base(base_config);
    {
      torch::NoGradGuard no_grad;
      auto target = merged->named_parameters();
      auto plain = base->named_parameters();
      for (auto& item : adapted->named_parameters()) {
        if (item.key().find("lora_") != std::string::npos) continue;
        target.find(item.key())->copy_(item.value());
        plain.find(item.key())->copy_(item.value());
      }
      for (const auto& named : adapted->named_modules()) {
        auto* p = named.value()->as<ProjectionImpl>();
        if (p == nullptr) continue;
        ASSERT_TRUE(p->has_adapter()) << named.key();
        target.find(named.key() + ".weight")->copy_(p->MergedWeight());
      }
    }
    auto ids = torch::randint(3, 50, {3, 11}, torch::kInt64);
    const auto unmerged = LogitsOf(adapted, ids);
    EXPECT_LT((unmerged - LogitsOf(merged, ids)).abs().max().item<double>(), 1e-5) << rslora;
    EXPECT_GT((unmerged - LogitsOf(base, ids)).abs().max().item<double>(), 1e-3) << "the adapter must matter";
    adapted->SetAdaptersEnabled(false);
    EXPECT_TRUE(torch::equal(LogitsOf(adapted, ids), LogitsOf(base, ids)));
  }
}

TEST(LoraTest, ConfigJsonKeepsTheAdapterSettings) {
  ModelConfig c = LoraConfigFor({"q", "up"}, true);
  c.lora.dropout = 0.1;
  auto parsed = ParseHfConfigJson(ToHfConfigJson(c));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->lora.r, 4);
  EXPECT_EQ(parsed->lora.alpha, 8);
  EXPECT_EQ(parsed->lora.dropout, 0.1);
  EXPECT_TRUE(parsed->lora.use_rslora);
  EXPECT_EQ(parsed->lora.targets, (std::vector<std::string>{"q", "up"}));
  c.lora.targets = {"qkv"};
  EXPECT_NE(c.Validate().message().find("lora.target_modules"), std::string::npos);
  ModelConfig none;
  EXPECT_EQ(ToHfConfigJson(none).find("grail_lora"), std::string::npos);
}

}  // namespace
}  // namespace grail::model

namespace grail::model {
namespace {

// NF4: every level times the block's absmax comes back exactly; normal weights come back
// within a small error (the levels are normal quantiles); double quantisation of the scales
// adds little; rows and the fused linear agree with the dequantised matrix.
TEST(Nf4Test, QuantisesBlockwiseAndDequantisesConsistently) {
  const auto& levels = Nf4Levels();
  ASSERT_EQ(levels.size(), 16u);
  std::vector<float> exact;
  for (int b = 0; b < 4; ++b) {
    for (int i = 0; i < 64; ++i) exact.push_back(levels[(i + b) % 16] * static_cast<float>(b + 1) * 0.5f);
  }
  auto e = torch::tensor(exact).reshape({4, 64});
  EXPECT_TRUE(torch::equal(DequantizeNf4(QuantizeNf4(e, false)), e));

  torch::manual_seed(3);
  auto w = torch::randn({96, 128}) * 0.02;
  const auto single = QuantizeNf4(w, false), dbl = QuantizeNf4(w, true);
  const auto w1 = DequantizeNf4(single), w2 = DequantizeNf4(dbl);
  const double rms = w.pow(2).mean().sqrt().item<double>();
  const double err1 = (w1 - w).pow(2).mean().sqrt().item<double>() / rms;
  const double err2 = (w2 - w).pow(2).mean().sqrt().item<double>() / rms;
  std::cout << "nf4 relative rms error " << err1 << " (double quantisation " << err2 << "), bytes "
            << single.ResidentBytes() << " / " << dbl.ResidentBytes() << " of " << w.numel() * 4 << std::endl;
  EXPECT_LT(err1, 0.12);
  EXPECT_LT(err2, err1 * 1.05);
  EXPECT_LT(static_cast<double>(dbl.ResidentBytes()) / (w.numel() * 4), 0.135);
  auto ids = torch::tensor({5, 0, 95, 5}, torch::kInt64).reshape({2, 2});
  EXPECT_TRUE(torch::equal(Nf4Rows(dbl, ids), w2.index_select(0, ids.reshape({-1})).reshape({2, 2, 128})));
  auto x = torch::randn({3, 7, 128});
  EXPECT_TRUE(torch::equal(Nf4Linear(x, dbl), torch::nn::functional::linear(x, w2)));
}

// QLoRA: a LoRA model whose frozen base is stored in NF4 computes exactly what an ordinary
// model holding the dequantised base computes (what actors and the reference receive), holds
// its base in under 0.16 of the float32 bytes, and stays close to the unquantised model.
TEST(Nf4Test, AQuantisedBaseServesItsDequantisedWeightsExactly) {
  ModelConfig c;
  c.vocab_size = 128;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.lora.r = 4;
  CausalLm q(c), plain(c);
  q->InitWeights(9);
  plain->InitWeights(9);
  for (auto& item : q->named_parameters()) item.value().set_requires_grad(item.key().find("lora_") != std::string::npos);
  int64_t fp32 = 0;
  for (const auto& p : q->parameters()) fp32 += p.requires_grad() ? 0 : p.numel() * 4;
  ASSERT_EQ(q->FrozenResidentBytes(), fp32);
  q->QuantizeFrozen(/*double_quant=*/true);
  const double ratio = static_cast<double>(q->FrozenResidentBytes()) / fp32;
  std::cout << "qlora base: " << q->FrozenResidentBytes() << " bytes resident, float32 " << fp32 << " (" << ratio
            << ")" << std::endl;
  EXPECT_LT(ratio, 0.16);
  CausalLm served(c);
  {
    torch::NoGradGuard no_grad;
    auto target = served->named_parameters();
    for (const auto& [name, value] : q->ExportedParameters()) {
      ASSERT_EQ(target.find(name)->sizes(), value.sizes()) << name;
      target.find(name)->copy_(value);
    }
  }
  auto ids = torch::randint(3, 128, {2, 12}, torch::kInt64);
  auto lq = LogitsOf(q, ids), ls = LogitsOf(served, ids), lp = LogitsOf(plain, ids);
  EXPECT_TRUE(torch::equal(lq, ls));
  const auto logp = [](const torch::Tensor& l) { return torch::log_softmax(l, -1); };
  const double drift = (logp(lq) - logp(lp)).abs().mean().item<double>();
  std::cout << "qlora: mean |log-prob change| from quantising the base " << drift << std::endl;
  EXPECT_LT(drift, 0.05);
  EXPECT_GT(drift, 0.0);
}

// Two sequences packed in one row, with positions restarting and segment ids apart, give
// each sequence's hidden states as a forward pass of it alone does; the padding after them
// (a segment of its own) changes nothing either.
TEST(TransformerTest, PackedRowsMatchSeparateSequences) {
  CausalLm m(SmallConfig(/*gqa=*/true, /*bias=*/false, /*tied=*/false));
  m->InitWeights(3);
  torch::NoGradGuard no_grad;
  auto a = torch::randint(0, 50, {1, 7}), b = torch::randint(0, 50, {1, 5});
  auto alone = [&](const torch::Tensor& ids) {
    auto valid = torch::ones(ids.sizes(), torch::kBool);
    return m->Hidden(ids, PositionsFromValid(valid), valid);
  };
  auto ids = torch::cat({a, b, torch::zeros({1, 3}, torch::kInt64)}, 1);
  auto segments = torch::tensor({0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2}, torch::kInt64).unsqueeze(0);
  auto positions = PositionsFromSegments(segments);
  EXPECT_TRUE(torch::equal(positions, torch::tensor({0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 0, 1, 2}).unsqueeze(0)));
  auto packed = m->Hidden(ids, positions, torch::ones(ids.sizes(), torch::kBool), nullptr, segments);
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 0, 7), alone(a), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(packed.narrow(1, 7, 5), alone(b), 1e-5, 1e-5));
  // Without the segment ids, b would attend to a: the test can tell.
  auto unpacked = m->Hidden(ids, positions, torch::ones(ids.sizes(), torch::kBool));
  EXPECT_FALSE(torch::allclose(unpacked.narrow(1, 7, 5), alone(b), 1e-3, 1e-3));
}

// Recomputed layers give the same loss and the same gradient for every parameter, adapters
// with dropout included (the recomputation replays the dropout masks).
TEST(TransformerTest, GradientCheckpointingGivesTheSameGradients) {
  ModelConfig c = LoraConfigFor({"q", "v", "up"}, false);
  c.lora.dropout = 0.3;
  CausalLm m(c);
  m->InitWeights(4);
  m->InitAdapters(5);
  for (auto& item : m->named_parameters()) {  // adapters and norms train, as with LoRA plus norms
    const bool trains = item.key().find("lora_") != std::string::npos || item.key().find("norm") != std::string::npos;
    item.value().set_requires_grad(trains);
    if (item.key().find("lora_B") != std::string::npos) {
      torch::NoGradGuard no_grad;
      item.value().normal_(0, 0.1);  // a trained adapter: B nonzero, so A gets gradients
    }
  }
  m->train();
  auto ids = torch::randint(0, 50, {3, 11});
  auto valid = torch::ones(ids.sizes(), torch::kBool);
  auto gradients = [&](bool checkpointing, uint64_t seed) {
    m->SetGradientCheckpointing(checkpointing);
    m->zero_grad();
    torch::manual_seed(seed);
    auto loss = m->Logits(m->Hidden(ids, PositionsFromValid(valid), valid)).pow(2).mean();
    loss.backward();
    std::vector<torch::Tensor> out{loss.detach()};
    for (auto& p : m->parameters()) {
      if (p.requires_grad()) out.push_back(p.grad().clone());
    }
    return out;
  };
  auto worst = [](const std::vector<torch::Tensor>& x, const std::vector<torch::Tensor>& y) {
    double w = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      w = std::max(w, ((x[i] - y[i]).abs() / (y[i].abs() + 1e-3)).max().item<double>());
    }
    return w;
  };
  const auto plain = gradients(false, 42), recomputed = gradients(true, 42);
  ASSERT_EQ(plain.size(), recomputed.size());
  ASSERT_GT(plain.size(), 10u);
  EXPECT_LT(worst(recomputed, plain), 1e-4);
  // Another dropout draw gives other gradients: matching them needs the replay.
  EXPECT_GT(worst(gradients(false, 43), plain), 1e-2);
}

}  // namespace
}  // namespace grail::model
