#ifndef GRAIL_MODEL_TENSOR_CONVERT_H_
#define GRAIL_MODEL_TENSOR_CONVERT_H_

#include <torch/torch.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/tensor_validation.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::model {

// Validates a wire tensor (see ValidateTensor) and copies it into a CPU torch tensor.
absl::StatusOr<torch::Tensor> TensorFromProto(const grail::v1::Tensor& proto, absl::string_view field,
                                              const TensorLimits& limits = {});

// Copies a torch tensor (any device; made contiguous) into a wire tensor.
absl::StatusOr<grail::v1::Tensor> TensorToProto(const torch::Tensor& tensor);

}  // namespace grail::model

#endif  // GRAIL_MODEL_TENSOR_CONVERT_H_
