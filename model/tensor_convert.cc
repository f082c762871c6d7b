#include "model/tensor_convert.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace grail::model {
namespace {

absl::StatusOr<torch::ScalarType> ToTorch(grail::v1::DType d) {
  switch (d) {
    case grail::v1::DTYPE_FLOAT32: return torch::kFloat32;
    case grail::v1::DTYPE_FLOAT16: return torch::kFloat16;
    case grail::v1::DTYPE_BFLOAT16: return torch::kBFloat16;
    case grail::v1::DTYPE_FLOAT64: return torch::kFloat64;
    case grail::v1::DTYPE_INT64: return torch::kInt64;
    case grail::v1::DTYPE_INT32: return torch::kInt32;
    case grail::v1::DTYPE_UINT8: return torch::kUInt8;
    case grail::v1::DTYPE_BOOL: return torch::kBool;
    default: return absl::InvalidArgumentError(absl::StrCat("unknown dtype ", d));
  }
}

absl::StatusOr<grail::v1::DType> FromTorch(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return grail::v1::DTYPE_FLOAT32;
    case torch::kFloat16: return grail::v1::DTYPE_FLOAT16;
    case torch::kBFloat16: return grail::v1::DTYPE_BFLOAT16;
    case torch::kFloat64: return grail::v1::DTYPE_FLOAT64;
    case torch::kInt64: return grail::v1::DTYPE_INT64;
    case torch::kInt32: return grail::v1::DTYPE_INT32;
    case torch::kUInt8: return grail::v1::DTYPE_UINT8;
    case torch::kBool: return grail::v1::DTYPE_BOOL;
    default: return absl::InvalidArgumentError(absl::StrCat("unsupported torch dtype ", c10::toString(t)));
  }
}

}  // namespace

absl::StatusOr<torch::Tensor> TensorFromProto(const grail::v1::Tensor& proto, absl::string_view field,
                                              const TensorLimits& limits) {
  absl::Status status = ValidateTensor(proto, field, limits);
  if (!status.ok()) return status;
  auto type = ToTorch(proto.dtype());
  if (!type.ok()) return type.status();
  std::vector<int64_t> shape(proto.shape().begin(), proto.shape().end());
  torch::Tensor out = torch::empty(shape, torch::TensorOptions().dtype(*type));
  if (out.nbytes() > 0) std::memcpy(out.data_ptr(), proto.data().data(), out.nbytes());
  return out;
}

absl::StatusOr<grail::v1::Tensor> TensorToProto(const torch::Tensor& tensor) {
  auto dtype = FromTorch(tensor.scalar_type());
  if (!dtype.ok()) return dtype.status();
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  grail::v1::Tensor out;
  out.set_dtype(*dtype);
  for (int64_t d : t.sizes()) out.add_shape(d);
  out.set_data(static_cast<const char*>(t.data_ptr()), t.nbytes());
  return out;
}

}  // namespace grail::model
