#ifndef GRAIL_MODEL_CPU_KERNELS_H_
#define GRAIL_MODEL_CPU_KERNELS_H_

// Hand-written CPU kernels for the shapes where LibTorch's general operators spend more on
// dispatch and BLAS packing than on arithmetic. Torch-free: plain float buffers, so this
// file is compiled with its own optimisation flags (model/CMakeLists.txt) and, on x86-64,
// in an AVX2/FMA clone picked at load time next to a portable one.

#include <cstdint>

namespace grail::model {

// The shape of one decoding step's attention: `batch` rows of one query each.
struct DecodeAttentionShape {
  int64_t batch = 0;
  int64_t heads = 0;     // query heads H
  int64_t kv_heads = 0;  // key/value heads KV (H a multiple of it)
  int64_t head_dim = 0;
  int64_t capacity = 0;  // cache positions allocated per row
  int64_t span = 0;      // cache positions attended to: [0, span)
};

// Shared prompt prefixes of a decoding step (the sampler's group of samples of one prompt
// reads one copy of the prompt's keys and values): row b reads its positions
// s < length[b] from prefix index[b]'s keys and values instead of its own, where index[b]
// >= 0. keys and values are [NP, KV, capacity, D], contiguous.
struct DecodePrefixes {
  const float* keys = nullptr;
  const float* values = nullptr;
  int64_t capacity = 0;
  const int64_t* index = nullptr;   // per row: its prefix, or -1 for none
  const int64_t* length = nullptr;  // per row: positions read from the prefix
};

// Grouped-query attention of one query per row over a KV cache, without repeating keys and
// values: for every row b and query head h, with j = h / (H / KV),
//   out[b, h, :] = sum_s softmax_s(scale * q[b, h, :] . keys[b, j, s, :]) values[b, j, s, :]
// over the positions s < span where mask[b * mask_stride + s] is true (a row with none gets
// zeros). q and out are [B, H, D]; keys and values [B, KV, capacity, D]; all contiguous.
// With `prefixes`, a row's first positions come from its shared prefix (see there), summed
// in the same order as its own would be. Computes the (b, j) pairs with b * KV + j in
// [begin, end), so callers can split the work across threads.
void DecodeAttention(const DecodeAttentionShape& shape, const float* q, const float* keys,
                     const float* values, const bool* mask, int64_t mask_stride, float scale,
                     float* out, int64_t begin, int64_t end, const DecodePrefixes* prefixes = nullptr);

// RMS normalisation of `rows` rows of `dim` floats: out = x * w / sqrt(mean(x^2) + eps).
// x and out must not overlap.
void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out);

// Rotary position embedding in place: for each of `rows` rows, `heads` vectors of `dim`
// floats (row stride heads * dim) become x * cos + rotate_half(x) * sin, with the row's
// cos and sin [dim] (rotate_half(x) = [-x[dim/2:], x[:dim/2]]).
void Rope(float* x, const float* cos, const float* sin, int64_t rows, int64_t heads, int64_t dim);

}  // namespace grail::model

#endif  // GRAIL_MODEL_CPU_KERNELS_H_
