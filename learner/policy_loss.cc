#include "learner/policy_loss.h"

namespace grail::learner {

torch::Tensor MaskedMean(const torch::Tensor& values, const torch::Tensor& mask) {
  return (values * mask).sum() / mask.sum().clamp_min(1.0);
}

PolicyLossResult PpoClipLoss(const torch::Tensor& old_log_prob, const torch::Tensor& log_prob,
                             const torch::Tensor& advantages, const torch::Tensor& mask,
                             const PpoClipOptions& o) {
  auto neg_kl = (log_prob - old_log_prob).clamp(-20.0, 20.0);
  auto ratio = neg_kl.exp();
  auto loss1 = -advantages * ratio;
  auto loss2 = -advantages * ratio.clamp(1.0 - o.clip_ratio_low, 1.0 + o.clip_ratio_high);
  auto clipped = torch::maximum(loss1, loss2);
  auto loss3 = -advantages * o.clip_ratio_c;
  auto dual = torch::minimum(loss3, clipped);
  auto per_token = torch::where(advantages < 0, dual, clipped);

  PolicyLossResult r;
  r.loss = MaskedMean(per_token, mask);
  torch::NoGradGuard no_grad;
  r.clipfrac = MaskedMean((loss2 > loss1).to(torch::kFloat32), mask).item<double>();
  r.clipfrac_lower =
      MaskedMean(((clipped > loss3) & (advantages < 0)).to(torch::kFloat32), mask).item<double>();
  r.approx_kl = MaskedMean(-neg_kl, mask).item<double>();
  return r;
}

}  // namespace grail::learner
