#include "common/retry.h"

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace grail {

namespace {

class RealClock : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  void SleepFor(absl::Duration d) override { absl::SleepFor(d); }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

bool IsTransient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s) || absl::IsUnknown(s);
}

absl::Status NotRecovered(absl::string_view role, const absl::Status& last, absl::Duration bound) {
  const std::string named = absl::StartsWith(last.message(), absl::StrCat(role, " "))
                                ? std::string(last.message())
                                : absl::StrCat(role, ": ", last.message());
  return absl::Status(last.code(),
                      absl::StrCat(named, " (not recovered within ", absl::FormatDuration(bound), ")"));
}

}  // namespace grail
