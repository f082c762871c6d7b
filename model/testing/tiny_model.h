#ifndef GRAIL_MODEL_TESTING_TINY_MODEL_H_
#define GRAIL_MODEL_TESTING_TINY_MODEL_H_

// A small seeded decoder and its weights blob, for unit tests of the services that load
// weights (actor, reference, learner).

#include <string>

#include <torch/torch.h>

#include "model/checkpoint.h"
#include "model/transformer.h"

namespace grail::model::testing {

inline ModelConfig TinyConfig() {
  ModelConfig c;
  c.vocab_size = 24;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  return c;
}

inline CausalLm TinyModel(uint64_t seed = 3) {
  CausalLm m(TinyConfig());
  m->InitWeights(seed);
  return m;
}

inline std::string TinyBlob(CausalLm& m) { return *ModelToSafetensors(m); }

// Log-probs of ids[:, t+1] given ids[:, :t+1] under `m` at `temperature`, [B, T-1].
inline torch::Tensor NextTokenLogProbs(CausalLm& m, const torch::Tensor& ids, double temperature = 1.0) {
  torch::NoGradGuard no_grad;
  const int64_t B = ids.size(0), T = ids.size(1);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto logits = m->Logits(m->Hidden(ids, positions, torch::ones({B, T}, torch::kBool))).narrow(1, 0, T - 1);
  return torch::log_softmax(logits / temperature, -1).gather(-1, ids.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
}

}  // namespace grail::model::testing

#endif  // GRAIL_MODEL_TESTING_TINY_MODEL_H_
