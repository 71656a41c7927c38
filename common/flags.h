// Helpers for daemon command lines (absl flags) and network addresses.
#ifndef PS_COMMON_FLAGS_H_
#define PS_COMMON_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace ps {

// Sets the usage text shown by --help, parses the flags (exiting with a message on an
// unknown or malformed flag) and returns the positional arguments (argv[0] first).
std::vector<std::string> ParseFlags(int argc, char** argv, absl::string_view usage);

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// Parses "host:port" or "[v6]:port"; the port must be 0 .. 65535. INVALID_ARGUMENT
// naming `field` otherwise.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view field);

// Parses a comma-separated list of host:port (empty items are an error).
absl::StatusOr<std::vector<HostPort>> ParseHostPortList(absl::string_view text,
                                                       absl::string_view field);

}  // namespace ps

#endif  // PS_COMMON_FLAGS_H_
