#include "model/packed_gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>

#include "common/memory.h"

namespace grail::model {
namespace {

constexpr int64_t kWidth = PackedWeight::kPanelWidth;

// One block of MR rows against one panel: MR x 32 sums held in registers (vectors of type V)
// while k runs, each element's sum taken in order of k.
template <typename V, int MR>
__attribute__((always_inline)) inline void Block(const float* __restrict x, int64_t k,
                                                 const float* __restrict panel,
                                                 const float* __restrict bias, int64_t cols,
                                                 float* __restrict y, int64_t ldy) {
  constexpr int kLanes = static_cast<int>(sizeof(V) / sizeof(float));
  constexpr int kVectors = static_cast<int>(kWidth) / kLanes;
  V acc[MR][kVectors];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v) acc[r][v] = V{};
  }
  for (int64_t i = 0; i < k; ++i) {
    V w[kVectors];
#pragma GCC unroll 8
    for (int v = 0; v < kVectors; ++v)
      w[v] = *reinterpret_cast<const V*>(panel + i * kWidth + v * kLanes);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const float xr = x[r * k + i];
#pragma GCC unroll 8
      for (int v = 0; v < kVectors; ++v) acc[r][v] += xr * w[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    float out[kWidth];
    std::memcpy(out, &acc[r][0], sizeof(out));
    if (bias != nullptr) {
      for (int64_t j = 0; j < cols; ++j) out[j] += bias[j];
    }
    std::memcpy(y + r * ldy, out, static_cast<size_t>(cols) * sizeof(float));
  }
}

template <typename V, int MR>
__attribute__((always_inline)) inline void MultiplyPanels(const float* data, int64_t n, int64_t k,
                                                          const float* x, int64_t m,
                                                          const float* bias, float* y,
                                                          int64_t begin, int64_t end) {
  for (int64_t p = begin; p < end; ++p) {
    const float* panel = data + p * kWidth * k;
    const int64_t col0 = p * kWidth;
    const int64_t cols = n - col0 < kWidth ? n - col0 : kWidth;
    const float* b = bias != nullptr ? bias + col0 : nullptr;
    int64_t r = 0;
    for (; r + MR <= m; r += MR) Block<V, MR>(x + r * k, k, panel, b, cols, y + r * n + col0, n);
    for (; r < m; ++r) Block<V, 1>(x + r * k, k, panel, b, cols, y + r * n + col0, n);
  }
}

using MultiplyFn = void (*)(const float*, int64_t, int64_t, const float*, int64_t, const float*,
                            float*, int64_t, int64_t);

typedef float Vec4 __attribute__((vector_size(16)));

void MultiplyPortable(const float* data, int64_t n, int64_t k, const float* x, int64_t m,
                      const float* bias, float* y, int64_t begin, int64_t end) {
  MultiplyPanels<Vec4, 2>(data, n, k, x, m, bias, y, begin, end);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
typedef float Vec8 __attribute__((vector_size(32)));
typedef float Vec16 __attribute__((vector_size(64)));

// AVX2 + FMA: 3 rows x 4 vectors of 8 = 12 accumulators of the 16 registers.
__attribute__((target("avx2,fma"))) void MultiplyAvx2(const float* data, int64_t n, int64_t k,
                                                      const float* x, int64_t m, const float* bias,
                                                      float* y, int64_t begin, int64_t end) {
  MultiplyPanels<Vec8, 3>(data, n, k, x, m, bias, y, begin, end);
}

// AVX-512: 8 rows x 2 vectors of 16 = 16 accumulators of the 32 registers.
__attribute__((target("avx512f,fma"))) void MultiplyAvx512(const float* data, int64_t n, int64_t k,
                                                           const float* x, int64_t m,
                                                           const float* bias, float* y,
                                                           int64_t begin, int64_t end) {
  MultiplyPanels<Vec16, 8>(data, n, k, x, m, bias, y, begin, end);
}

bool Supported(PackedWeight::Isa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case PackedWeight::Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
    case PackedWeight::Isa::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case PackedWeight::Isa::kPortable:
      return true;
  }
  return false;
}

MultiplyFn KernelFor(PackedWeight::Isa isa) {
  switch (isa) {
    case PackedWeight::Isa::kAvx512:
      return MultiplyAvx512;
    case PackedWeight::Isa::kAvx2:
      return MultiplyAvx2;
    case PackedWeight::Isa::kPortable:
      return MultiplyPortable;
  }
  return MultiplyPortable;
}
#else
bool Supported(PackedWeight::Isa isa) { return isa == PackedWeight::Isa::kPortable; }
MultiplyFn KernelFor(PackedWeight::Isa) { return MultiplyPortable; }
#endif

std::atomic<MultiplyFn> active_kernel{KernelFor(PackedWeight::BestIsa())};

}  // namespace

PackedWeight::PackedWeight(const float* w, int64_t n, int64_t k) : n_(n), k_(k) {
  const size_t bytes = static_cast<size_t>(this->bytes());
  float* d = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  if (d == nullptr) throw std::bad_alloc();
  data_.reset(d, std::free);
  AdviseHugePages(d, bytes);
  for (int64_t p = 0; p < panels(); ++p) {
    float* panel = d + p * k * kWidth;
    // Column by column: each reads a row of w in order and writes within one panel, which
    // stays in cache.
    for (int64_t j = 0; j < kWidth; ++j) {
      const int64_t col = p * kWidth + j;
      const float* row = col < n ? w + col * k : nullptr;
      for (int64_t i = 0; i < k; ++i) panel[i * kWidth + j] = row != nullptr ? row[i] : 0.0f;
    }
  }
}

PackedWeight::Isa PackedWeight::BestIsa() {
  for (Isa isa : {Isa::kAvx512, Isa::kAvx2}) {
    if (Supported(isa)) return isa;
  }
  return Isa::kPortable;
}

bool PackedWeight::UseIsaForTesting(Isa isa) {
  if (!Supported(isa)) return false;
  active_kernel.store(KernelFor(isa));
  return true;
}

void PackedWeight::Multiply(const float* x, int64_t m, const float* bias, float* y,
                            int64_t panel_begin, int64_t panel_end) const {
  // Rows in chunks, so that a chunk's inputs stay in cache while every panel passes over
  // them (a long prefill would otherwise stream all of x once per panel).
  constexpr int64_t kRowChunk = 96;
  for (int64_t r = 0; r < m; r += kRowChunk) {
    active_kernel.load(std::memory_order_relaxed)(data_.get(), n_, k_, x + r * k_,
                                                  std::min(kRowChunk, m - r), bias, y + r * n_,
                                                  panel_begin, panel_end);
  }
}

}  // namespace grail::model
