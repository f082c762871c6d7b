#include "coordinator/weights_tracker.h"

#include "common/status_macros.h"
#include "common/weights_stream.h"
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

// A learner whose weights arrive in chunks of 3 bytes, and whose stream can break after the
// first chunk or carry a flipped bit under the digest of the true bytes. Like the real
// client, it returns the bytes it streamed, unhashed, with the digest the stream named.
class ChunkedLearner : public testing::FakeLearnerClient {
 public:
  std::atomic<bool> break_stream{false}, corrupt_stream{false};
  absl::StatusOr<Weights> StreamWeights(int64_t min_version, grail::v1::WeightsPart part,
                                        const ChunkSink& sink) override {
    ASSIGN_OR_RETURN(Weights w, GetWeights(min_version, part));
    auto chunks = ChunkWeights(w.blob, w.version, /*chunk_bytes=*/3);
    Weights streamed{"", w.version, chunks.back().digest()};  // the digest rides on the last chunk
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (break_stream && i == 1) return absl::UnavailableError("learner: stream broken");
      if (corrupt_stream && i == 1) (*chunks[i].mutable_data())[0] ^= 1;
      streamed.blob += chunks[i].data();
      sink(std::move(chunks[i]));
    }
    return streamed;
  }
};

// An actor that takes weights as a stream, verifying them as the real one does, and counts
// the chunks it was written and the loads that arrived whole (through either path).
class StreamingActor : public testing::FakeActorClient {
 public:
  std::atomic<int> chunks{0}, streamed_loads{0};
  std::string last_blob;

  std::unique_ptr<actor::WeightsUpload> StartWeightsUpload() override {
    class Upload : public actor::WeightsUpload {
     public:
      explicit Upload(StreamingActor* actor) : actor_(actor) {}
      bool Write(const grail::v1::WeightsChunk& chunk) override {
        ++actor_->chunks;
        if (bad_.ok()) bad_ = assembler_.Add(chunk);
        return true;
      }
      absl::StatusOr<grail::v1::LoadWeightsResponse> Finish() override {
        RETURN_IF_ERROR(bad_);
        ASSIGN_OR_RETURN(actor_->last_blob, assembler_.Finish());
        actor_->version = assembler_.version();
        ++actor_->streamed_loads;
        grail::v1::LoadWeightsResponse r;
        r.set_version(assembler_.version());
        return r;
      }

     private:
      StreamingActor* actor_;
      WeightsAssembler assembler_;
      absl::Status bad_;
    };
    return std::make_unique<Upload>(this);
  }
};

TEST(WeightsTrackerStreamTest, StreamsNewWeightsThroughToTheActorsBehindAndFallsBackForTheOthers) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  ChunkedLearner learner;
  auto streaming = std::make_shared<StreamingActor>();
  auto plain = std::make_shared<testing::FakeActorClient>();  // cannot stream: LoadWeights
  WeightsTracker tracker({streaming, plain}, &learner, &metrics, /*max_staleness=*/0);
  grail::v1::InitModelRequest init;
  const int64_t v1 = learner.InitModel(init)->weights_version();
  ASSERT_TRUE(tracker.KeepAndSync(0, v1).ok());
  const std::string blob = tracker.After(0)->blob;
  EXPECT_EQ(streaming->last_blob, blob);
  EXPECT_EQ(streaming->streamed_loads.load(), 1);
  EXPECT_EQ(streaming->chunks.load(), static_cast<int>((blob.size() + 2) / 3));
  EXPECT_THAT(tracker.ActorsHolding(v1), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(plain->version.load(), v1);

  // The same version again: nothing is fetched or sent.
  ASSERT_TRUE(tracker.KeepAndSync(1, v1).ok());
  EXPECT_EQ(tracker.After(1), tracker.After(0));
  EXPECT_EQ(streaming->streamed_loads.load(), 1);

  // A stream that breaks half-way: the run sees the learner's error, the actors keep
  // serving what they had (the relay cancels rather than finishes the upload).
  const int64_t v2 = learner.InitModel(init)->weights_version();
  learner.break_stream = true;
  absl::Status broken = tracker.KeepAndSync(2, v2);
  EXPECT_EQ(broken.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(streaming->version.load(), v1);
  EXPECT_EQ(streaming->streamed_loads.load(), 1);
  EXPECT_THAT(tracker.ActorsHolding(v1), ::testing::ElementsAre(0, 1));
  learner.break_stream = false;
  ASSERT_TRUE(tracker.KeepAndSync(2, v2).ok());
  EXPECT_THAT(tracker.ActorsHolding(v2), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(streaming->last_blob, tracker.After(2)->blob);

  // A stream whose bytes do not match its digest: the streaming actor refuses it, and the
  // coordinator, which did not hash it on the way through, does now. The error is the
  // learner's, nothing is kept, and no actor (streamed or not) loads the bytes.
  const int64_t v3 = learner.InitModel(init)->weights_version();
  learner.corrupt_stream = true;
  absl::Status corrupt = tracker.KeepAndSync(3, v3);
  EXPECT_EQ(corrupt.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(corrupt.message()), ::testing::HasSubstr("learner: weights version"));
  EXPECT_EQ(tracker.After(3), nullptr);
  EXPECT_THAT(tracker.ActorsHolding(v2), ::testing::ElementsAre(0, 1));
  EXPECT_EQ(streaming->streamed_loads.load(), 2);
}

// With no actor taking the stream (this one cannot stream: it loads the kept blob), no
// actor verifies it on the way: the coordinator hashes it before keeping it.
TEST(WeightsTrackerStreamTest, AStreamNoActorVerifiedIsHashedBeforeItIsKept) {
  prometheus::Registry registry;
  CoordinatorMetrics metrics(registry);
  ChunkedLearner learner;
  auto plain = std::make_shared<testing::FakeActorClient>();
  WeightsTracker tracker({plain}, &learner, &metrics, /*max_staleness=*/0);
  grail::v1::InitModelRequest init;
  const int64_t v1 = learner.InitModel(init)->weights_version();
  learner.corrupt_stream = true;
  EXPECT_EQ(tracker.KeepAndSync(0, v1).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(tracker.After(0), nullptr);
  EXPECT_EQ(plain->version.load(), -1);
  learner.corrupt_stream = false;
  ASSERT_TRUE(tracker.KeepAndSync(0, v1).ok());
  EXPECT_EQ(tracker.After(0)->digest, Sha256Hex(tracker.After(0)->blob));
}

}  // namespace
}  // namespace grail::coordinator
