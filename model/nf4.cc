#include "model/nf4.h"

#include <cmath>

namespace grail::model {
namespace {

constexpr int64_t kScaleBlock = 256;  // double quantisation: absmax values per float32 scale

torch::Tensor LevelsTensor() {
  static const torch::Tensor levels = torch::tensor(Nf4Levels(), torch::kFloat32);
  return levels;
}

// Float32 absmax per block, undoing double quantisation.
torch::Tensor Absmax(const Nf4Tensor& q) {
  if (q.absmax.defined()) return q.absmax;
  const int64_t blocks = q.absmax_codes.numel();
  auto scale = q.absmax_scale.repeat_interleave(kScaleBlock).narrow(0, 0, blocks);
  return q.absmax_codes.to(torch::kFloat32) / 127.0f * scale + q.absmax_offset;
}

}  // namespace

const std::vector<float>& Nf4Levels() {
  static const std::vector<float> levels = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
      -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
      0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f,
      0.7229568362236023f, 1.0f};
  return levels;
}

int64_t Nf4Tensor::ResidentBytes() const {
  int64_t bytes = codes.defined() ? codes.numel() : 0;
  if (absmax.defined()) bytes += absmax.numel() * 4;
  if (absmax_codes.defined()) bytes += absmax_codes.numel() + absmax_scale.numel() * 4 + 4;
  return bytes;
}

Nf4Tensor QuantizeNf4(const torch::Tensor& w, bool double_quant) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(w.numel() % kNf4Block == 0, "NF4: ", w.numel(), " values are not whole blocks of ", kNf4Block);
  Nf4Tensor q;
  q.shape = w.sizes().vec();
  q.numel = w.numel();
  auto blocks = w.detach().to(torch::kFloat32).reshape({-1, kNf4Block});
  auto absmax = blocks.abs().amax(1);
  auto safe = torch::where(absmax > 0, absmax, torch::ones_like(absmax));
  auto normalized = (blocks / safe.unsqueeze(1)).reshape({-1});
  // The nearest level: the levels are sorted, so the index is the count of midpoints below.
  const auto& levels = Nf4Levels();
  std::vector<float> mids;
  for (size_t i = 0; i + 1 < levels.size(); ++i) mids.push_back(0.5f * (levels[i] + levels[i + 1]));
  auto codes = torch::bucketize(normalized, torch::tensor(mids, torch::kFloat32)).to(torch::kUInt8);
  if (codes.numel() % 2 != 0) codes = torch::cat({codes, torch::zeros({1}, torch::kUInt8)});
  auto pairs = codes.reshape({-1, 2});
  q.codes = (pairs.select(1, 0) | pairs.select(1, 1).__lshift__(4)).contiguous();
  if (!double_quant) {
    q.absmax = absmax.contiguous();
    return q;
  }
  q.absmax_offset = absmax.mean().item<float>();
  auto centered = absmax - q.absmax_offset;
  const int64_t n = centered.numel();
  const int64_t padded = (n + kScaleBlock - 1) / kScaleBlock * kScaleBlock;
  auto groups = torch::cat({centered, torch::zeros({padded - n})}).reshape({-1, kScaleBlock});
  auto scale = groups.abs().amax(1);
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));
  q.absmax_scale = scale.contiguous();
  q.absmax_codes = torch::round(groups / scale.unsqueeze(1) * 127.0f).clamp(-127, 127).reshape({-1}).narrow(0, 0, n)
                       .to(torch::kInt8)
                       .contiguous();
  return q;
}

torch::Tensor DequantizeNf4(const Nf4Tensor& q) {
  auto low = q.codes.bitwise_and(0x0F).to(torch::kInt64);
  auto high = q.codes.__rshift__(4).to(torch::kInt64);
  auto idx = torch::stack({low, high}, 1).reshape({-1}).narrow(0, 0, q.numel);
  auto values = LevelsTensor().index_select(0, idx).reshape({-1, kNf4Block});
  return (values * Absmax(q).unsqueeze(1)).reshape(q.shape);
}

torch::Tensor Nf4Linear(const torch::Tensor& x, const Nf4Tensor& w, const torch::Tensor& bias) {
  return torch::nn::functional::linear(x, DequantizeNf4(w), bias);
}

torch::Tensor Nf4Rows(const Nf4Tensor& w, const torch::Tensor& ids) {
  TORCH_CHECK(w.shape.size() == 2 && w.shape[1] % kNf4Block == 0, "NF4 rows: columns are not whole blocks");
  const int64_t cols = w.shape[1], bytes_per_row = cols / 2, blocks_per_row = cols / kNf4Block;
  auto flat = ids.reshape({-1});
  auto codes = w.codes.view({w.shape[0], bytes_per_row}).index_select(0, flat);
  auto low = codes.bitwise_and(0x0F).to(torch::kInt64);
  auto high = codes.__rshift__(4).to(torch::kInt64);
  auto idx = torch::stack({low, high}, 2).reshape({flat.numel(), cols});
  auto values = LevelsTensor().index_select(0, idx.reshape({-1})).reshape({flat.numel(), blocks_per_row, kNf4Block});
  auto absmax = Absmax(w).view({w.shape[0], blocks_per_row}).index_select(0, flat);
  auto out = (values * absmax.unsqueeze(2)).reshape({flat.numel(), cols});
  auto shape = ids.sizes().vec();
  shape.push_back(cols);
  return out.reshape(shape);
}

}  // namespace grail::model
