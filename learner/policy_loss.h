#ifndef GRAIL_LEARNER_POLICY_LOSS_H_
#define GRAIL_LEARNER_POLICY_LOSS_H_

#include <torch/torch.h>

namespace grail::learner {

struct PpoClipOptions {
  double clip_ratio_low = 0.2;   // ratio floor 1 - low
  double clip_ratio_high = 0.28; // ratio ceiling 1 + high (clip-higher, DAPO)
  double clip_ratio_c = 3.0;     // dual clip for negative advantages
};

struct PolicyLossResult {
  torch::Tensor loss;      // scalar, differentiable
  double clipfrac = 0;     // fraction of tokens where the clipped term was taken
  double clipfrac_lower = 0;  // fraction where the dual clip bound was taken
  double approx_kl = 0;    // token-mean of old - new log-prob
};

// PPO clipped surrogate with asymmetric clip range and dual clip, aggregated as token-mean
// over `mask`. All tensors [B,T]; log-ratios are clamped to +-20.
PolicyLossResult PpoClipLoss(const torch::Tensor& old_log_prob, const torch::Tensor& log_prob,
                             const torch::Tensor& advantages, const torch::Tensor& mask,
                             const PpoClipOptions& options);

// Masked mean over all elements; 0 when the mask is empty.
torch::Tensor MaskedMean(const torch::Tensor& values, const torch::Tensor& mask);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_POLICY_LOSS_H_
