#ifndef GRAIL_COORDINATOR_ADVANTAGES_H_
#define GRAIL_COORDINATOR_ADVANTAGES_H_

#include <cstdint>
#include <vector>

namespace grail::coordinator {

// Group-relative advantages from one scalar score per sample. `index` is the group of each
// sample (rows of a group need not be adjacent). Per group: mean and unbiased std; the
// advantage is (r - mean) / (std + epsilon), or r - mean without std scaling (Dr.GRPO). A
// group of one gets mean 0, std 1.
std::vector<double> GrpoAdvantages(const std::vector<double>& scores, const std::vector<int64_t>& index,
                                   double epsilon, bool norm_by_std);

// DAPO dynamic sampling: a sample is kept iff its group has one sample or the group's
// scores are not all equal.
std::vector<bool> GroupFilter(const std::vector<double>& scores, const std::vector<int64_t>& index);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_ADVANTAGES_H_
