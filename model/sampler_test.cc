#include "model/sampler.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::model {
namespace {

CausalLm TinyModel() {
  ModelConfig c;
  c.vocab_size = 20;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 40;
  CausalLm model(c);
  model->InitWeights(7);
  {
    // Larger weights than the default init give peaked, varied distributions.
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) {
      if (p.dim() == 2) p.mul_(20);
    }
  }
  return model;
}

const std::vector<std::vector<int>> kPrompts = {{3, 4, 5}, {6, 7}, {8, 9, 10, 11, 12}};

// The log-probs a generation reported equal those of one full forward pass over prompt +
// response at the same temperature (within 1e-4).
void ExpectLogProbsMatchFullForward(CausalLm& model, const std::vector<int>& prompt,
                                    const GenerationResult& result, double temperature,
                                    const std::string& where) {
  torch::NoGradGuard no_grad;
  std::vector<int64_t> seq(prompt.begin(), prompt.end());
  seq.insert(seq.end(), result.tokens.begin(), result.tokens.end());
  auto ids = torch::tensor(seq).unsqueeze(0);
  auto valid = torch::ones_like(ids, torch::kBool);
  auto logits = model->Logits(model->Hidden(ids, PositionsFromValid(valid), valid)) / temperature;
  const int64_t P = prompt.size(), R = result.tokens.size();
  auto lp = TokenLogProbs(logits.narrow(1, P - 1, R), ids.narrow(1, P, R)).squeeze(0);
  for (int64_t t = 0; t < R; ++t) {
    EXPECT_NEAR(lp[t].item<float>(), result.log_probs[t], 1e-4) << where << " t " << t;
  }
}

TEST(SamplerTest, FixedSeedIsReproducible) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  o.max_new_tokens = 10;
  o.seed = 42;
  auto a = Generate(model, kPrompts, o);
  auto b = Generate(model, kPrompts, o);
  ASSERT_TRUE(a.ok() && b.ok());
  bool any_differs = false;
  o.seed = 43;
  auto c = Generate(model, kPrompts, o);
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens);
    EXPECT_EQ((*a)[i].log_probs, (*b)[i].log_probs);
    EXPECT_EQ((*a)[i].tokens.size(), 10u);
    any_differs |= (*a)[i].tokens != (*c)[i].tokens;
  }
  EXPECT_TRUE(any_differs) << "different seeds gave identical samples";
}

TEST(SamplerTest, LogProbsMatchAFullForwardPass) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  o.max_new_tokens = 8;
  o.temperature = 0.7f;
  o.seed = 1;
  auto out = Generate(model, kPrompts, o);
  ASSERT_TRUE(out.ok());
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    ExpectLogProbsMatchFullForward(model, kPrompts[i], (*out)[i], 0.7, "row " + std::to_string(i));
  }
}

TEST(SamplerTest, SampledLogProbsMatchAFullForwardPassUnderContinuousBatching) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  o.max_new_tokens = 9;
  o.seed = 4;
  auto first = Generate(model, {{3}}, o);
  o.stop_token_ids = {(*first)[0].tokens[1]};  // some rows stop early, freeing their slots
  // 3 prompts x 3 samples through 2 slots.
  auto out = GenerateGroups(model, kPrompts, 3, o, /*max_batch_rows=*/2);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 9u);
  for (size_t r = 0; r < out->size(); ++r) {
    ExpectLogProbsMatchFullForward(model, kPrompts[r / 3], (*out)[r], 1.0, "row " + std::to_string(r));
  }
}

// The samples of a prompt reading one copy of its keys and values give what each slot's own
// copy gives, bit for bit: under continuous batching through few slots (prefix store
// entries are freed and taken again), with rows stopping early, and with a prompt-tuned model
// (whose prefixes start with the virtual tokens).
TEST(SamplerTest, SharedPromptPrefixesGiveWhatCopiedOnesGive) {
  for (int virtual_tokens : {0, 3}) {
    CausalLm model = TinyModel();
    if (virtual_tokens > 0) {
      ModelConfig c = model->config();
      c.num_virtual_tokens = virtual_tokens;
      model = CausalLm(c);
      model->InitWeights(9);
    }
    SamplingOptions o;
    o.max_new_tokens = 9;
    o.seed = 5;
    auto first = Generate(model, {{3}}, o);
    ASSERT_TRUE(first.ok()) << first.status();
    o.stop_token_ids = {(*first)[0].tokens[1]};
    for (int slots : {1, 2, 5, 64}) {
      SamplingOptions copy = o;
      copy.share_prefixes = false;
      GenerationStats stats;
      auto shared = GenerateGroups(model, kPrompts, 4, o, slots, &stats);
      auto copied = GenerateGroups(model, kPrompts, 4, copy, slots);
      ASSERT_TRUE(shared.ok() && copied.ok()) << shared.status() << copied.status();
      ASSERT_EQ(shared->size(), 12u);
      for (size_t r = 0; r < shared->size(); ++r) {
        const std::string where = absl::StrCat("virtual ", virtual_tokens, ", slots ", slots, ", row ", r);
        EXPECT_EQ((*shared)[r].tokens, (*copied)[r].tokens) << where;
        EXPECT_EQ((*shared)[r].log_probs, (*copied)[r].log_probs) << where;
        EXPECT_EQ((*shared)[r].finish, (*copied)[r].finish) << where;
      }
    }
  }
}

