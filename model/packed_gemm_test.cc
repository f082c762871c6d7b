#include "model/packed_gemm.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace grail::model {
namespace {

std::vector<float> Random(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = u(gen);
  return v;
}

// y = x W^T + b in double precision.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w,
                              const float* bias, int64_t m, int64_t n, int64_t k) {
  std::vector<double> y(m * n);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double s = bias != nullptr ? bias[j] : 0.0;
      for (int64_t i = 0; i < k; ++i) s += static_cast<double>(x[r * k + i]) * w[j * k + i];
      y[r * n + j] = s;
    }
  }
  return y;
}

std::vector<float> Multiply(const PackedWeight& p, const float* x, int64_t m, const float* bias) {
  std::vector<float> y(m * p.n(), -7.0f);
  p.Multiply(x, m, bias, y.data(), 0, p.panels());
  return y;
}

// Runs `body` once with each kernel this CPU can run, the best one restored after.
template <typename Body>
void ForEachIsa(Body body) {
  for (auto isa :
       {PackedWeight::Isa::kPortable, PackedWeight::Isa::kAvx2, PackedWeight::Isa::kAvx512}) {
    if (!PackedWeight::UseIsaForTesting(isa)) continue;
    SCOPED_TRACE(::testing::Message() << "isa " << static_cast<int>(isa));
    body();
  }
  PackedWeight::UseIsaForTesting(PackedWeight::BestIsa());
}

TEST(PackedWeightTest, MatchesADoublePrecisionProductOnRaggedShapes) {
  ForEachIsa([] {
    // Columns that leave the last panel partly filled, rows that leave blocks of the
    // row-block size part-used, and more rows than one chunk.
    for (auto [m, n, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {1, 1, 1}, {5, 77, 53}, {17, 32, 64}, {64, 96, 256}, {203, 45, 19}}) {
      auto w = Random(n * k, 1), x = Random(m * k, 2), b = Random(n, 3);
      PackedWeight p(w.data(), n, k);
      EXPECT_EQ(p.panels(), (n + 31) / 32);
      for (const float* bias :
           {static_cast<const float*>(nullptr), static_cast<const float*>(b.data())}) {
        auto y = Multiply(p, x.data(), m, bias);
        auto want = Reference(x, w, bias, m, n, k);
        for (int64_t i = 0; i < m * n; ++i) {
          ASSERT_NEAR(y[i], want[i], 1e-5 * std::sqrt(static_cast<double>(k)) + 1e-6)
              << "m " << m << " n " << n << " k " << k << " element " << i;
        }
      }
    }
  });
}

TEST(PackedWeightTest, ARowsResultDoesNotDependOnTheOtherRowsOrThePanelSplit) {
  ForEachIsa([] {
    const int64_t m = 37, n = 70, k = 91;
    auto w = Random(n * k, 4), x = Random(m * k, 5), b = Random(n, 6);
    PackedWeight p(w.data(), n, k);
    auto all = Multiply(p, x.data(), m, b.data());
    for (int64_t r = 0; r < m; ++r) {
      auto alone = Multiply(p, x.data() + r * k, 1, b.data());
      EXPECT_EQ(std::memcmp(alone.data(), all.data() + r * n, n * sizeof(float)), 0) << "row " << r;
    }
    // Rows 3.. as a batch of their own (a different position in every row block).
    auto tail = Multiply(p, x.data() + 3 * k, m - 3, b.data());
    EXPECT_EQ(std::memcmp(tail.data(), all.data() + 3 * n, (m - 3) * n * sizeof(float)), 0);
    // Panels split as two threads would take them.
    std::vector<float> split(m * n, -7.0f);
    p.Multiply(x.data(), m, b.data(), split.data(), 0, 1);
    p.Multiply(x.data(), m, b.data(), split.data(), 1, p.panels());
    EXPECT_EQ(std::memcmp(split.data(), all.data(), all.size() * sizeof(float)), 0);
  });
}

TEST(PackedWeightTest, WritesOnlyItsPanelsColumns) {
  const int64_t m = 4, n = 70, k = 8;
  auto w = Random(n * k, 7), x = Random(m * k, 8);
  PackedWeight p(w.data(), n, k);
  std::vector<float> y(m * n, -7.0f);
  p.Multiply(x.data(), m, nullptr, y.data(), 1, 2);  // columns 32..63
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      if (j >= 32 && j < 64) {
        EXPECT_NE(y[r * n + j], -7.0f);
      } else {
        EXPECT_EQ(y[r * n + j], -7.0f) << "row " << r << " column " << j;
      }
    }
  }
}

}  // namespace
}  // namespace grail::model
