#ifndef GRAIL_COMMON_CONFIG_H_
#define GRAIL_COMMON_CONFIG_H_

#include <string>

#include <google/protobuf/message.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/grail/v1/common.pb.h"

namespace grail {

enum class ConfigFormat { kYaml, kJson };

// Fills `message` from YAML or JSON text, strictly: an unknown field, a value of the wrong
// type (a quoted number for an int field, 1.5 for an int, "yes" for a bool), an unknown enum
// name or an out-of-range integer is INVALID_ARGUMENT naming the field path
// (e.g. "trainer.total_steps"). Field names are the proto names; lowerCamel JSON names are
// accepted too. `message` is cleared first.
absl::Status ParseConfig(absl::string_view text, ConfigFormat format,
                         google::protobuf::Message* message);

// Reads a run spec from a file; the format follows the extension (.json, else YAML).
absl::StatusOr<grail::v1::RunSpec> LoadRunSpecFile(const std::string& path);

}  // namespace grail

#endif  // GRAIL_COMMON_CONFIG_H_
