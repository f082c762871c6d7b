#include "learner/checkpoint_manifest.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/weights_stream.h"
#include "model/safetensors.h"

namespace grail::learner {

absl::Status VerifyCheckpointDir(const std::string& dir, const std::string& display_dir) {
  namespace fs = std::filesystem;
  const fs::path root(dir);
  const bool has_manifest = fs::exists(root / "manifest.json"), has_marker = fs::exists(root / "COMMITTED");
  if (!has_manifest && !has_marker) return absl::OkStatus();
  auto named = [&](absl::string_view file) { return absl::StrCat(display_dir, "/", file); };
  if (!has_marker) {
    return absl::DataLossError(absl::StrCat(named("COMMITTED"), ": missing; the checkpoint was never committed"));
  }
  if (!has_manifest) return absl::DataLossError(absl::StrCat(named("manifest.json"), ": missing"));
  auto manifest_text = model::ReadFileToString((root / "manifest.json").string());
  auto marker = model::ReadFileToString((root / "COMMITTED").string());
  if (!manifest_text.ok()) return absl::DataLossError(absl::StrCat(named("manifest.json"), ": cannot be read"));
  if (!marker.ok()) return absl::DataLossError(absl::StrCat(named("COMMITTED"), ": cannot be read"));
  if (*marker != Sha256Hex(*manifest_text)) {
    return absl::DataLossError(absl::StrCat(named("manifest.json"), ": does not match the digest in COMMITTED"));
  }
  nlohmann::json manifest = nlohmann::json::parse(*manifest_text, nullptr, /*allow_exceptions=*/false);
  if (!manifest.is_object() || !manifest.contains("files") || !manifest["files"].is_object() ||
      manifest["files"].empty()) {
    return absl::DataLossError(absl::StrCat(named("manifest.json"), ": lists no files"));
  }
  for (auto it = manifest["files"].begin(); it != manifest["files"].end(); ++it) {
    const std::string& name = it.key();
    // Names are plain file names inside the checkpoint; anything else is not ours.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        !it.value().is_string()) {
      return absl::DataLossError(absl::StrCat(named("manifest.json"), ": bad file entry '", name.substr(0, 64), "'"));
    }
    auto bytes = model::ReadFileToString((root / name).string());
    if (!bytes.ok()) return absl::DataLossError(absl::StrCat(named(name), ": missing"));
    if (Sha256Hex(*bytes) != it.value().get<std::string>()) {
      return absl::DataLossError(absl::StrCat(named(name), ": does not match its SHA-256 in manifest.json"));
    }
  }
  return absl::OkStatus();
}

}  // namespace grail::learner
