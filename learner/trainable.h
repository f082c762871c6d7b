#ifndef GRAIL_LEARNER_TRAINABLE_H_
#define GRAIL_LEARNER_TRAINABLE_H_

// Which of a model's parameters train (README, "PEFT"): all of them, a LoRA adapter over a
// frozen base (model.peft), or the layers and modules model.trainable names
// (freeze-tuning). Frozen parameters have requires_grad false: no gradient, no optimizer
// state, no all-reduce.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/transformer.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::learner {

// `model` as model.peft asks: with lora, rebuilt with adapters on the named projections
// (every other parameter copied, adapters fresh from `seed`, so the outputs are unchanged),
// unless it has adapters already (a checkpoint of a LoRA run). `adapter_dir` (model.peft.path
// resolved; "" for none) is a PEFT adapter directory whose settings and weights the adapters
// take instead. Otherwise `model` itself.
absl::StatusOr<std::shared_ptr<model::CausalLm>> WithAdapters(const grail::v1::ModelSpec& spec,
                                                             std::shared_ptr<model::CausalLm> model, uint64_t seed,
                                                             const std::string& adapter_dir = "");

// Sets requires_grad on every parameter: with adapters, only the adapters and a value head
// ("score.weight") train; with model.trainable, the parameters it selects and a value head;
// else all. INVALID_ARGUMENT (naming the field) when the selection names a layer the model
// lacks or selects nothing.
absl::Status SelectTrainable(const grail::v1::ModelSpec& spec, model::CausalLm& model);

// The parameters that train (requires_grad), in the model's order.
std::vector<torch::Tensor> TrainableParameters(model::CausalLm& model);

// Copies every parameter of `from` whose name and shape `to` shares, with its requires_grad.
void CopyMatchingParameters(model::CausalLm& from, model::CausalLm& to);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_TRAINABLE_H_
