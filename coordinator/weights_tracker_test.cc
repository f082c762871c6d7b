#include "coordinator/weights_tracker.h"

#include "coordinator/testing/fake_clients.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

class WeightsTrackerTest : public ::testing::Test {
 protected:
  WeightsTrackerTest() {
    for (int i = 0; i < 2; ++i) actors_.push_back(std::make_shared<testing::FakeActorClient>());
  }
  std::unique_ptr<WeightsTracker> NewTracker(int max_staleness) {
    return std::make_unique<WeightsTracker>(
        std::vector<std::shared_ptr<actor::ActorClient>>{actors_[0], actors_[1]}, &learner_, &metrics_,
        max_staleness);
  }
  prometheus::Registry registry_;
  CoordinatorMetrics metrics_{registry_};
  testing::FakeLearnerClient learner_;
  std::vector<std::shared_ptr<testing::FakeActorClient>> actors_;
};

TEST_F(WeightsTrackerTest, KeepsWeightsPerStepAndDropsThoseNoBatchCanNeed) {
  auto tracker = NewTracker(/*max_staleness=*/1);
  grail::v1::InitModelRequest init;
  const int64_t v1 = learner_.InitModel(init)->weights_version();
  ASSERT_TRUE(tracker->Keep(0, v1).ok());
  ASSERT_TRUE(tracker->Keep(1, v1).ok());  // unchanged version: the same blob
  EXPECT_EQ(tracker->After(0), tracker->After(1));
  const int64_t v2 = learner_.InitModel(init)->weights_version();
  ASSERT_TRUE(tracker->Keep(2, v2).ok());
  EXPECT_EQ(tracker->After(2)->version, v2);
  EXPECT_NE(tracker->After(2), tracker->After(1));
  ASSERT_TRUE(tracker->Keep(3, v2).ok());
  // Batch 4 is the newest that can be collected with staleness 1: it needs step 2's weights.
  EXPECT_EQ(tracker->After(0), nullptr);
  EXPECT_NE(tracker->After(1), nullptr);
  EXPECT_EQ(tracker->After(7), nullptr);
}

TEST_F(WeightsTrackerTest, OnlyActorsThatLoadedAVersionMaySampleWithIt) {
  auto tracker = NewTracker(0);
  EXPECT_TRUE(tracker->ActorsHolding(-1).empty());
  auto v3 = std::make_shared<const learner::LearnerClient::Weights>(learner::LearnerClient::Weights{"w3", 3});
  actors_[1]->fail_loads = 1;
  ASSERT_TRUE(tracker->SyncActors(v3).ok());
  EXPECT_THAT(tracker->ActorsHolding(3), ::testing::ElementsAre(0));
  EXPECT_EQ(actors_[1]->version.load(), -1);
  // The next sync brings only the actor that is behind.
  ASSERT_TRUE(tracker->SyncActors(v3).ok());
  EXPECT_THAT(tracker->ActorsHolding(3), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(tracker->NewestActorVersion(), 3);

  auto v4 = std::make_shared<const learner::LearnerClient::Weights>(learner::LearnerClient::Weights{"w4", 4});
  actors_[0]->fail_loads = 1;
  actors_[1]->fail_loads = 1;
  absl::Status none = tracker->SyncActors(v4);
  EXPECT_EQ(none.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(none.message()), ::testing::HasSubstr("no actor holds version 4"));
  EXPECT_THAT(tracker->ActorsHolding(-1), ::testing::ElementsAre(0, 1));  // still on 3
  EXPECT_TRUE(tracker->ActorsHolding(4).empty());
  tracker->ForgetActorVersions();
  EXPECT_TRUE(tracker->ActorsHolding(-1).empty());
  EXPECT_EQ(tracker->SyncActors(nullptr).code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace grail::coordinator
