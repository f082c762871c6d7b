#ifndef GRAIL_COORDINATOR_RETRYING_CLIENTS_H_
#define GRAIL_COORDINATOR_RETRYING_CLIENTS_H_

// Client decorators that repeat transiently failing calls (common/retry.h): the loop calls a
// peer once and gets its final answer. Failover between actors is the collector's, not a
// retry: Generate passes through.

#include <memory>

#include "actor/actor_client.h"
#include "common/retry.h"
#include "reward/reward_client.h"

namespace grail::coordinator {

// Score is retried under `policy` (with its recovery bound: the reward scorer keeps no
// state, so once a restarted one answers the run goes on).
std::shared_ptr<reward::RewardClient> RetryingRewardClient(std::shared_ptr<reward::RewardClient> inner,
                                                           RetryPolicy policy, Clock* clock, RetryHooks hooks);

// LoadWeights is retried under `policy`; Generate and GetInfo pass through.
std::shared_ptr<actor::ActorClient> RetryingActorClient(std::shared_ptr<actor::ActorClient> inner,
                                                        RetryPolicy policy, Clock* clock, RetryHooks hooks);

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RETRYING_CLIENTS_H_
