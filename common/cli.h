#ifndef GRAIL_COMMON_CLI_H_
#define GRAIL_COMMON_CLI_H_

#include <string>
#include <vector>

namespace grail {

// Parses absl flags for a grail binary. `--help` (or `-h`) prints `usage` and the binary's
// own flags (those defined in *_main.cc files) to stdout and exits 0. Unknown flags print an
// error and exit 2. Returns the positional arguments, argv[0] first.
std::vector<std::string> ParseCommandLineOrExit(int argc, char** argv, const std::string& usage);

}  // namespace grail

#endif  // GRAIL_COMMON_CLI_H_
