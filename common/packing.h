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

// bfloat16: the top 16 bits of a float32. Rounded to nearest, ties to even; NaN stays
// NaN (quiet, sign kept); values past the largest bfloat16 round to infinity.
uint16_t Bf16FromFloat(float f);
inline float FloatFromBf16(uint16_t b) {
  const uint32_t bits = uint32_t{b} << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}
// Appends the values as packed little-endian bfloat16 (2 bytes each) to `out`.
void AppendBf16(absl::Span<const float> values, std::string* out);
// Converts `n` packed bfloat16 at `src` (any alignment) to floats at `dst`.
void Bf16ToFloats(const char* src, size_t n, float* dst);
// Index of the first NaN or infinite value of packed bfloat16 bytes, or -1.
int64_t FirstNonFiniteBf16Packed(absl::string_view bytes);

// How a tensor's values are packed: float32 (4 bytes each) or bfloat16 (2 bytes).
enum class ValueEncoding { kFloat32, kBf16 };

// Packed values that may lie in several pieces, e.g. the slices a message arrived in,
// read where they lie. Pieces may have any length and alignment, so a value may
// straddle two of them. Holds views: the pieces must outlive it.
class PackedFloats {
 public:
  PackedFloats() = default;
  // One piece of float32 (implicit: a string_view of packed floats is the common case).
  PackedFloats(absl::string_view bytes);  // NOLINT(google-explicit-constructor)
  explicit PackedFloats(std::vector<absl::string_view> pieces,
                        ValueEncoding encoding = ValueEncoding::kFloat32);

  ValueEncoding encoding() const { return encoding_; }
  // Bytes of one value: 4 or 2.
  size_t width() const { return encoding_ == ValueEncoding::kBf16 ? 2 : 4; }
  uint64_t size_bytes() const { return size_; }
  const std::vector<absl::string_view>& pieces() const { return pieces_; }

  // OK when the pieces hold exactly `expected` values; else INVALID_ARGUMENT naming
  // `field`.
  absl::Status CheckCount(uint64_t expected, absl::string_view field) const;

  // Calls fn(first, bytes, n) on consecutive runs that cover values [begin, begin +
  // count), in order: `bytes` holds values first .. first + n - 1 packed as encoded, at
  // any alignment. A value split between two pieces comes as a run of 1 from a copy.
  // The range must lie within size_bytes().
  template <typename Fn>
  void ForEachRun(uint64_t begin, uint64_t count, Fn&& fn) const;
  // As ForEachRun, but `bytes` always holds packed float32: the pieces themselves when
  // they are float32, else up to kConvertBlock values converted at a time.
  template <typename Fn>
  void ForEachFloatRun(uint64_t begin, uint64_t count, Fn&& fn) const;
  static constexpr size_t kConvertBlock = 1024;

  // Copies values [begin, begin + out.size()) to `out` as floats.
  void CopyTo(uint64_t begin, absl::Span<float> out) const;
  // Value i (within size_bytes()) as a float.
  float At(uint64_t i) const;
  // Index of the first NaN or infinite value, or -1.
  int64_t FirstNonFinite() const;

 private:
  // Index of the piece holding byte `offset` (< size_), skipping empty pieces.
  size_t PieceAt(uint64_t offset) const;

  std::vector<absl::string_view> pieces_;
  std::vector<uint64_t> starts_;  // Byte offset of each piece.
  uint64_t size_ = 0;
  ValueEncoding encoding_ = ValueEncoding::kFloat32;
};

template <typename Fn>
void PackedFloats::ForEachRun(uint64_t begin, uint64_t count, Fn&& fn) const {
  const uint64_t w = width();
  uint64_t index = begin;
  const uint64_t end = begin + count;
  if (index >= end) return;
  size_t piece = PieceAt(index * w);
  uint64_t in = index * w - starts_[piece];  // Offset within the piece.
  while (index < end) {
    const absl::string_view p = pieces_[piece];
    const uint64_t whole = std::min<uint64_t>((p.size() - in) / w, end - index);
    if (whole > 0) {
      fn(index, p.data() + in, static_cast<size_t>(whole));
      index += whole;
      in += whole * w;
    }
    if (index == end) return;
    if (in < p.size()) {
      // The next value starts here and ends in a later piece.
      char stitched[sizeof(float)];
      for (size_t got = 0; got < w;) {
        if (in == pieces_[piece].size()) {
          ++piece;
          in = 0;
          continue;
        }
        const size_t take = std::min<size_t>(w - got, pieces_[piece].size() - in);
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

template <typename Fn>
void PackedFloats::ForEachFloatRun(uint64_t begin, uint64_t count, Fn&& fn) const {
  if (encoding_ == ValueEncoding::kFloat32) {
    ForEachRun(begin, count, fn);
    return;
  }
  ForEachRun(begin, count, [&fn](uint64_t first, const char* bytes, size_t n) {
    float block[kConvertBlock];
    for (size_t done = 0; done < n; done += kConvertBlock) {
      const size_t k = std::min(kConvertBlock, n - done);
      Bf16ToFloats(bytes + done * sizeof(uint16_t), k, block);
      fn(first + done, reinterpret_cast<const char*>(block), k);
    }
  });
}

}  // namespace ps

#endif  // PS_COMMON_PACKING_H_
