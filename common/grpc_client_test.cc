#include "common/grpc_client.h"

#include "common/grpc_status.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace grail {
namespace {

TEST(StallWatchdogTest, CancelsOnlyAStreamThatStopsMakingProgress) {
  grpc::ClientContext busy;
  {
    StallWatchdog watchdog(&busy, absl::Milliseconds(150));
    for (int i = 0; i < 20; ++i) {  // 400 ms of progress every 20 ms
      absl::SleepFor(absl::Milliseconds(20));
      watchdog.Progress();
    }
    EXPECT_FALSE(watchdog.stalled());
  }
  grpc::ClientContext silent;
  StallWatchdog watchdog(&silent, absl::Milliseconds(150));
  absl::SleepFor(absl::Milliseconds(400));
  EXPECT_TRUE(watchdog.stalled());
  grpc::ClientContext off;
  StallWatchdog disabled(&off, absl::ZeroDuration());
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_FALSE(disabled.stalled());
}

// A peer's failure names its role and address; OK stays OK.
TEST(PeerStatusTest, NamesThePeer) {
  absl::Status s = NamePeer(absl::UnavailableError("Socket closed"), "learner", "10.0.0.7:50051");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "learner 10.0.0.7:50051: Socket closed");
  EXPECT_TRUE(NamePeer(absl::OkStatus(), "learner", "x").ok());
}

}  // namespace
}  // namespace grail
