#ifndef GRAIL_MODEL_NF4_H_
#define GRAIL_MODEL_NF4_H_

// 4-bit NormalFloat (QLoRA, Dettmers et al. 2023) storage for frozen weights: each block of
// 64 consecutive values is scaled by its absolute maximum and each value replaced by the
// nearest of 16 levels that are quantiles of a standard normal (two codes per byte). With
// double quantisation the per-block scales are themselves stored in 8 bits, in blocks of
// 256 with one float32 scale each and one float32 offset overall. LibTorch code.

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace grail::model {

struct Nf4Tensor {
  std::vector<int64_t> shape;
  int64_t numel = 0;
  torch::Tensor codes;         // uint8 [ceil(numel / 2)]: value 2i in the low nibble, 2i+1 in the high
  torch::Tensor absmax;        // float32 [blocks] (without double quantisation)
  torch::Tensor absmax_codes;  // int8 [blocks] (with double quantisation)
  torch::Tensor absmax_scale;  // float32 [ceil(blocks / 256)]
  float absmax_offset = 0;
  bool defined() const { return codes.defined(); }
  // Bytes held: codes plus scales.
  int64_t ResidentBytes() const;
};

inline constexpr int64_t kNf4Block = 64;

// The 16 NF4 levels, ascending, from -1 to 1 (0 exactly representable).
const std::vector<float>& Nf4Levels();

// `w` (any float dtype) quantised; its number of elements must be a multiple of kNf4Block.
Nf4Tensor QuantizeNf4(const torch::Tensor& w, bool double_quant);
// The float32 tensor the codes stand for.
torch::Tensor DequantizeNf4(const Nf4Tensor& q);
// x W^T (+ b) for W stored in NF4: the interface a fused GPU kernel would implement. Here
// the weight is dequantised into a transient float32 buffer inside the call, so only the
// 4-bit form stays resident.
torch::Tensor Nf4Linear(const torch::Tensor& x, const Nf4Tensor& w, const torch::Tensor& bias = {});
// Rows `ids` of a [rows, cols] NF4 matrix (an embedding lookup), float32; cols must be a
// multiple of kNf4Block so that every row is whole blocks.
torch::Tensor Nf4Rows(const Nf4Tensor& w, const torch::Tensor& ids);

}  // namespace grail::model

#endif  // GRAIL_MODEL_NF4_H_
