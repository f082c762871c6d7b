#ifndef GRAIL_COMMON_NET_ADDRESS_H_
#define GRAIL_COMMON_NET_ADDRESS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace grail {

struct HostPort {
  std::string host;  // without brackets for IPv6
  int port = 0;
};

// Parses "HOST:PORT" or "[V6]:PORT". `field` names the flag or option in errors.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address, absl::string_view field);

// Formats as "HOST:PORT", bracketing IPv6 hosts.
std::string FormatHostPort(const std::string& host, int port);

}  // namespace grail

#endif  // GRAIL_COMMON_NET_ADDRESS_H_
