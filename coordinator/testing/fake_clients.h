#ifndef GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_
#define GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_

// The coordinator's tests use the per-component fakes (<component>/testing/) under one name.

#include "actor/testing/fake_actor_client.h"
#include "learner/testing/fake_learner_client.h"
#include "reference/testing/fake_reference_client.h"
#include "reward/testing/fake_reward_client.h"

namespace grail::coordinator::testing {

using ::grail::actor::testing::FakeActorClient;
using ::grail::learner::testing::FakeLearnerClient;
using ::grail::reference::testing::FakeReferenceClient;
using ::grail::reward::testing::FakeRewardClient;

}  // namespace grail::coordinator::testing

#endif  // GRAIL_COORDINATOR_TESTING_FAKE_CLIENTS_H_
