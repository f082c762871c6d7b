#ifndef GRAIL_MODEL_SAFETENSORS_H_
#define GRAIL_MODEL_SAFETENSORS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail::model {

// One tensor inside a safetensors buffer. `data` points into the owning SafetensorsFile.
struct SafetensorsTensor {
  std::string dtype;            // "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;
  absl::string_view data;
};

// A parsed safetensors blob (https://huggingface.co/docs/safetensors format): an 8-byte
// little-endian header length, a JSON header, then the tensor bytes. Parsing checks every
// offset and size against the buffer, so a truncated or lying file is an error, never an
// out-of-bounds read. Immutable after Parse; thread-safe.
class SafetensorsFile {
 public:
  static absl::StatusOr<SafetensorsFile> Parse(std::string bytes);
  static absl::StatusOr<SafetensorsFile> Read(const std::string& path);

  // Tensors by name, in name order.
  const std::map<std::string, SafetensorsTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::shared_ptr<const std::string> bytes_;  // shared so that moves keep `data` views valid
  std::map<std::string, SafetensorsTensor> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Bytes per element of a safetensors dtype name, or 0 if unknown.
int64_t SafetensorsItemSize(absl::string_view dtype);

// Serializes tensors (laid out in name order, header padded to 8 bytes) with optional
// string metadata. The same input always gives the same bytes.
absl::StatusOr<std::string> SerializeSafetensors(
    const std::map<std::string, SafetensorsTensor>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Writes `bytes` to `path` atomically (temp file in the same directory, fsync, rename).
absl::Status WriteFileAtomically(const std::string& path, absl::string_view bytes);
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace grail::model

#endif  // GRAIL_MODEL_SAFETENSORS_H_
