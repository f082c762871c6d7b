#include "common/weights_stream.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail {
namespace {

using ::testing::HasSubstr;

std::string Blob(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 31 + 7);
  return s;
}

TEST(WeightsStreamTest, Sha256KnownVector) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(WeightsStreamTest, ChunksReassemble) {
  const std::string blob = Blob(10000);
  auto chunks = ChunkWeights(blob, 3, 4096);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[2].offset(), 8192);
  WeightsAssembler a;
  for (const auto& c : chunks) ASSERT_TRUE(a.Add(c).ok());
  auto out = a.Finish();
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, blob);
  EXPECT_EQ(a.version(), 3);
}

// The sender hashes as it chunks: only the last chunk carries the digest. A receiver takes
// the digest from whichever chunk names it (an older sender's on every chunk), and a stream
// that never names one, or names two, is refused.
TEST(WeightsStreamTest, TheDigestRidesOnTheLastChunk) {
  const std::string blob = Blob(10000);
  auto chunks = ChunkWeights(blob, 3, 4096);
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_TRUE(chunks[0].digest().empty());
  EXPECT_TRUE(chunks[1].digest().empty());
  EXPECT_EQ(chunks[2].digest(), Sha256Hex(blob));
  EXPECT_EQ(ChunkWeights("", 1)[0].digest(), Sha256Hex(""));

  auto everywhere = chunks;
  for (auto& c : everywhere) c.set_digest(Sha256Hex(blob));
  WeightsAssembler older;
  for (const auto& c : everywhere) ASSERT_TRUE(older.Add(c).ok());
  EXPECT_EQ(older.digest(), Sha256Hex(blob));
  ASSERT_TRUE(older.Finish().ok());

  auto none = chunks;
  none[2].clear_digest();
  WeightsAssembler unnamed;
  for (const auto& c : none) ASSERT_TRUE(unnamed.Add(c).ok());
  EXPECT_THAT(std::string(unnamed.Finish().status().message()), HasSubstr("no digest"));
  WeightsAssembler unnamed_relay(kMaxWeightsBytes, DigestCheck::kLeaveToReceivers);
  for (const auto& c : none) ASSERT_TRUE(unnamed_relay.Add(c).ok());
  EXPECT_FALSE(unnamed_relay.Finish().ok());

  auto two = chunks;
  two[0].set_digest(Sha256Hex("something else"));
  WeightsAssembler changed;
  ASSERT_TRUE(changed.Add(two[0]).ok());
  ASSERT_TRUE(changed.Add(two[1]).ok());
  EXPECT_THAT(std::string(changed.Add(two[2]).message()), HasSubstr("digest changed"));

  auto malformed = chunks;
  malformed[1].set_digest("abc");
  WeightsAssembler bad;
  ASSERT_TRUE(bad.Add(malformed[0]).ok());
  EXPECT_THAT(std::string(bad.Add(malformed[1]).message()), HasSubstr("not a SHA-256"));
}

TEST(WeightsStreamTest, CorruptedStreamFailsDigest) {
  auto chunks = ChunkWeights(Blob(5000), 1, 1024);
  (*chunks[2].mutable_data())[10] ^= 1;
  WeightsAssembler a;
  for (const auto& c : chunks) ASSERT_TRUE(a.Add(c).ok());
  auto out = a.Finish();
  EXPECT_EQ(out.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(out.status().message()), HasSubstr("digest mismatch"));
}

TEST(WeightsStreamTest, ARelayLeavesTheDigestToTheReceiversButStillChecksTheFraming) {
  const std::string blob = Blob(5000);
  auto chunks = ChunkWeights(blob, 1, 1024);
  (*chunks[2].mutable_data())[10] ^= 1;
  WeightsAssembler relay(kMaxWeightsBytes, DigestCheck::kLeaveToReceivers);
  for (const auto& c : chunks) ASSERT_TRUE(relay.Add(c).ok());
  EXPECT_EQ(relay.digest(), Sha256Hex(blob));
  auto out = relay.Finish();
  ASSERT_TRUE(out.ok()) << out.status();  // not hashed: the corrupt byte passes the relay
  EXPECT_NE(*out, blob);
  WeightsAssembler short_relay(kMaxWeightsBytes, DigestCheck::kLeaveToReceivers);
  ASSERT_TRUE(short_relay.Add(chunks[0]).ok());
  EXPECT_EQ(short_relay.Finish().status().code(), absl::StatusCode::kDataLoss);
  WeightsAssembler skipped(kMaxWeightsBytes, DigestCheck::kLeaveToReceivers);
  ASSERT_TRUE(skipped.Add(chunks[0]).ok());
  EXPECT_FALSE(skipped.Add(chunks[2]).ok());
}

TEST(WeightsStreamTest, PartialStreamIsDataLoss) {
  auto chunks = ChunkWeights(Blob(5000), 1, 1024);
  WeightsAssembler a;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) ASSERT_TRUE(a.Add(chunks[i]).ok());
  EXPECT_THAT(std::string(a.Finish().status().message()), HasSubstr("stream ended after 4096 of 5000"));
  EXPECT_EQ(WeightsAssembler().Finish().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(WeightsStreamTest, OutOfOrderAndInconsistentChunksAreRejected) {
  auto chunks = ChunkWeights(Blob(5000), 1, 1024);
  WeightsAssembler a;
  ASSERT_TRUE(a.Add(chunks[0]).ok());
  EXPECT_THAT(std::string(a.Add(chunks[2]).message()), HasSubstr("offset 2048, expected 1024"));
  WeightsAssembler b;
  ASSERT_TRUE(b.Add(chunks[0]).ok());
  auto changed = chunks[1];
  changed.set_version(2);
  EXPECT_FALSE(b.Add(changed).ok());
  WeightsAssembler small(100);
  EXPECT_THAT(std::string(small.Add(chunks[0]).message()), HasSubstr("total_bytes"));
  auto overflow = ChunkWeights(Blob(10), 1, 1024)[0];
  overflow.mutable_data()->append("xx");
  WeightsAssembler c;
  EXPECT_THAT(std::string(c.Add(overflow).message()), HasSubstr("runs past"));
}

}  // namespace
}  // namespace grail
