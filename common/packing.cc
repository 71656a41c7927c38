#include "common/packing.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/base/config.h"
#include "absl/strings/str_cat.h"

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
  return CheckFloatCount(bytes.size(), expected, field);
}

absl::Status CheckFloatCount(uint64_t size, uint64_t expected, absl::string_view field) {
  // Compared as counts: expected * 4 may wrap for a hostile count.
  if (size % sizeof(float) != 0 || size / sizeof(float) != expected) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", expected,
                                                   " float32 values, got ", size, " bytes"));
  }
  return absl::OkStatus();
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

// Whether any of the kBlock floats at `p` has all exponent bits set (NaN or infinite),
// with integer loads. The constant trip count is what GCC vectorises at -O2 (a variable
// one stayed scalar).
template <uint64_t kBlock>
bool BlockHasNonFinite(const char* p) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t hit = 0;
  for (uint64_t i = 0; i < kBlock; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i * sizeof(float), sizeof(bits));
    hit |= (bits & kExponent) == kExponent ? 1u : 0u;
  }
  return hit != 0;
}

}  // namespace

int64_t FirstNonFinitePacked(absl::string_view bytes) {
  // Big blocks, then small ones for the rest (a slice's run rarely ends on a big
  // block), then one float at a time; a block with a hit is searched again.
  constexpr uint64_t kBig = 256;
  constexpr uint64_t kSmall = 16;
  const uint64_t n = bytes.size() / sizeof(float);
  const char* p = bytes.data();
  auto search = [&](uint64_t start, uint64_t end) -> int64_t {
    for (uint64_t i = start; i < end; ++i) {
      if (!std::isfinite(FloatAt(bytes, i))) return static_cast<int64_t>(i);
    }
    return -1;
  };
  uint64_t start = 0;
  for (; start + kBig <= n; start += kBig) {
    if (BlockHasNonFinite<kBig>(p + start * sizeof(float))) return search(start, start + kBig);
  }
  for (; start + kSmall <= n; start += kSmall) {
    if (BlockHasNonFinite<kSmall>(p + start * sizeof(float))) {
      return search(start, start + kSmall);
    }
  }
  return search(start, n);
}

PackedFloats::PackedFloats(absl::string_view bytes)
    : PackedFloats(std::vector<absl::string_view>{bytes}) {}

PackedFloats::PackedFloats(std::vector<absl::string_view> pieces) : pieces_(std::move(pieces)) {
  starts_.reserve(pieces_.size());
  for (absl::string_view p : pieces_) {
    starts_.push_back(size_);
    size_ += p.size();
  }
}

size_t PackedFloats::PieceAt(uint64_t offset) const {
  // The last piece starting at or before `offset`; empty pieces share a start with the
  // next one, so upper_bound steps past them.
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), offset);
  return static_cast<size_t>(it - starts_.begin()) - 1;
}

void PackedFloats::CopyTo(uint64_t begin, absl::Span<float> out) const {
  ForEachRun(begin, out.size(), [&](uint64_t first, const char* bytes, size_t n) {
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
  ForEachRun(0, size_ / sizeof(float), [&](uint64_t first, const char* bytes, size_t n) {
    if (bad >= 0) return;
    const int64_t at = FirstNonFinitePacked(absl::string_view(bytes, n * sizeof(float)));
    if (at >= 0) bad = static_cast<int64_t>(first) + at;
  });
  return bad;
}

}  // namespace ps
