#ifndef GRAIL_LEARNER_LEARNER_GROUP_CLIENT_H_
#define GRAIL_LEARNER_LEARNER_GROUP_CLIENT_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "learner/learner_client.h"

namespace grail::learner {

// Splits rows with the given token counts into `ranks` shards of about equal token totals
// (longest rows first, each to the shard with the fewest tokens so far, ties to the shard
// with fewer rows). Every shard gets at least one row when there are at least `ranks` rows;
// rows keep their original order within a shard.
std::vector<std::vector<int64_t>> ShardRowsByTokens(const std::vector<int64_t>& tokens, int ranks);

// The learner group as one learner: InitModel goes to every rank; SupervisedStep and
// TrainStep send each rank its shard of the batch (ShardRowsByTokens on the tokens up to each
// row's last trained token; every shard keeps the batch's full width) and return rank 0's
// answer, whose metrics are already summed over the group; GetWeights, ComputeValues and
// SaveCheckpoint go to rank 0, which holds the same weights as every other rank. A batch
// with fewer rows than ranks is INVALID_ARGUMENT. ranks[0] is rank 0.
std::unique_ptr<LearnerClient> NewLearnerGroupClient(std::vector<std::shared_ptr<LearnerClient>> ranks);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_LEARNER_GROUP_CLIENT_H_
