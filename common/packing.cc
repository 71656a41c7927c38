#include "common/packing.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "absl/base/attributes.h"
#include "absl/base/config.h"
#include "absl/strings/str_cat.h"
#include "common/simd_clones.h"

namespace ps {
namespace {

#if defined(ABSL_IS_BIG_ENDIAN)
#error "packed tensors assume a little-endian host"
#endif

absl::Status LengthError(absl::string_view field, uint64_t got_bytes, uint64_t width,
                         absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", got_bytes,
                                                 " bytes is not a whole number of ",
                                                 what, " (", width, " bytes each)"));
}

// OK when `size` bytes are exactly `expected` values of `width` bytes; else
// INVALID_ARGUMENT naming `field`. Compared as counts: expected * width may wrap for a
// hostile count.
absl::Status CheckValueCount(uint64_t size, uint64_t width, absl::string_view type,
                             uint64_t expected, absl::string_view field) {
  if (size % width != 0 || size / width != expected) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected, " ", type,
                                                   " values, got ", size, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace

void AppendFloats(absl::Span<const float> values, std::string* out) {
  out->append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

void AppendKeys(absl::Span<const uint64_t> keys, std::string* out) {
  out->append(reinterpret_cast<const char*>(keys.data()), keys.size() * sizeof(uint64_t));
}

std::string PackFloats(absl::Span<const float> values) {
  std::string out;
  AppendFloats(values, &out);
  return out;
}

std::string PackKeys(absl::Span<const uint64_t> keys) {
  std::string out;
  AppendKeys(keys, &out);
  return out;
}

absl::StatusOr<uint64_t> CountFloats(absl::string_view bytes, absl::string_view field) {
  if (bytes.size() % sizeof(float) != 0) {
    return LengthError(field, bytes.size(), sizeof(float), "float32 values");
  }
  return bytes.size() / sizeof(float);
}

absl::StatusOr<uint64_t> CountKeys(absl::string_view bytes, absl::string_view field) {
  if (bytes.size() % sizeof(uint64_t) != 0) {
    return LengthError(field, bytes.size(), sizeof(uint64_t), "uint64 keys");
  }
  return bytes.size() / sizeof(uint64_t);
}

absl::Status CheckFloatCount(absl::string_view bytes, uint64_t expected,
                             absl::string_view field) {
  return CheckValueCount(bytes.size(), sizeof(float), "float32", expected, field);
}

absl::Status UnpackFloatsInto(absl::string_view bytes, absl::Span<float> out,
                              absl::string_view field) {
  if (absl::Status s = CheckFloatCount(bytes, out.size(), field); !s.ok()) return s;
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> UnpackFloats(absl::string_view bytes,
                                                absl::string_view field) {
  absl::StatusOr<uint64_t> n = CountFloats(bytes, field);
  if (!n.ok()) return n.status();
  std::vector<float> out(*n);
  if (*n > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

absl::StatusOr<std::vector<uint64_t>> UnpackKeys(absl::string_view bytes,
                                                 absl::string_view field) {
  absl::StatusOr<uint64_t> n = CountKeys(bytes, field);
  if (!n.ok()) return n.status();
  std::vector<uint64_t> out(*n);
  if (*n > 0) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

float FloatAt(absl::string_view bytes, uint64_t i) {
  float v;
  std::memcpy(&v, bytes.data() + i * sizeof(float), sizeof(float));
  return v;
}

int64_t FirstNonFinite(absl::Span<const float> values) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) return static_cast<int64_t>(i);
  }
  return -1;
}

namespace {

// Index of the first of the packed `Bits` values in `bytes` whose bits under `kExponent`
// are all set (NaN or infinite, for float32 and bfloat16 alike), or -1. Big blocks,
// then small ones (a slice's run rarely ends on a big block), then one at a time; a
// block with a hit is searched again. The blocks' constant trip counts are what GCC
// vectorises at -O2 (a variable one stayed scalar).
// Always inlined, so that each clone of its callers (PS_SIMD_CLONES) has its own.
template <typename Bits, Bits kExponent>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int64_t FirstWithExponentAllOnes(absl::string_view bytes) {
  constexpr size_t kBig = 256;
  constexpr size_t kSmall = 16;
  const size_t n = bytes.size() / sizeof(Bits);
  auto special = [&](size_t i) {
    Bits b;
    std::memcpy(&b, bytes.data() + i * sizeof(Bits), sizeof(Bits));
    return (b & kExponent) == kExponent;
  };
  auto search = [&](size_t start, size_t end) -> int64_t {
    for (size_t i = start; i < end; ++i) {
      if (special(i)) return static_cast<int64_t>(i);
    }
    return -1;
  };
  auto block_hit = [&](auto block, size_t start) {
    uint32_t hit = 0;
    for (size_t i = 0; i < decltype(block)::value; ++i) hit |= special(start + i) ? 1u : 0u;
    return hit != 0;
  };
  size_t start = 0;
  for (; start + kBig <= n; start += kBig) {
    if (block_hit(std::integral_constant<size_t, kBig>(), start)) {
      return search(start, start + kBig);
    }
  }
  for (; start + kSmall <= n; start += kSmall) {
    if (block_hit(std::integral_constant<size_t, kSmall>(), start)) {
      return search(start, start + kSmall);
    }
  }
  return search(start, n);
}

}  // namespace

PS_SIMD_CLONES
int64_t FirstNonFinitePacked(absl::string_view bytes) {
  return FirstWithExponentAllOnes<uint32_t, 0x7f800000u>(bytes);
}

uint16_t Bf16FromFloat(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  // Adding 0x7fff plus the kept part's lowest bit rounds to nearest, ties to even; a
  // carry into the exponent is the right result (up to infinity at the top). A NaN
  // keeps its top bits with the quiet bit set, so it cannot round to infinity. No
  // branch, so that AppendBf16's loop vectorises.
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (bits >> 16) | 0x40u;
  return static_cast<uint16_t>((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

PS_SIMD_CLONES
void AppendBf16(absl::Span<const float> values, std::string* out) {
  // Converted into an L1-resident piece, appended piece by piece: resizing `out` first
  // would zero-fill it, one more pass over the whole buffer. Blocks with a constant
  // trip count, so GCC vectorises them at -O2, then the tail.
  constexpr size_t kBlock = 16;
  constexpr size_t kPiece = 1024;
  out->reserve(out->size() + values.size() * sizeof(uint16_t));
  uint16_t piece[kPiece];
  const float* src = values.data();
  for (size_t at = 0; at < values.size(); at += kPiece) {
    const size_t m = std::min(kPiece, values.size() - at);
    size_t i = 0;
    for (; i + kBlock <= m; i += kBlock) {
      for (size_t j = 0; j < kBlock; ++j) piece[i + j] = Bf16FromFloat(src[at + i + j]);
    }
    for (; i < m; ++i) piece[i] = Bf16FromFloat(src[at + i]);
    out->append(reinterpret_cast<const char*>(piece), m * sizeof(uint16_t));
  }
}

PS_SIMD_CLONES
void Bf16ToFloats(const char* src, size_t n, float* dst) {
  auto one = [&](size_t i) {
    uint16_t b;
    std::memcpy(&b, src + i * sizeof(b), sizeof(b));
    return FloatFromBf16(b);
  };
  constexpr size_t kBlock = 16;  // As in AppendBf16.
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    float block[kBlock];
    for (size_t j = 0; j < kBlock; ++j) block[j] = one(i + j);
    std::memcpy(dst + i, block, sizeof(block));
  }
  for (; i < n; ++i) dst[i] = one(i);
}

PS_SIMD_CLONES
int64_t FirstNonFiniteBf16Packed(absl::string_view bytes) {
  return FirstWithExponentAllOnes<uint16_t, 0x7f80>(bytes);
}

PackedFloats::PackedFloats(absl::string_view bytes)
    : PackedFloats(std::vector<absl::string_view>{bytes}) {}

PackedFloats::PackedFloats(std::vector<absl::string_view> pieces, ValueEncoding encoding)
    : pieces_(std::move(pieces)), encoding_(encoding) {
  starts_.reserve(pieces_.size());
  for (absl::string_view p : pieces_) {
    starts_.push_back(size_);
    size_ += p.size();
  }
}

absl::Status PackedFloats::CheckCount(uint64_t expected, absl::string_view field) const {
  const absl::string_view type = encoding_ == ValueEncoding::kBf16 ? "bfloat16" : "float32";
  return CheckValueCount(size_, width(), type, expected, field);
}

size_t PackedFloats::PieceAt(uint64_t offset) const {
  // The last piece starting at or before `offset`; empty pieces share a start with the
  // next one, so upper_bound steps past them.
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
  return static_cast<size_t>(it - starts_.begin()) - 1;
}

void PackedFloats::CopyTo(uint64_t begin, absl::Span<float> out) const {
  ForEachFloatRun(begin, out.size(), [&](uint64_t first, const char* bytes, size_t n) {
    std::memcpy(out.data() + (first - begin), bytes, n * sizeof(float));
  });
}

float PackedFloats::At(uint64_t i) const {
  float v = 0;
  CopyTo(i, absl::MakeSpan(&v, 1));
  return v;
}

int64_t PackedFloats::FirstNonFinite() const {
  int64_t bad = -1;
  ForEachRun(0, size_ / width(), [&](uint64_t first, const char* bytes, size_t n) {
    if (bad >= 0) return;
    const absl::string_view run(bytes, n * width());
    const int64_t at = encoding_ == ValueEncoding::kFloat32 ? FirstNonFinitePacked(run)
                                                            : FirstNonFiniteBf16Packed(run);
    if (at >= 0) bad = static_cast<int64_t>(first) + at;
  });
  return bad;
}

}  // namespace ps
