#include "common/retry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail {
namespace {

TEST(RetryTest, TransientFailuresAreRetriedWithBackoffOnTheInjectedClock) {
  FakeClock clock;
  int calls = 0, retries = 0;
  absl::Status s = CallWithRetries("peer", RetryPolicy{}, &clock, {[&] { ++retries; }, nullptr}, [&] {
    return ++calls < 3 ? absl::UnavailableError("away") : absl::OkStatus();
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(retries, 2);
  EXPECT_EQ(clock.slept(), absl::Milliseconds(400 + 800));
}

TEST(RetryTest, ARefusalIsReturnedAtOnce) {
  FakeClock clock;
  int calls = 0;
  absl::StatusOr<int> r = CallWithRetries("peer", RetryPolicy{}, &clock, {}, [&]() -> absl::StatusOr<int> {
    ++calls;
    return absl::InvalidArgumentError("bad");
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(clock.slept(), absl::ZeroDuration());
}

TEST(RetryTest, WithoutARecoveryBoundTheLastFailureIsReturnedAfterTheAttempts) {
  FakeClock clock;
  int calls = 0;
  absl::Status s = CallWithRetries("peer", RetryPolicy{}, &clock, {}, [&] {
    ++calls;
    return absl::UnavailableError("away");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "away");
  EXPECT_EQ(calls, 3);
}

TEST(RetryTest, APeerAwayPastTheRecoveryBoundEndsTheCallNamingIt) {
  FakeClock clock;
  RetryPolicy policy;
  policy.recovery_timeout = absl::Seconds(10);
  int calls = 0;
  absl::Status s = CallWithRetries("reward", policy, &clock, {}, [&] {
    ++calls;
    return absl::UnavailableError("Socket closed");
  });
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "reward: Socket closed (not recovered within 10s)");
  EXPECT_GE(clock.slept(), absl::Seconds(10));
  EXPECT_LE(clock.slept(), absl::Seconds(11));
  EXPECT_GT(calls, 8);  // one try per recovery interval after the quick ones
}

TEST(RetryTest, APeerBackWithinTheBoundIsWaitedFor) {
  FakeClock clock;
  RetryPolicy policy;
  policy.recovery_timeout = absl::Seconds(10);
  int calls = 0;
  absl::StatusOr<int> r = CallWithRetries("reward", policy, &clock, {}, [&]() -> absl::StatusOr<int> {
    if (++calls < 6) return absl::UnavailableError("away");
    return 7;
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 7);
}

TEST(RetryTest, CancellationStopsTheRecoveryWait) {
  FakeClock clock;
  RetryPolicy policy;
  policy.recovery_timeout = absl::Hours(1);
  int calls = 0;
  absl::Status s = CallWithRetries(
      "reward", policy, &clock, {nullptr, [&] { return calls >= 5 ? absl::CancelledError("run cancelled") : absl::OkStatus(); }},
      [&] {
        ++calls;
        return absl::UnavailableError("away");
      });
  EXPECT_EQ(s.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 5);
}

TEST(RetryTest, TransientCodes) {
  EXPECT_TRUE(IsTransient(absl::UnavailableError("")));
  EXPECT_TRUE(IsTransient(absl::DeadlineExceededError("")));
  EXPECT_TRUE(IsTransient(absl::ResourceExhaustedError("")));
  EXPECT_FALSE(IsTransient(absl::FailedPreconditionError("")));
  EXPECT_FALSE(IsTransient(absl::InvalidArgumentError("")));
  EXPECT_FALSE(IsTransient(absl::OkStatus()));
}

}  // namespace
}  // namespace grail
