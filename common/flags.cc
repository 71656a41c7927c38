#include "common/flags.h"

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace ps {

std::vector<std::string> ParseFlags(int argc, char** argv, absl::string_view usage) {
  // absl's --help lists only flags defined in a file named after the binary; ours live
  // in main.cc and libraries. List every flag of ours, and none of abseil's own.
  absl::FlagsUsageConfig config;
  config.contains_help_flags = [](absl::string_view file) {
    return !absl::StrContains(file, "absl/");
  };
  config.contains_helpshort_flags = config.contains_help_flags;
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  return std::vector<std::string>(rest.begin(), rest.end());
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view field) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": \"", text, "\" is not host:port (", why, ")"));
  };
  HostPort out;
  absl::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return bad("unterminated [v6] address");
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("no port");
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) return bad("empty host");
  uint32_t port = 0;
  if (!absl::SimpleAtoi(port_text, &port) || port > 65535) return bad("bad port");
  out.port = static_cast<uint16_t>(port);
  return out;
}

absl::StatusOr<std::vector<HostPort>> ParseHostPortList(absl::string_view text,
                                                       absl::string_view field) {
  std::vector<HostPort> out;
  int i = 0;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    absl::StatusOr<HostPort> hp = ParseHostPort(item, absl::StrCat(field, "[", i++, "]"));
    if (!hp.ok()) return hp.status();
    out.push_back(*std::move(hp));
  }
  return out;
}

}  // namespace ps
