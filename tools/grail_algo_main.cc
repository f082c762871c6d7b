// grail-algo: runs the project's RL math on conformance cases (see
// shared/conformance/FORMAT.md). This version knows no functions yet: every case is reported
// as unsupported and the exit status is non-zero.

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/cli.h"

namespace {

constexpr char kUsage[] =
    "grail-algo: evaluate the project's RL math on conformance cases.\n"
    "Usage: grail-algo eval CASES.jsonl\n"
    "Prints one JSON line per case: {\"id\": ..., \"outputs\": {...}} or {\"id\": ..., \"error\": ...};\n"
    "exits non-zero if any case could not be computed.";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = grail::ParseCommandLineOrExit(argc, argv, kUsage);
  if (args.size() != 3 || args[1] != "eval") {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  std::ifstream in(args[2]);
  if (!in) {
    std::cerr << "grail-algo: cannot read " << args[2] << std::endl;
    return 2;
  }
  std::string line;
  int line_no = 0, failed = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json c = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    nlohmann::json out;
    out["id"] = c.is_object() && c.contains("id") ? c["id"] : nlohmann::json(line_no);
    if (!c.is_object() || !c.contains("fn") || !c["fn"].is_string()) {
      out["error"] = "line " + std::to_string(line_no) + ": not a case object with a string fn";
    } else {
      out["error"] = "fn '" + c["fn"].get<std::string>() + "' is not supported yet";
    }
    ++failed;
    std::cout << out.dump() << "\n";
  }
  std::cout.flush();
  return failed == 0 ? 0 : 1;
}
