#include "tokenizer/tokenizer.h"

#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "tokenizer/char_tokenizer.h"
#include "tokenizer/hf_tokenizer.h"

namespace grail::tokenizer {

absl::StatusOr<std::unique_ptr<Tokenizer>> NewTokenizer(absl::string_view name, const std::string& data_root) {
  if (name.empty() || name == "char") return std::make_unique<CharTokenizer>();
  if (data_root.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("model.tokenizer: '", name, "' needs a data root to resolve under"));
  }
  absl::StatusOr<std::string> dir = ResolveUnderRoot(data_root, std::string(name), "model.tokenizer");
  if (!dir.ok()) return dir.status();
  auto tok = HfTokenizer::FromDir(*dir);
  if (!tok.ok()) {
    return absl::Status(tok.status().code(), absl::StrCat("model.tokenizer '", name, "': ",
                                                          WithoutRoot(tok.status(), data_root).message()));
  }
  return std::unique_ptr<Tokenizer>(std::move(*tok));
}

}  // namespace grail::tokenizer