// The actor decodes with packed weights (PackForInference); what it reports must still be
// the log-probs of a full forward pass with the weights as the learner holds them.
TEST(SamplerTest, PackedWeightsReportTheLogProbsOfAPlainFullForwardPass) {
  CausalLm packed = TinyModel(), plain = TinyModel();
  ASSERT_GT(packed->PackForInference(), 0);
  SamplingOptions o;
  o.max_new_tokens = 9;
  o.seed = 4;
  auto out = GenerateGroups(packed, kPrompts, 3, o, /*max_batch_rows=*/4);
  ASSERT_TRUE(out.ok()) << out.status();
  for (size_t r = 0; r < out->size(); ++r) {
    ExpectLogProbsMatchFullForward(plain, kPrompts[r / 3], (*out)[r], 1.0, "row " + std::to_string(r));
  }
  o.temperature = 0;
  auto wide = GenerateGroups(packed, kPrompts, 2, o, 256);
  auto narrow = GenerateGroups(packed, kPrompts, 2, o, 1);
  ASSERT_TRUE(wide.ok() && narrow.ok());
  for (size_t r = 0; r < wide->size(); ++r) {
    EXPECT_EQ((*wide)[r].tokens, (*narrow)[r].tokens) << "row " << r;
    for (size_t t = 0; t < (*wide)[r].log_probs.size(); ++t) {
      EXPECT_NEAR((*wide)[r].log_probs[t], (*narrow)[r].log_probs[t], 1e-5) << "row " << r;
    }
  }
}

TEST(SamplerTest, SlotCountDoesNotChangeGreedyOutput) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 10;
  auto probe = Generate(model, kPrompts, o);
  o.stop_token_ids = {(*probe)[1].tokens[3]};
  auto wide = GenerateGroups(model, kPrompts, 2, o, 256);
  auto narrow = GenerateGroups(model, kPrompts, 2, o, 1);
  ASSERT_TRUE(wide.ok() && narrow.ok());
  for (size_t r = 0; r < wide->size(); ++r) {
    EXPECT_EQ((*wide)[r].tokens, (*narrow)[r].tokens) << "row " << r;
    EXPECT_EQ((*wide)[r].finish, (*narrow)[r].finish);
    for (size_t t = 0; t < (*wide)[r].log_probs.size(); ++t) {
      EXPECT_NEAR((*wide)[r].log_probs[t], (*narrow)[r].log_probs[t], 1e-5);
    }
  }
  // The samples of a group share the prompt's prefill; greedy makes them identical and
  // equal to the single-sample result.
  for (size_t p = 0; p < kPrompts.size(); ++p) {
    EXPECT_EQ((*wide)[2 * p].tokens, (*wide)[2 * p + 1].tokens);
  }
}

// Plain temperature sampling (the one-pass inverse-CDF draw) follows softmax(logits / T):
// 20,000 rows of the same logits, every token's frequency within 4 standard errors of its
// probability, and each draw's log-prob that of the scaled distribution.
TEST(SamplerTest, TemperatureSamplingFollowsTheSoftmax) {
  const int64_t rows = 20000;
  auto logits = torch::tensor({0.0f, 1.0f, 2.0f, 0.5f, -1.0f}).repeat({rows, 1});
  SamplingOptions o;
  o.temperature = 0.7f;
  at::Generator gen = at::detail::createCPUGenerator(5);
  auto [tokens, lps] = SampleTokens(logits, o, gen);
  auto probs = torch::softmax(logits[0] / 0.7, -1);
  auto counts = torch::bincount(tokens, {}, 5).to(torch::kDouble) / rows;
  for (int v = 0; v < 5; ++v) {
    const double p = probs[v].item<double>();
    EXPECT_NEAR(counts[v].item<double>(), p, 4 * std::sqrt(p * (1 - p) / rows)) << "token " << v;
  }
  auto expected = torch::log(probs).index_select(0, tokens);
  EXPECT_TRUE(torch::allclose(lps, expected, 1e-5, 1e-5));
}

TEST(SamplerTest, GreedyEqualsTopKOne) {
  CausalLm model = TinyModel();
  SamplingOptions greedy;
  greedy.temperature = 0;
  greedy.max_new_tokens = 6;
  SamplingOptions k1;
  k1.top_k = 1;
  k1.max_new_tokens = 6;
  k1.seed = 99;
  auto a = Generate(model, kPrompts, greedy);
  auto b = Generate(model, kPrompts, k1);
  for (size_t i = 0; i < kPrompts.size(); ++i) EXPECT_EQ((*a)[i].tokens, (*b)[i].tokens);
}

