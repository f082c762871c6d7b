#include "coordinator/dataset.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "algo/run_spec.h"

#include "absl/strings/str_cat.h"

namespace grail::coordinator {

absl::StatusOr<Splits> MakeArithmeticSplits(const ArithmeticOptions& o) {
  if (o.max_digits < 1 || o.max_digits > 9) {
    return absl::InvalidArgumentError("dataset.max_digits: must be in [1, 9]");
  }
  if (o.heldout_size < 0 || o.train_size < 0) {
    return absl::InvalidArgumentError("dataset: sizes must be >= 0");
  }
  int64_t limit = 1;
  for (int i = 0; i < o.max_digits; ++i) limit *= 10;
  const int64_t space = limit * limit;
  const int64_t heldout = o.heldout_size > 0 ? o.heldout_size : algo::DefaultHeldoutSize(space);
  // Unset train_size takes every remaining problem, up to kDefaultMaxTrain (9 digits have
  // 10^18 of them).
  const int64_t train = o.train_size > 0 ? o.train_size : std::min(space - heldout, kDefaultMaxTrain);
  if (heldout + train > kMaxProblems) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: ", heldout, " held-out + ", train,
                                                   " train problems are above the limit of ", kMaxProblems));
  }
  if (heldout + train > space || train <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("dataset: ", heldout, " held-out + ", train,
                                                   " train problems exceed the ", space,
                                                   " distinct problems of ", o.max_digits, " digits"));
  }
  std::mt19937_64 rng(o.seed);
  std::vector<int64_t> codes;
  if (space <= 4 * (heldout + train)) {
    codes.resize(space);
    std::iota(codes.begin(), codes.end(), 0);
    std::shuffle(codes.begin(), codes.end(), rng);
    codes.resize(heldout + train);
  } else {
    std::set<int64_t> seen;
    std::uniform_int_distribution<int64_t> dist(0, space - 1);
    while (static_cast<int64_t>(codes.size()) < heldout + train) {
      const int64_t c = dist(rng);
      if (seen.insert(c).second) codes.push_back(c);
    }
  }
  auto make = [&](int64_t code) {
    const int64_t a = code / limit, b = code % limit;
    // No verifier of its own: the run's reward.verifier (math by default; rm for RLHF
    // against a reward model) scores it.
    return Problem{absl::StrCat(a, "+", b, "="), absl::StrCat(a + b), "", ""};
  };
  std::vector<Problem> h, t;
  for (int64_t i = 0; i < heldout; ++i) h.push_back(make(codes[i]));
  for (int64_t i = heldout; i < heldout + train; ++i) t.push_back(make(codes[i]));
  return Splits{Dataset(std::move(t)), Dataset(std::move(h))};
}

DatasetCursor::DatasetCursor(size_t size, uint64_t seed, State state)
    : size_(size), seed_(seed), state_(state) {
  Shuffle();
}

void DatasetCursor::Shuffle() {
  order_.resize(size_);
  std::iota(order_.begin(), order_.end(), size_t{0});
  std::mt19937_64 rng(seed_ ^ (0x9E3779B97F4A7C15ull * (state_.epoch + 1)));
  std::shuffle(order_.begin(), order_.end(), rng);
}

size_t DatasetCursor::Next() {
  if (state_.offset >= size_) {
    ++state_.epoch;
    state_.offset = 0;
    Shuffle();
  }
  return order_[state_.offset++];
}

}  // namespace grail::coordinator
