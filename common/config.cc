#include "common/config.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "proto/grail/v1/common.pb.h"

namespace grail {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A quoted YAML scalar (or a JSON string) carries the non-specific tag "!"; plain ones "?".
bool IsQuoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "null";
    default:
      return absl::StrCat(IsQuoted(node) ? "the string " : "", "'", node.Scalar(), "'");
  }
}

absl::Status TypeError(const std::string& path, const FieldDescriptor* field,
                       const YAML::Node& node, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": expected ", expected, " for field of type ",
                                                 field->type_name(), ", got ", Describe(node)));
}

template <typename T>
absl::StatusOr<T> ParseInteger(const std::string& path, const FieldDescriptor* field,
                               const YAML::Node& node) {
  if (!node.IsScalar() || IsQuoted(node)) return TypeError(path, field, node, "an integer");
  T value;
  if (!absl::SimpleAtoi(node.Scalar(), &value)) {
    return TypeError(path, field, node,
                     absl::StrCat("an integer in [", std::numeric_limits<T>::min(), ", ",
                                  std::numeric_limits<T>::max(), "]"));
  }
  return value;
}

absl::StatusOr<double> ParseReal(const std::string& path, const FieldDescriptor* field,
                                 const YAML::Node& node) {
  if (!node.IsScalar() || IsQuoted(node)) return TypeError(path, field, node, "a number");
  double value;
  const std::string& s = node.Scalar();
  if (s == ".inf" || s == "-.inf" || s == ".nan" || !absl::SimpleAtod(s, &value) ||
      !std::isfinite(value)) {
    return TypeError(path, field, node, "a finite number");
  }
  if (field->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT &&
      std::fabs(value) > std::numeric_limits<float>::max()) {
    return TypeError(path, field, node, "a number within float range");
  }
  return value;
}

absl::Status FillMessage(const YAML::Node& node, const std::string& path, Message* message);

// Sets one value (a singular field, or appends to a repeated one).
absl::Status SetValue(const YAML::Node& node, const std::string& path,
                      const FieldDescriptor* field, Message* message) {
  const Reflection* r = message->GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      ASSIGN_OR_RETURN(int32_t v, ParseInteger<int32_t>(path, field, node));
      rep ? r->AddInt32(message, field, v) : r->SetInt32(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      ASSIGN_OR_RETURN(int64_t v, ParseInteger<int64_t>(path, field, node));
      rep ? r->AddInt64(message, field, v) : r->SetInt64(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      ASSIGN_OR_RETURN(uint32_t v, ParseInteger<uint32_t>(path, field, node));
      rep ? r->AddUInt32(message, field, v) : r->SetUInt32(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      ASSIGN_OR_RETURN(uint64_t v, ParseInteger<uint64_t>(path, field, node));
      rep ? r->AddUInt64(message, field, v) : r->SetUInt64(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_FLOAT: {
      ASSIGN_OR_RETURN(double v, ParseReal(path, field, node));
      rep ? r->AddFloat(message, field, static_cast<float>(v))
          : r->SetFloat(message, field, static_cast<float>(v));
      break;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      ASSIGN_OR_RETURN(double v, ParseReal(path, field, node));
      rep ? r->AddDouble(message, field, v) : r->SetDouble(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      if (!node.IsScalar() || IsQuoted(node) ||
          (node.Scalar() != "true" && node.Scalar() != "false")) {
        return TypeError(path, field, node, "true or false");
      }
      const bool v = node.Scalar() == "true";
      rep ? r->AddBool(message, field, v) : r->SetBool(message, field, v);
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!node.IsScalar()) return TypeError(path, field, node, "a string");
      rep ? r->AddString(message, field, node.Scalar())
          : r->SetString(message, field, node.Scalar());
      break;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      // A run spec names enum values as their spec_name option says ("dr_grpo"); the
      // proto's own names (ADVANTAGE_ESTIMATOR_DR_GRPO) are accepted too.
      const auto* type = field->enum_type();
      const google::protobuf::EnumValueDescriptor* value = nullptr;
      std::vector<std::string> spec_names, names;
      for (int i = 0; i < type->value_count(); ++i) {
        const auto* v = type->value(i);
        const std::string& spec_name = v->options().GetExtension(grail::v1::spec_name);
        if (!spec_name.empty()) spec_names.push_back(spec_name);
        names.push_back(v->name());
        if (node.IsScalar() && (node.Scalar() == v->name() || (!spec_name.empty() && node.Scalar() == spec_name))) {
          value = v;
        }
      }
      if (value == nullptr) {
        return TypeError(path, field, node,
                         absl::StrCat("one of ", absl::StrJoin(spec_names.empty() ? names : spec_names, ", ")));
      }
      rep ? r->AddEnum(message, field, value) : r->SetEnum(message, field, value);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      Message* child = rep ? r->AddMessage(message, field) : r->MutableMessage(message, field);
      return FillMessage(node, path, child);
    }
  }
  return absl::OkStatus();
}

absl::Status FillMessage(const YAML::Node& node, const std::string& path, Message* message) {
  const Descriptor* descriptor = message->GetDescriptor();
  if (node.IsNull()) return absl::OkStatus();
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(path.empty() ? "config" : path,
                                                   ": expected a mapping for ",
                                                   descriptor->name(), ", got ", Describe(node)));
  }
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    const std::string child_path = path.empty() ? key : absl::StrCat(path, ".", key);
    const FieldDescriptor* field = descriptor->FindFieldByName(key);
    if (field == nullptr) field = descriptor->FindFieldByCamelcaseName(key);
    if (field == nullptr) {
      std::vector<std::string> known;
      for (int i = 0; i < descriptor->field_count(); ++i) known.push_back(descriptor->field(i)->name());
      return absl::InvalidArgumentError(absl::StrCat(child_path, ": unknown field (", descriptor->name(),
                                                     " has: ", absl::StrJoin(known, ", "), ")"));
    }
    if (field->is_map()) {
      return absl::InvalidArgumentError(absl::StrCat(child_path, ": map fields are not configurable"));
    }
    if (field->is_repeated()) {
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsSequence()) {
        return absl::InvalidArgumentError(
            absl::StrCat(child_path, ": expected a list, got ", Describe(kv.second)));
      }
      message->GetReflection()->ClearField(message, field);
      for (size_t i = 0; i < kv.second.size(); ++i) {
        RETURN_IF_ERROR(SetValue(kv.second[i], absl::StrCat(child_path, "[", i, "]"), field, message));
      }
    } else {
      RETURN_IF_ERROR(SetValue(kv.second, child_path, field, message));
    }
  }
  return absl::OkStatus();
}

