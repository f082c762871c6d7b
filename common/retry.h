#ifndef GRAIL_COMMON_RETRY_H_
#define GRAIL_COMMON_RETRY_H_

#include <functional>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace grail {

// Whether a failed call may succeed if repeated (the peer was away, busy or restarting); a
// refusal of the request itself (bad argument, failed precondition, ...) is final.
bool IsTransient(const absl::Status& status);

// How a client decorator repeats transiently failing calls: `attempts` tries with
// exponential backoff (initial_backoff, doubled each time); then, while the peer stays away
// (transient failures), one more try every `recovery_interval` until `recovery_timeout` has
// passed since the first failure. A zero recovery_timeout gives up after `attempts`.
struct RetryPolicy {
  int attempts = 3;
  absl::Duration initial_backoff = absl::Milliseconds(400);
  absl::Duration recovery_timeout = absl::ZeroDuration();
  absl::Duration recovery_interval = absl::Seconds(1);
};

// What a retry loop reports and checks between tries. All optional.
struct RetryHooks {
  std::function<void()> on_retry;                // before each repeated try (a metric)
  std::function<absl::Status()> check_cancelled;  // non-OK stops waiting with that status
};

// The error a call ends with when `role`'s peer stayed away past `bound`.
absl::Status NotRecovered(absl::string_view role, const absl::Status& last, absl::Duration bound);

// Calls `fn` (returning absl::Status or absl::StatusOr<T>) under `policy`. Returns the first
// success, the first non-transient failure, or (past the recovery bound) NotRecovered.
template <typename Fn>
auto CallWithRetries(absl::string_view role, const RetryPolicy& policy, Clock* clock, const RetryHooks& hooks,
                     Fn fn) -> decltype(fn()) {
  auto status_of = [](const auto& result) -> absl::Status {
    if constexpr (std::is_same_v<std::decay_t<decltype(result)>, absl::Status>) {
      return result;
    } else {
      return result.status();
    }
  };
  const absl::Time start = clock->Now();
  auto result = fn();
  absl::Duration backoff = policy.initial_backoff;
  for (int attempt = 1;; ++attempt) {
    const absl::Status status = status_of(result);
    if (status.ok() || !IsTransient(status)) return result;
    if (attempt >= policy.attempts) {
      if (clock->Now() - start >= policy.recovery_timeout) {
        if (policy.recovery_timeout <= absl::ZeroDuration()) return result;
        return NotRecovered(role, status, policy.recovery_timeout);
      }
      if (hooks.check_cancelled) {
        absl::Status cancelled = hooks.check_cancelled();
        if (!cancelled.ok()) return cancelled;
      }
      clock->SleepFor(policy.recovery_interval);
    } else {
      clock->SleepFor(backoff);
      backoff *= 2;
      if (hooks.on_retry) hooks.on_retry();
    }
    result = fn();
  }
}

}  // namespace grail

#endif  // GRAIL_COMMON_RETRY_H_
