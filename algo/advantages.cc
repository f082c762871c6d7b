#include "algo/advantages.h"

#include <cmath>
#include <algorithm>
#include <map>

namespace grail::algo {

std::vector<double> GrpoAdvantages(const std::vector<double>& scores, const std::vector<int64_t>& index,
                                   double epsilon, bool norm_by_std) {
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < scores.size(); ++i) groups[index[i]].push_back(i);
  std::vector<double> adv(scores.size(), 0.0);
  for (const auto& [id, rows] : groups) {
    double mean = 0, std = 1;
    if (rows.size() > 1) {
      for (size_t r : rows) mean += scores[r];
      mean /= rows.size();
      double var = 0;
      for (size_t r : rows) var += (scores[r] - mean) * (scores[r] - mean);
      std = std::sqrt(var / (rows.size() - 1));
    }
    for (size_t r : rows) {
      adv[r] = norm_by_std ? (scores[r] - mean) / (std + epsilon) : scores[r] - mean;
    }
  }
  return adv;
}

std::vector<bool> GroupFilter(const std::vector<double>& scores, const std::vector<int64_t>& index) {
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < scores.size(); ++i) groups[index[i]].push_back(i);
  std::vector<bool> kept(scores.size(), false);
  for (const auto& [id, rows] : groups) {
    bool informative = rows.size() == 1;
    for (size_t r : rows) informative = informative || scores[r] != scores[rows[0]];
    for (size_t r : rows) kept[r] = informative;
  }
  return kept;
}

void KlController::Update(double current_kl, int64_t n_samples) {
  if (target_ <= 0 || horizon_ <= 0) return;
  const double error = std::clamp(current_kl / target_ - 1.0, -0.2, 0.2);
  value_ *= 1.0 + error * static_cast<double>(n_samples) / static_cast<double>(horizon_);
}

Matrix MaskedWhiten(const Matrix& values, const Matrix& mask) {
  double sum = 0, count = 0;
  for (size_t i = 0; i < values.data.size(); ++i) {
    sum += values.data[i] * mask.data[i];
    count += mask.data[i];
  }
  const double mean = sum / (count + 1e-8);
  double sq = 0;
  for (size_t i = 0; i < values.data.size(); ++i) {
    sq += (values.data[i] - mean) * (values.data[i] - mean) * mask.data[i];
  }
  double var = sq / (count + 1e-8);
  if (count > 1) var *= count / (count - 1);
  Matrix out(values.rows, values.cols);
  const double inv = 1.0 / std::sqrt(var + 1e-8);
  for (size_t i = 0; i < values.data.size(); ++i) out.data[i] = (values.data[i] - mean) * inv;
  return out;
}

namespace {

// GAE with one lambda per row; returns the raw (unwhitened) advantages.
Matrix Gae(const Matrix& r, const Matrix& v, const Matrix& m, double gamma, const std::vector<double>& lams) {
  Matrix adv(r.rows, r.cols);
  for (int64_t b = 0; b < r.rows; ++b) {
    const double lam = lams[b];
    double next_value = 0, last = 0;
    for (int64_t t = r.cols - 1; t >= 0; --t) {
      const double delta = r.at(b, t) + gamma * next_value - v.at(b, t);
      const double candidate = delta + gamma * lam * last;
      const double mt = m.at(b, t);
      next_value = v.at(b, t) * mt + (1 - mt) * next_value;
      last = candidate * mt + (1 - mt) * last;
      adv.at(b, t) = last;
    }
  }
  return adv;
}

std::vector<double> RowSums(const Matrix& m) {
  std::vector<double> s(m.rows, 0.0);
  for (int64_t b = 0; b < m.rows; ++b) {
    for (int64_t t = 0; t < m.cols; ++t) s[b] += m.at(b, t);
  }
  return s;
}

Matrix Broadcast(const std::vector<double>& per_row, const Matrix& mask) {
  Matrix out(mask.rows, mask.cols);
  for (int64_t b = 0; b < mask.rows; ++b) {
    for (int64_t t = 0; t < mask.cols; ++t) out.at(b, t) = per_row[b] * mask.at(b, t);
  }
  return out;
}

}  // namespace

