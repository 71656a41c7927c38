#include "common/auth.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

ABSL_FLAG(std::string, auth_token_file, "",
          "File holding the bearer token (one line). Coordinator: client calls (submit, "
          "status, list, cancel, watch, cluster) must send it, else UNAUTHENTICATED. "
          "psctl: sent as \"authorization: Bearer <token>\". Empty: no token.");

namespace ps {

std::string AuthTokenFileFromFlag() { return absl::GetFlag(FLAGS_auth_token_file); }

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // Walk the longer input in full; a length difference makes the result false without
  // an early exit.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  // Keep the compiler from turning the loop into an early-exit compare.
  volatile unsigned char result = diff;
  return result == 0;
}

absl::StatusOr<std::string> ParseToken(absl::string_view contents, absl::string_view flag) {
  while (!contents.empty() && (contents.back() == '\n' || contents.back() == '\r' ||
                               contents.back() == ' ' || contents.back() == '\t')) {
    contents.remove_suffix(1);
  }
  if (contents.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": the token file is empty"));
  }
  if (contents.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": the token is ", contents.size(), " bytes; at most 4096"));
  }
  for (char c : contents) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, ": the token must be one line of printable ASCII without spaces"));
    }
  }
  return std::string(contents);
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": cannot read \"", path, "\": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return absl::InvalidArgumentError(absl::StrCat(flag, ": cannot read \"", path, "\""));
  return ParseToken(text.str(), flag);
}

std::string BearerValue(absl::string_view token) { return absl::StrCat("Bearer ", token); }

absl::Status CheckBearer(absl::optional<absl::string_view> header, absl::string_view expected) {
  if (!header.has_value()) {
    return absl::UnauthenticatedError(
        "authorization: missing; this coordinator needs \"authorization: Bearer <token>\" "
        "(psctl --auth_token_file)");
  }
  constexpr absl::string_view kScheme = "bearer ";
  absl::string_view value = *header;
  if (value.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("authorization: not a Bearer token");
  }
  value.remove_prefix(kScheme.size());
  if (expected.empty() || !ConstantTimeEquals(value, expected)) {
    return absl::UnauthenticatedError("authorization: wrong bearer token");
  }
  return absl::OkStatus();
}

}  // namespace ps
