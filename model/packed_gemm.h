#ifndef GRAIL_MODEL_PACKED_GEMM_H_
#define GRAIL_MODEL_PACKED_GEMM_H_

// A projection weight stored once in the layout its matrix multiply reads, for inference
// on the CPU. BLAS (OpenBLAS here) packs the weight operand into that layout on every call;
// in a decoding step the weights (megabytes) do not stay in cache between steps, so each
// call's packing is a read of the whole weight from L3 or memory plus a write, for a
// product with only as many rows as the batch has sequences. Packed once per weights
// version, the multiply reads each weight element once per call.
//
// Torch-free: plain float buffers (model/transformer.cc wraps it for Projection).

#include <cstdint>
#include <memory>

namespace grail::model {

// W [n, k] (row-major, as nn.Linear stores it) in panels of kPanelWidth output columns, each
// panel k-major: panel p holds W[p*32 .. p*32+31][0 .. k-1] as k rows of 32 floats (the
// last panel padded with zeros).
//
// Multiply computes every output element as one sum over k in order (fused multiply-adds
// where the CPU has them), bias added last, so an element's value does not depend on how
// many rows the call has, where its row is among them, or how the panels are split across
// threads: greedy decoding does not change with batch composition.
class PackedWeight {
 public:
  static constexpr int64_t kPanelWidth = 32;

  PackedWeight() = default;

  // Copies w [n, k] into the packed layout. n, k > 0. Throws std::bad_alloc when the copy
  // does not fit in memory.
  PackedWeight(const float* w, int64_t n, int64_t k);

  int64_t n() const { return n_; }
  int64_t k() const { return k_; }
  int64_t panels() const { return (n_ + kPanelWidth - 1) / kPanelWidth; }
  int64_t bytes() const {
    return panels() * kPanelWidth * k_ * static_cast<int64_t>(sizeof(float));
  }

  // y[r, j] = sum_i x[r, i] W[j, i] (+ bias[j]) for rows r < m and the columns j of panels
  // [panel_begin, panel_end). x is [m, k] and y [m, n], both row-major and contiguous;
  // bias [n] or null. Panel ranges may run on different threads.
  void Multiply(const float* x, int64_t m, const float* bias, float* y, int64_t panel_begin,
                int64_t panel_end) const;

  // The instruction sets Multiply has kernels for; the best one this CPU runs is used.
  enum class Isa { kPortable, kAvx2, kAvx512 };
  static Isa BestIsa();
  // Tests: use `isa`'s kernel from now on (process-wide); false if this CPU cannot run it.
  static bool UseIsaForTesting(Isa isa);

 private:
  std::shared_ptr<float> data_;  // 64-byte aligned
  int64_t n_ = 0, k_ = 0;
};

}  // namespace grail::model

#endif  // GRAIL_MODEL_PACKED_GEMM_H_
