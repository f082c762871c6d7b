#include "model/cpu_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace grail::model {
namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GRAIL_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GRAIL_CPU_CLONES
#endif

// One (row, key/value head) pair: its G query heads against the same keys and values, so
// each key and value row is read once per group while it is in cache. Positions below
// `shared` come from prefix_keys/prefix_values, the rest from keys/values (both indexed by
// position).
GRAIL_CPU_CLONES
void AttendGroup(const float* __restrict q, const float* __restrict prefix_keys,
                 const float* __restrict prefix_values, int64_t shared, const float* __restrict keys,
                 const float* __restrict values, const bool* __restrict mask, int64_t groups, int64_t dim,
                 int64_t span, float scale, float* __restrict scores, float* __restrict out) {
  for (int64_t g = 0; g < groups; ++g) {
    const float* qg = q + g * dim;
    float* og = out + g * dim;
    float max = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < span; ++s) {
      if (!mask[s]) continue;
      const float* k = (s < shared ? prefix_keys : keys) + s * dim;
      float dot = 0;
      for (int64_t d = 0; d < dim; ++d) dot += qg[d] * k[d];
      scores[s] = dot * scale;
      max = std::max(max, scores[s]);
    }
    std::fill(og, og + dim, 0.0f);
    if (max == -std::numeric_limits<float>::infinity()) continue;  // nothing to attend to
    float total = 0;
    for (int64_t s = 0; s < span; ++s) {
      if (!mask[s]) continue;
      scores[s] = std::exp(scores[s] - max);
      total += scores[s];
    }
    const float inv = 1.0f / total;
    for (int64_t s = 0; s < span; ++s) {
      if (!mask[s]) continue;
      const float w = scores[s] * inv;
      const float* v = (s < shared ? prefix_values : values) + s * dim;
      for (int64_t d = 0; d < dim; ++d) og[d] += w * v[d];
    }
  }
}

GRAIL_CPU_CLONES
void RmsNormRows(const float* __restrict x, const float* __restrict w, int64_t rows, int64_t dim, float eps,
                 float* __restrict out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* o = out + r * dim;
    float squares = 0;
    for (int64_t d = 0; d < dim; ++d) squares += xr[d] * xr[d];
    const float inv = 1.0f / std::sqrt(squares / static_cast<float>(dim) + eps);
    for (int64_t d = 0; d < dim; ++d) o[d] = xr[d] * inv * w[d];
  }
}

GRAIL_CPU_CLONES
void RopeRows(float* __restrict x, const float* __restrict cos, const float* __restrict sin, int64_t rows,
              int64_t heads, int64_t dim) {
  const int64_t half = dim / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float* c = cos + r * dim;
    const float* s = sin + r * dim;
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * dim;
      for (int64_t d = 0; d < half; ++d) {
        const float a = v[d], b = v[d + half];
        v[d] = a * c[d] - b * s[d];
        v[d + half] = b * c[d + half] + a * s[d + half];
      }
    }
  }
}

}  // namespace

void RmsNorm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* out) {
  RmsNormRows(x, w, rows, dim, eps, out);
}

void Rope(float* x, const float* cos, const float* sin, int64_t rows, int64_t heads, int64_t dim) {
  RopeRows(x, cos, sin, rows, heads, dim);
}

void DecodeAttention(const DecodeAttentionShape& shape, const float* q, const float* keys,
                     const float* values, const bool* mask, int64_t mask_stride, float scale,
                     float* out, int64_t begin, int64_t end, const DecodePrefixes* prefixes) {
  const int64_t KV = shape.kv_heads, D = shape.head_dim, G = shape.heads / shape.kv_heads;
  std::vector<float> scores(static_cast<size_t>(shape.span));
  for (int64_t pair = begin; pair < end; ++pair) {
    const int64_t b = pair / KV, j = pair % KV;
    const int64_t kv_offset = (b * KV + j) * shape.capacity * D;
    const int64_t q_offset = (b * shape.heads + j * G) * D;
    const float *prefix_keys = nullptr, *prefix_values = nullptr;
    int64_t shared = 0;
    if (prefixes != nullptr && prefixes->index[b] >= 0) {
      const int64_t offset = (prefixes->index[b] * KV + j) * prefixes->capacity * D;
      prefix_keys = prefixes->keys + offset;
      prefix_values = prefixes->values + offset;
      shared = std::min(prefixes->length[b], shape.span);
    }
    AttendGroup(q + q_offset, prefix_keys, prefix_values, shared, keys + kv_offset, values + kv_offset,
                mask + b * mask_stride, G, D, shape.span, scale, scores.data(), out + q_offset);
  }
}

}  // namespace grail::model
