#include "coordinator/advantages.h"

#include <cmath>
#include <map>

namespace grail::coordinator {

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

}  // namespace grail::coordinator
