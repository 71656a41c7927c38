// Bearer tokens on the coordinator's client-facing calls (--auth_token_file).
//
// The token file holds one token (trailing whitespace and newlines are stripped). A
// client sends it as the gRPC metadata `authorization: Bearer <token>`; the server
// compares it in constant time. No gRPC types here: the service converts metadata.
#ifndef PS_COMMON_AUTH_H_
#define PS_COMMON_AUTH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/optional.h"

namespace ps {

// The metadata key (lowercase, as gRPC requires).
inline constexpr char kAuthorizationKey[] = "authorization";

// The value of --auth_token_file (empty = no token).
std::string AuthTokenFileFromFlag();

// True when `a` and `b` are equal. Its time depends on the lengths only, never on
// where the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// Parses the contents of a token file: trailing spaces, tabs, CR and LF are stripped.
// INVALID_ARGUMENT naming `flag` when what remains is empty, holds whitespace or
// control characters (it must fit in one metadata value), or is over 4096 bytes.
absl::StatusOr<std::string> ParseToken(absl::string_view contents, absl::string_view flag);

// Reads and parses the token file at `path`; INVALID_ARGUMENT naming `flag` when it
// cannot be read or ParseToken refuses it.
absl::StatusOr<std::string> ReadTokenFile(const std::string& path, absl::string_view flag);

// "Bearer <token>", the metadata value a client sends.
std::string BearerValue(absl::string_view token);

// OK when `header` (the authorization metadata, absent when nullopt) is "Bearer
// <expected>" (scheme case-insensitive); UNAUTHENTICATED otherwise, naming the
// authorization metadata without echoing what was sent. `expected` must not be empty.
absl::Status CheckBearer(absl::optional<absl::string_view> header, absl::string_view expected);

}  // namespace ps

#endif  // PS_COMMON_AUTH_H_