TEST(SamplerTest, TopPKeepsTheNucleus) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  // Probabilities 0.6, 0.3, 0.1: top_p=0.5 keeps only the first token.
  auto logits = torch::log(torch::tensor({{0.6f, 0.3f, 0.1f}})).repeat({200, 1});
  SamplingOptions o;
  o.top_p = 0.5f;
  auto [tokens, lps] = SampleTokens(logits, o, gen);
  EXPECT_TRUE((tokens == 0).all().item<bool>());
  EXPECT_NEAR(lps[0].item<float>(), std::log(0.6f), 1e-5);  // untruncated distribution
  o.top_p = 0.8f;  // keeps two tokens
  auto [t2, l2] = SampleTokens(logits, o, gen);
  EXPECT_TRUE((t2 <= 1).all().item<bool>());
  EXPECT_TRUE((t2 == 1).any().item<bool>());
}

TEST(SamplerTest, StopTokensEndRowsAndLengthIsReported) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  o.temperature = 0;
  o.max_new_tokens = 12;
  auto free_run = Generate(model, kPrompts, o);
  ASSERT_TRUE(free_run.ok());
  const int stop = (*free_run)[0].tokens[2];
  o.stop_token_ids = {stop};
  auto stopped = Generate(model, kPrompts, o);
  ASSERT_TRUE(stopped.ok());
  const auto& row = (*stopped)[0];
  EXPECT_EQ(row.finish, FinishReason::kEos);
  EXPECT_EQ(row.tokens.back(), stop);
  EXPECT_LE(row.tokens.size(), 3u);
  for (const auto& r : *stopped) {
    if (r.finish == FinishReason::kLength) EXPECT_EQ(r.tokens.size(), 12u);
  }
}

TEST(SamplerTest, ContextBoundsGeneration) {
  CausalLm model = TinyModel();  // context 40
  SamplingOptions o;
  o.max_new_tokens = 100;
  auto out = Generate(model, {{3, 4, 5, 6, 7}}, o);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].tokens.size(), 35u);
  EXPECT_EQ((*out)[0].finish, FinishReason::kLength);
}

TEST(SamplerTest, RejectsBadInputNamingTheField) {
  CausalLm model = TinyModel();
  SamplingOptions o;
  auto too_long = Generate(model, {{3}, std::vector<int>(40, 3)}, o);
  EXPECT_THAT(std::string(too_long.status().message()), ::testing::HasSubstr("prompts[1]"));
  auto bad_id = Generate(model, {{3, 99}}, o);
  EXPECT_THAT(std::string(bad_id.status().message()), ::testing::HasSubstr("prompts[0]: token id 99"));
  o.top_p = 1.5f;
  EXPECT_THAT(std::string(Generate(model, kPrompts, o).status().message()),
              ::testing::HasSubstr("sampling.top_p"));
  o = SamplingOptions();
  o.temperature = -1;
  EXPECT_FALSE(Generate(model, kPrompts, o).ok());
}

}  // namespace
}  // namespace grail::model

namespace grail::model {
namespace {

// Prompt tuning: generation with n prompt embeddings ahead of every prompt (in the KV cache,
// positions counting them) reports the log-probs of a full forward pass, which adds them
// the same way; continuous batching with several rows and slot reuse included. The
// embeddings matter: without them the log-probs differ.
TEST(SamplerTest, PromptTunedGenerationMatchesAFullForwardPass) {
  ModelConfig c = TinyModel()->config();
  c.num_virtual_tokens = 3;
  CausalLm tuned(c);
  tuned->InitWeights(7);
  {
    torch::NoGradGuard g;
    for (auto& p : tuned->parameters()) {
      if (p.dim() == 2) p.mul_(20);
    }
  }
  tuned->InitPromptEmbeddings(5);
  auto names = tuned->named_parameters();
  ASSERT_NE(names.find("prompt_embeddings"), nullptr);
  EXPECT_GT(names.find("prompt_embeddings")->abs().sum().item<double>(), 0);
  SamplingOptions o;
  o.max_new_tokens = 9;
  o.seed = 4;
  auto out = GenerateGroups(tuned, kPrompts, 3, o, /*max_batch_rows=*/2);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 9u);
  for (size_t r = 0; r < out->size(); ++r) {
    ExpectLogProbsMatchFullForward(tuned, kPrompts[r / 3], (*out)[r], 1.0, "row " + std::to_string(r));
  }
  // The same weights without the prompt embeddings give other log-probs.
  CausalLm plain = TinyModel();
  torch::NoGradGuard no_grad;
  auto ids = torch::tensor(std::vector<int64_t>{3, 4, 5, 6}).unsqueeze(0);
  auto valid = torch::ones_like(ids, torch::kBool);
  auto with = tuned->Logits(tuned->Hidden(ids, PositionsFromValid(valid), valid));
  auto without = plain->Logits(plain->Hidden(ids, PositionsFromValid(valid), valid));
  EXPECT_EQ(with.sizes(), without.sizes());
  EXPECT_GT((with - without).abs().max().item<double>(), 1e-3);
}

}  // namespace
}  // namespace grail::model
