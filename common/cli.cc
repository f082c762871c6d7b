#include "common/cli.h"

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/flags/internal/usage.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"

namespace grail {

std::vector<std::string> ParseCommandLineOrExit(int argc, char** argv, const std::string& usage) {
  absl::SetProgramUsageMessage(usage);
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0 ||
        std::strcmp(argv[i], "--helpfull") == 0) {
      // absl's own --help exits 1; a help request is not an error.
      absl::flags_internal::FlagsHelp(
          std::cout, std::strcmp(argv[i], "--helpfull") == 0 ? "" : "_main.",
          absl::flags_internal::HelpFormat::kHumanReadable, usage);
      std::cout.flush();
      std::exit(0);
    }
  }
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(positional.begin(), positional.end());
}

}  // namespace grail
