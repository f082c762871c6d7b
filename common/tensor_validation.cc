#include "common/tensor_validation.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace grail {

using grail::v1::DType;

int64_t DTypeItemSize(DType dtype) {
  switch (dtype) {
    case grail::v1::DTYPE_FLOAT32:
    case grail::v1::DTYPE_INT32:
      return 4;
    case grail::v1::DTYPE_FLOAT16:
    case grail::v1::DTYPE_BFLOAT16:
      return 2;
    case grail::v1::DTYPE_FLOAT64:
    case grail::v1::DTYPE_INT64:
      return 8;
    case grail::v1::DTYPE_UINT8:
    case grail::v1::DTYPE_BOOL:
      return 1;
    default:
      return 0;
  }
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case grail::v1::DTYPE_FLOAT32:
      return "float32";
    case grail::v1::DTYPE_FLOAT16:
      return "float16";
    case grail::v1::DTYPE_BFLOAT16:
      return "bfloat16";
    case grail::v1::DTYPE_FLOAT64:
      return "float64";
    case grail::v1::DTYPE_INT64:
      return "int64";
    case grail::v1::DTYPE_INT32:
      return "int32";
    case grail::v1::DTYPE_UINT8:
      return "uint8";
    case grail::v1::DTYPE_BOOL:
      return "bool";
    default:
      return "unknown";
  }
}

absl::Status ValidateTensor(const grail::v1::Tensor& tensor, absl::string_view field,
                            const TensorLimits& limits) {
  const int64_t item = DTypeItemSize(tensor.dtype());
  if (item == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".dtype: unknown or unspecified dtype ", tensor.dtype()));
  }
  if (tensor.shape_size() > limits.max_rank) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: rank ", tensor.shape_size(),
                                                   " exceeds the limit of ", limits.max_rank));
  }
  int64_t numel = 1;
  for (int i = 0; i < tensor.shape_size(); ++i) {
    const int64_t dim = tensor.shape(i);
    if (dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".shape[", i, "]: negative dimension ", dim));
    }
    // Checked before multiplying so that the product cannot overflow.
    if (dim > 0 && numel > limits.max_elements / dim) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".shape: [", absl::StrJoin(tensor.shape(), ","),
                       "] exceeds the limit of ", limits.max_elements, " elements"));
    }
    numel *= dim;
  }
  const int64_t want = numel * item;
  if (static_cast<int64_t>(tensor.data().size()) != want) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".data: ", tensor.data().size(), " bytes, expected ", want, " for shape [",
        absl::StrJoin(tensor.shape(), ","), "] of ", DTypeName(tensor.dtype())));
  }
  return absl::OkStatus();
}

absl::Status ValidateTensorAs(const grail::v1::Tensor& tensor, absl::string_view field, int rank,
                              std::initializer_list<DType> dtypes, const TensorLimits& limits) {
  absl::Status status = ValidateTensor(tensor, field, limits);
  if (!status.ok()) return status;
  if (rank >= 0 && tensor.shape_size() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".shape: rank ", tensor.shape_size(), ", expected ", rank));
  }
  bool accepted = dtypes.size() == 0;
  std::string names;
  for (DType d : dtypes) {
    accepted = accepted || d == tensor.dtype();
    absl::StrAppend(&names, names.empty() ? "" : " or ", DTypeName(d));
  }
  if (!accepted) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".dtype: ", DTypeName(tensor.dtype()),
                                                   ", expected ", names));
  }
  return absl::OkStatus();
}

int64_t NumElements(const grail::v1::Tensor& tensor) {
  int64_t numel = 1;
  for (int64_t d : tensor.shape()) numel *= d;
  return numel;
}

}  // namespace grail
