#ifndef GRAIL_ALGO_ADVANTAGES_H_
#define GRAIL_ALGO_ADVANTAGES_H_

#include <cstdint>
#include <vector>
#include <vector>

namespace grail::algo {

// A dense row-major matrix of per-token values: rows are samples, columns response tokens.
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<double> data;

  Matrix() = default;
  Matrix(int64_t r, int64_t c, double fill = 0.0) : rows(r), cols(c), data(r * c, fill) {}
  double& at(int64_t r, int64_t c) { return data[r * cols + c]; }
  double at(int64_t r, int64_t c) const { return data[r * cols + c]; }
};

// (values - mean) / sqrt(var + 1e-8) at every position, with mean and unbiased variance
// taken over the masked positions (verl's masked_whiten).
Matrix MaskedWhiten(const Matrix& values, const Matrix& mask);

struct AdvantagesAndReturns {
  Matrix advantages;
  Matrix returns;
};

// Decoupled GAE (VAPO): advantages from GAE with lam_actor, whitened over the batch's
// masked tokens; returns from GAE with lam_critic plus values (unwhitened), for the critic.
// Masked positions carry the running value and advantage through.
AdvantagesAndReturns DecoupledGae(const Matrix& token_rewards, const Matrix& values, const Matrix& mask,
                                  double gamma, double lam_actor, double lam_critic);

// DecoupledGae with one actor lambda per row (VAPO's length-adaptive lambda).
AdvantagesAndReturns DecoupledGaePerRow(const Matrix& token_rewards, const Matrix& values, const Matrix& mask,
                                        double gamma, const std::vector<double>& lam_actor, double lam_critic);

// Length-adaptive lambda of VAPO: 1 - 1 / (alpha * response_length).
double LengthAdaptiveLambda(double alpha, double response_length);

// GRPO / Dr.GRPO on the summed token rewards of each row, broadcast over its mask.
Matrix GrpoTokenAdvantages(const Matrix& token_rewards, const Matrix& mask, const std::vector<int64_t>& index,
                           double epsilon, bool norm_by_std);

// RLOO: each row's summed reward minus the mean of the other rows of its group (rows
// alone in their group keep their reward), broadcast over its mask.
Matrix RlooTokenAdvantages(const Matrix& token_rewards, const Matrix& mask, const std::vector<int64_t>& index);

// REINFORCE++: discounted returns to go, whitened over the batch's masked tokens.
AdvantagesAndReturns ReinforcePlusPlus(const Matrix& token_rewards, const Matrix& mask, double gamma);

enum class GfpoMetric { kLength, kTokenEfficiency };

struct GfpoResult {
  std::vector<double> advantages;
  std::vector<bool> kept;
};

// GFPO: per group keep the k shortest responses (kLength) or the k with the highest score
// per token (kTokenEfficiency), ties to the earlier row; kept rows get GRPO advantages over
// the kept subset, the others 0.
GfpoResult Gfpo(const std::vector<double>& scores, const std::vector<double>& lengths,
                const std::vector<int64_t>& index, int k, GfpoMetric metric, double epsilon);

// The coefficient of the KL penalty in the reward. Fixed, or adaptive (Ziegler et al. 2019):
// after each step coef *= 1 + clip(kl / target - 1, -0.2, 0.2) * n / horizon, where kl is
// the step's mean per-token KL and n its number of samples. Not thread-safe.
class KlController {
 public:
  KlController(double initial, double target, int64_t horizon)
      : value_(initial), target_(target), horizon_(horizon) {}
  double value() const { return value_; }
  void Update(double current_kl, int64_t n_samples);

 private:
  double value_;
  double target_;   // <= 0: fixed
  int64_t horizon_;
};

// Group-relative advantages from one scalar score per sample. `index` is the group of each
// sample (rows of a group need not be adjacent). Per group: mean and unbiased std; the
// advantage is (r - mean) / (std + epsilon), or r - mean without std scaling (Dr.GRPO). A
// group of one gets mean 0, std 1.
std::vector<double> GrpoAdvantages(const std::vector<double>& scores, const std::vector<int64_t>& index,
                                   double epsilon, bool norm_by_std);

// DAPO dynamic sampling: a sample is kept iff its group has one sample or the group's
// scores are not all equal.
std::vector<bool> GroupFilter(const std::vector<double>& scores, const std::vector<int64_t>& index);

}  // namespace grail::algo

#endif  // GRAIL_ALGO_ADVANTAGES_H_