AdvantagesAndReturns DecoupledGae(const Matrix& token_rewards, const Matrix& values, const Matrix& mask,
                                  double gamma, double lam_actor, double lam_critic) {
  return DecoupledGaePerRow(token_rewards, values, mask, gamma,
                            std::vector<double>(token_rewards.rows, lam_actor), lam_critic);
}

AdvantagesAndReturns DecoupledGaePerRow(const Matrix& token_rewards, const Matrix& values, const Matrix& mask,
                                        double gamma, const std::vector<double>& lam_actor, double lam_critic) {
  AdvantagesAndReturns out;
  out.advantages = MaskedWhiten(Gae(token_rewards, values, mask, gamma, lam_actor), mask);
  out.returns = Gae(token_rewards, values, mask, gamma, std::vector<double>(token_rewards.rows, lam_critic));
  for (size_t i = 0; i < out.returns.data.size(); ++i) out.returns.data[i] += values.data[i];
  return out;
}

double LengthAdaptiveLambda(double alpha, double response_length) {
  return 1.0 - 1.0 / (alpha * response_length);
}

Matrix GrpoTokenAdvantages(const Matrix& token_rewards, const Matrix& mask, const std::vector<int64_t>& index,
                           double epsilon, bool norm_by_std) {
  return Broadcast(GrpoAdvantages(RowSums(token_rewards), index, epsilon, norm_by_std), mask);
}

Matrix RlooTokenAdvantages(const Matrix& token_rewards, const Matrix& mask, const std::vector<int64_t>& index) {
  const std::vector<double> scores = RowSums(token_rewards);
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < scores.size(); ++i) groups[index[i]].push_back(i);
  std::vector<double> adv(scores);
  for (const auto& [id, rows] : groups) {
    const double n = static_cast<double>(rows.size());
    if (rows.size() < 2) continue;
    double mean = 0;
    for (size_t r : rows) mean += scores[r];
    mean /= n;
    for (size_t r : rows) adv[r] = scores[r] * n / (n - 1) - mean * n / (n - 1);
  }
  return Broadcast(adv, mask);
}

AdvantagesAndReturns ReinforcePlusPlus(const Matrix& token_rewards, const Matrix& mask, double gamma) {
  AdvantagesAndReturns out;
  out.returns = Matrix(token_rewards.rows, token_rewards.cols);
  for (int64_t b = 0; b < token_rewards.rows; ++b) {
    double running = 0;
    for (int64_t t = token_rewards.cols - 1; t >= 0; --t) {
      running = token_rewards.at(b, t) + gamma * running;
      out.returns.at(b, t) = running;
      running *= mask.at(b, t);
    }
  }
  out.advantages = MaskedWhiten(out.returns, mask);
  for (size_t i = 0; i < out.advantages.data.size(); ++i) out.advantages.data[i] *= mask.data[i];
  return out;
}

GfpoResult Gfpo(const std::vector<double>& scores, const std::vector<double>& lengths,
                const std::vector<int64_t>& index, int k, GfpoMetric metric, double epsilon) {
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < scores.size(); ++i) groups[index[i]].push_back(i);
  GfpoResult out{std::vector<double>(scores.size(), 0.0), std::vector<bool>(scores.size(), false)};
  std::vector<double> kept_scores;
  std::vector<int64_t> kept_index;
  std::vector<size_t> kept_rows;
  for (auto& [id, rows] : groups) {
    // Rows are in batch order, so a stable sort sends ties to the earlier row.
    std::stable_sort(rows.begin(), rows.end(), [&](size_t a, size_t b) {
      if (metric == GfpoMetric::kLength) return lengths[a] < lengths[b];
      return scores[a] / std::max(lengths[a], 1.0) > scores[b] / std::max(lengths[b], 1.0);
    });
    for (size_t i = 0; i < rows.size() && static_cast<int>(i) < k; ++i) {
      out.kept[rows[i]] = true;
      kept_rows.push_back(rows[i]);
      kept_scores.push_back(scores[rows[i]]);
      kept_index.push_back(id);
    }
  }
  const std::vector<double> adv = GrpoAdvantages(kept_scores, kept_index, epsilon, true);
  for (size_t i = 0; i < kept_rows.size(); ++i) out.advantages[kept_rows[i]] = adv[i];
  return out;
}

}  // namespace grail::algo
