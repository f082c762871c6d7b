#include "learner/checkpoint_manifest.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/weights_stream.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::learner {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

void Write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// A committed checkpoint as SaveCheckpoint writes one: files, manifest, COMMITTED.
fs::path MakeCheckpoint() {
  std::string tmpl = ::testing::TempDir() + "grail_ckpt_XXXXXX";
  const fs::path dir = mkdtemp(tmpl.data());
  const std::string model = std::string(4096, '\x01'), config = "{\"hidden_size\": 8}";
  Write(dir / "model.safetensors", model);
  Write(dir / "config.json", config);
  const std::string manifest = "{\"format\": \"grail-checkpoint-v1\", \"files\": {\"model.safetensors\": \"" +
                               Sha256Hex(model) + "\", \"config.json\": \"" + Sha256Hex(config) + "\"}}";
  Write(dir / "manifest.json", manifest);
  Write(dir / "COMMITTED", Sha256Hex(manifest));
  return dir;
}

TEST(CheckpointManifestTest, AcceptsACommittedCheckpointAndAPlainModelDir) {
  const fs::path dir = MakeCheckpoint();
  EXPECT_TRUE(VerifyCheckpointDir(dir.string(), "run-1/step-000001").ok());
  fs::remove(dir / "manifest.json");
  fs::remove(dir / "COMMITTED");
  EXPECT_TRUE(VerifyCheckpointDir(dir.string(), "hf-model").ok());  // nothing to check against
  fs::remove_all(dir);
}

TEST(CheckpointManifestTest, RefusesWithoutCommitted) {
  const fs::path dir = MakeCheckpoint();
  fs::remove(dir / "COMMITTED");
  absl::Status s = VerifyCheckpointDir(dir.string(), "run-1/step-000001");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(s.message()), HasSubstr("run-1/step-000001/COMMITTED"));
  EXPECT_THAT(std::string(s.message()), ::testing::Not(HasSubstr(dir.string())));
  fs::remove_all(dir);
}

TEST(CheckpointManifestTest, RefusesAFlippedByteInAnyFileNamingIt) {
  for (const char* name : {"model.safetensors", "config.json", "manifest.json"}) {
    const fs::path dir = MakeCheckpoint();
    std::fstream f(dir / name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(5);
    char c;
    f.read(&c, 1);
    c ^= 0x10;
    f.seekp(5);
    f.write(&c, 1);
    f.close();
    absl::Status s = VerifyCheckpointDir(dir.string(), "ckpt");
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(std::string(s.message()), HasSubstr(std::string("ckpt/") + name));
    fs::remove_all(dir);
  }
}

TEST(CheckpointManifestTest, RefusesATruncatedOrMissingFile) {
  const fs::path dir = MakeCheckpoint();
  fs::resize_file(dir / "model.safetensors", 100);
  EXPECT_THAT(std::string(VerifyCheckpointDir(dir.string(), "c").message()), HasSubstr("c/model.safetensors"));
  fs::remove(dir / "model.safetensors");
  EXPECT_EQ(VerifyCheckpointDir(dir.string(), "c").code(), absl::StatusCode::kDataLoss);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace grail::learner