// JSON strings become quoted scalars; everything else keeps its literal spelling, so that the
// same strict typing rules apply to both formats.
YAML::Node JsonToYaml(const nlohmann::json& j) {
  YAML::Node node;
  switch (j.type()) {
    case nlohmann::json::value_t::object:
      node = YAML::Node(YAML::NodeType::Map);
      for (auto it = j.begin(); it != j.end(); ++it) node[it.key()] = JsonToYaml(it.value());
      break;
    case nlohmann::json::value_t::array:
      node = YAML::Node(YAML::NodeType::Sequence);
      for (const auto& e : j) node.push_back(JsonToYaml(e));
      break;
    case nlohmann::json::value_t::null:
      node = YAML::Node(YAML::NodeType::Null);
      break;
    case nlohmann::json::value_t::string:
      node = YAML::Node(j.get<std::string>());
      node.SetTag("!");
      break;
    default:
      node = YAML::Node(j.dump());
      node.SetTag("?");
      break;
  }
  return node;
}

}  // namespace

absl::Status ParseConfig(absl::string_view text, ConfigFormat format, Message* message) {
  message->Clear();
  YAML::Node root;
  if (format == ConfigFormat::kJson) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return absl::InvalidArgumentError("config: not valid JSON");
    root = JsonToYaml(j);
  } else {
    try {
      root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("config: not valid YAML: ", e.what()));
    }
  }
  return FillMessage(root, "", message);
}

absl::StatusOr<grail::v1::RunSpec> LoadRunSpecFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("spec file '", path, "' cannot be read"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  grail::v1::RunSpec spec;
  const ConfigFormat format =
      absl::EndsWith(absl::AsciiStrToLower(path), ".json") ? ConfigFormat::kJson : ConfigFormat::kYaml;
  absl::Status status = ParseConfig(buffer.str(), format, &spec);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
  }
  return spec;
}

}  // namespace grail
