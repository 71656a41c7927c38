// Packed little-endian tensors on the wire: float32 values and uint64 keys as bytes.
//
// On a little-endian host (every supported one) packing is a memcpy; the checks are
// what matters: a packed field's length must match the count the request implies, and
// a mismatch is INVALID_ARGUMENT naming the field.
#ifndef PS_COMMON_PACKING_H_
#define PS_COMMON_PACKING_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ps {

// Appends the values' little-endian bytes to `out`.
void AppendFloats(absl::Span<const float> values, std::string* out);
void AppendKeys(absl::Span<const uint64_t> keys, std::string* out);

std::string PackFloats(absl::Span<const float> values);
std::string PackKeys(absl::Span<const uint64_t> keys);

// Number of float32 in `bytes`; INVALID_ARGUMENT naming `field` when the length is not
// a multiple of 4.
absl::StatusOr<uint64_t> CountFloats(absl::string_view bytes, absl::string_view field);
// Number of uint64 in `bytes`; INVALID_ARGUMENT naming `field` when not a multiple of 8.
absl::StatusOr<uint64_t> CountKeys(absl::string_view bytes, absl::string_view field);

// Checks that `bytes` holds exactly `expected` float32; INVALID_ARGUMENT naming `field`.
absl::Status CheckFloatCount(absl::string_view bytes, uint64_t expected,
                             absl::string_view field);

// Copies the floats of `bytes` into `out`; `bytes.size()` must be 4 * out.size()
// (INVALID_ARGUMENT naming `field` otherwise).
absl::Status UnpackFloatsInto(absl::string_view bytes, absl::Span<float> out,
                              absl::string_view field);

absl::StatusOr<std::vector<float>> UnpackFloats(absl::string_view bytes,
                                                absl::string_view field);
absl::StatusOr<std::vector<uint64_t>> UnpackKeys(absl::string_view bytes,
                                                 absl::string_view field);

// Reads float i of packed bytes (no bounds check: the caller validated the length).
float FloatAt(absl::string_view bytes, uint64_t i);

// Index of the first element of `values` that is NaN or infinite, or -1.
int64_t FirstNonFinite(absl::Span<const float> values);
// The same over packed float bytes.
int64_t FirstNonFinitePacked(absl::string_view bytes);

}  // namespace ps

#endif  // PS_COMMON_PACKING_H_
