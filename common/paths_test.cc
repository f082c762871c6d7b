#include "common/paths.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace grail {
namespace {

TEST(PathsTest, ResolvesInsideRootAndRefusesEscapes) {
  namespace fs = std::filesystem;
  std::string tmpl = ::testing::TempDir() + "grail_root_XXXXXX";
  const fs::path root = mkdtemp(tmpl.data());
  fs::create_directories(root / "models" / "a");
  auto ok = ResolveUnderRoot(root, "models/a", "model.path");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, fs::canonical(root / "models" / "a").string());
  EXPECT_TRUE(ResolveUnderRoot(root, (root / "models/new").string(), "x").ok());

  auto up = ResolveUnderRoot(root, "../etc/passwd", "model.path");
  EXPECT_EQ(up.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(up.status().message().find("model.path"), std::string::npos);
  EXPECT_FALSE(ResolveUnderRoot(root, "/etc", "x").ok());
  EXPECT_FALSE(ResolveUnderRoot(root, "models/../../x", "x").ok());
  // A prefix that is not a path component does not count as inside.
  fs::create_directories(root.string() + "_sibling");
  EXPECT_FALSE(ResolveUnderRoot(root, root.string() + "_sibling", "x").ok());
  fs::create_directory_symlink("/etc", root / "link");
  EXPECT_FALSE(ResolveUnderRoot(root, "link/passwd", "x").ok());
  EXPECT_FALSE(ResolveUnderRoot(root, "", "x").ok());
  fs::remove_all(root);
  fs::remove_all(root.string() + "_sibling");
}

TEST(PathsTest, ErrorsNeverNameTheRoot) {
  namespace fs = std::filesystem;
  std::string tmpl = ::testing::TempDir() + "grail_root_XXXXXX";
  const fs::path root = mkdtemp(tmpl.data());
  const std::string abs = fs::canonical(root).string();
  auto outside = ResolveUnderRoot(root, "/etc", "model.path");
  EXPECT_EQ(std::string(outside.status().message()).find(abs), std::string::npos) << outside.status();
  absl::Status s = WithoutRoot(
      absl::DataLossError("cannot open " + abs + "/run-1/step-000001/model.safetensors (root " + abs + ")"),
      root.string());
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.message(), "cannot open run-1/step-000001/model.safetensors (root <data root>)");
  EXPECT_TRUE(WithoutRoot(absl::OkStatus(), root.string()).ok());
  fs::remove_all(root);
}

}  // namespace
}  // namespace grail
