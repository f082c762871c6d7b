#ifndef GRAIL_COMMON_TENSOR_VALIDATION_H_
#define GRAIL_COMMON_TENSOR_VALIDATION_H_

#include <cstdint>
#include <initializer_list>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/grail/v1/common.pb.h"

namespace grail {

// Limits applied to every tensor received over the wire.
struct TensorLimits {
  // Largest accepted number of elements (2^31: 8 GiB of float32).
  int64_t max_elements = int64_t{1} << 31;
  // Largest accepted rank.
  int max_rank = 8;
};

// Bytes per element of `dtype`, or 0 for DTYPE_UNSPECIFIED and values outside the enum.
int64_t DTypeItemSize(grail::v1::DType dtype);

// Human-readable name ("float32"), or "dtype(N)" for unknown values.
const char* DTypeName(grail::v1::DType dtype);

// Checks that `tensor` is well formed: known dtype, non-negative shape within limits, and
// data.size() == numel * itemsize. `field` names the tensor in the error message
// (e.g. "experience.advantages"). Returns INVALID_ARGUMENT on any violation.
absl::Status ValidateTensor(const grail::v1::Tensor& tensor, absl::string_view field,
                            const TensorLimits& limits = {});

// ValidateTensor plus a required rank (-1 = any) and a set of accepted dtypes.
absl::Status ValidateTensorAs(const grail::v1::Tensor& tensor, absl::string_view field, int rank,
                              std::initializer_list<grail::v1::DType> dtypes,
                              const TensorLimits& limits = {});

// Number of elements of a validated tensor.
int64_t NumElements(const grail::v1::Tensor& tensor);

}  // namespace grail

#endif  // GRAIL_COMMON_TENSOR_VALIDATION_H_
