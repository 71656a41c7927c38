// Packed little-endian tensors on the wire: float32 values and uint64 keys as bytes.
//
// On a little-endian host (every supported one) packing is a memcpy; the checks are
// what matters: a packed field's length must match the count the request implies, and
// a mismatch is INVALID_ARGUMENT naming the field.
#ifndef PS_COMMON_PACKING_H_
#define PS_COMMON_PACKING_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
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
// The same for `size` bytes.
absl::Status CheckFloatCount(uint64_t size, uint64_t expected, absl::string_view field);

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

// Packed float32 that may lie in several pieces, e.g. the slices a message arrived in,
// read where they lie. Pieces may have any length and alignment, so a float may
// straddle two of them. Holds views: the pieces must outlive it.
class PackedFloats {
 public:
  PackedFloats() = default;
  // One piece (implicit: a string_view of packed floats is the common case).
  PackedFloats(absl::string_view bytes);  // NOLINT(google-explicit-constructor)
  explicit PackedFloats(std::vector<absl::string_view> pieces);

  uint64_t size_bytes() const { return size_; }
  const std::vector<absl::string_view>& pieces() const { return pieces_; }

  // Calls fn(first, bytes, n) on consecutive runs that cover floats [begin, begin +
  // count), in order: `bytes` holds floats first .. first + n - 1 packed, at any
  // alignment. A float split between two pieces comes as a run of 1 from a copy.
  // The range must lie within size_bytes().
  template <typename Fn>
  void ForEachRun(uint64_t begin, uint64_t count, Fn&& fn) const;

  // Copies floats [begin, begin + out.size()) to `out`.
  void CopyTo(uint64_t begin, absl::Span<float> out) const;
  // Float i (within size_bytes()).
  float At(uint64_t i) const;
  // Index of the first NaN or infinite float, or -1.
  int64_t FirstNonFinite() const;

 private:
  // Index of the piece holding byte `offset` (< size_), skipping empty pieces.
  size_t PieceAt(uint64_t offset) const;

  std::vector<absl::string_view> pieces_;
  std::vector<uint64_t> starts_;  // Byte offset of each piece.
  uint64_t size_ = 0;
};

template <typename Fn>
void PackedFloats::ForEachRun(uint64_t begin, uint64_t count, Fn&& fn) const {
  constexpr uint64_t kWidth = sizeof(float);
  uint64_t index = begin;
  const uint64_t end = begin + count;
  if (index >= end) return;
  size_t piece = PieceAt(index * kWidth);
  uint64_t in = index * kWidth - starts_[piece];  // Offset within the piece.
  while (index < end) {
    const absl::string_view p = pieces_[piece];
    const uint64_t whole = std::min<uint64_t>((p.size() - in) / kWidth, end - index);
    if (whole > 0) {
      fn(index, p.data() + in, static_cast<size_t>(whole));
      index += whole;
      in += whole * kWidth;
    }
    if (index == end) return;
    if (in < p.size()) {
      // The next float starts here and ends in a later piece.
      char stitched[kWidth];
      for (size_t got = 0; got < kWidth;) {
        if (in == pieces_[piece].size()) {
          ++piece;
          in = 0;
          continue;
        }
        const size_t take = std::min<size_t>(kWidth - got, pieces_[piece].size() - in);
        std::memcpy(stitched + got, pieces_[piece].data() + in, take);
        got += take;
        in += take;
      }
      fn(index, static_cast<const char*>(stitched), size_t{1});
      ++index;
    }
    if (in == pieces_[piece].size()) {
      ++piece;
      in = 0;
    }
  }
}

}  // namespace ps

#endif  // PS_COMMON_PACKING_H_
