#include "coordinator/run_state.h"

#include <google/protobuf/util/json_util.h>

#include "absl/strings/str_cat.h"

namespace grail::coordinator {

std::string EncodeLoopState(grail::v1::LoopState state) {
  state.set_format(kLoopStateFormat);
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(state, &out, options);  // cannot fail for this message
  return out;
}

absl::StatusOr<grail::v1::LoopState> DecodeLoopState(absl::string_view text) {
  grail::v1::LoopState state;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto parsed = google::protobuf::util::JsonStringToMessage(std::string(text), &state, options);
  if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("not a loop state: ", parsed.message().ToString()));
  if (state.format() != kLoopStateFormat) {
    return absl::InvalidArgumentError(absl::StrCat("format '", state.format(), "', expected ", kLoopStateFormat));
  }
  if (state.step() < 0 || state.next_prompt_id() < 0) return absl::InvalidArgumentError("negative step or prompt id");
  return state;
}

}  // namespace grail::coordinator
