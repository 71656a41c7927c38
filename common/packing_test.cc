#include "common/packing.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(PackingTest, FloatsRoundTripBitExactly) {
  const std::vector<float> v = {0.0f, -0.0f, 1.5f, -3.25e-20f, 1e30f,
                                std::numeric_limits<float>::denorm_min()};
  const std::string bytes = PackFloats(v);
  ASSERT_EQ(bytes.size(), v.size() * 4);
  // Little-endian layout of 1.5f = 0x3fc00000.
  EXPECT_EQ(static_cast<unsigned char>(bytes[8 + 3]), 0x3f);
  EXPECT_EQ(static_cast<unsigned char>(bytes[8 + 2]), 0xc0);
  auto back = UnpackFloats(bytes, "values");
  ASSERT_TRUE(back.ok());
  ASSERT_EQ(back->size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(std::signbit((*back)[i]), std::signbit(v[i]));
    EXPECT_EQ((*back)[i], v[i]);
  }
  EXPECT_EQ(FloatAt(bytes, 2), 1.5f);
}

TEST(PackingTest, KeysRoundTrip) {
  const std::vector<uint64_t> k = {0, 1, ~0ull, 0x0102030405060708ull};
  const std::string bytes = PackKeys(k);
  EXPECT_EQ(static_cast<unsigned char>(bytes[24]), 0x08);
  auto back = UnpackKeys(bytes, "keys");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, k);
}

TEST(PackingTest, BadLengthsNameTheField) {
  auto f = UnpackFloats(std::string(7, 'x'), "slices[2].values");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("slices[2].values"), absl::string_view::npos);

  auto k = UnpackKeys(std::string(12, 'x'), "slices[0].keys");
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("slices[0].keys"), absl::string_view::npos);

  absl::Status c = CheckFloatCount(std::string(8, 'x'), 3, "values");
  EXPECT_EQ(c.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.message().find("expected 3"), absl::string_view::npos);

  std::vector<float> out(2);
  EXPECT_FALSE(UnpackFloatsInto(std::string(4, 'x'), absl::MakeSpan(out), "v").ok());
  EXPECT_TRUE(UnpackFloatsInto(PackFloats({1.0f, 2.0f}), absl::MakeSpan(out), "v").ok());
  EXPECT_EQ(out[1], 2.0f);
}

// Regression (tests/fuzz/corpus/packing/huge_count): expected * 4 wrapped, so
// a count of 2^62 + 1 matched 4 bytes.
TEST(PackingTest, HugeCountDoesNotWrap) {
  const std::string one = PackFloats({1.0f});
  EXPECT_FALSE(CheckFloatCount(one, (uint64_t{1} << 62) + 1, "values").ok());
  EXPECT_FALSE(CheckFloatCount("", uint64_t{1} << 62, "values").ok());
  EXPECT_TRUE(CheckFloatCount(one, 1, "values").ok());
}

TEST(PackingTest, EmptyIsValid) {
  EXPECT_TRUE(UnpackFloats("", "v").ok());
  EXPECT_EQ(*CountKeys("", "k"), 0u);
}

TEST(PackingTest, FindsNonFinite) {
  std::vector<float> v = {1, 2, 3};
  EXPECT_EQ(FirstNonFinite(v), -1);
  v[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(FirstNonFinite(v), 1);
  EXPECT_EQ(FirstNonFinitePacked(PackFloats(v)), 1);
  v[1] = 0;
  v[2] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(FirstNonFinitePacked(PackFloats(v)), 2);
}

TEST(PackingTest, FindsTheFirstNonFiniteAcrossScanBlocks) {
  // The packed scan goes block by block (256 floats, then 16, then 1); hits at and
  // around block edges, in each kind of block, and the largest finite values (exponent
  // 0xfe) that must not count.
  std::vector<float> v(1000, std::numeric_limits<float>::max());
  v[7] = -std::numeric_limits<float>::max();
  EXPECT_EQ(FirstNonFinitePacked(PackFloats(v)), -1);
  for (size_t at : {size_t{0}, size_t{255}, size_t{256}, size_t{700}, size_t{783},
                    size_t{991}, size_t{992}, size_t{999}}) {
    std::vector<float> w = v;
    w[at] = std::numeric_limits<float>::infinity();
    if (at + 1 < w.size()) w[at + 1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(FirstNonFinitePacked(PackFloats(w)), static_cast<int64_t>(at)) << at;
  }
  // A misaligned view (requests are not aligned) and an empty one.
  std::string bytes = "x" + PackFloats(v);
  bytes.back() = '\x7f';  // The last float's top byte: exponent all ones with the next.
  bytes[bytes.size() - 2] = '\x80';
  EXPECT_EQ(FirstNonFinitePacked(absl::string_view(bytes).substr(1)), 999);
  EXPECT_EQ(FirstNonFinitePacked(""), -1);
}

// `bytes` cut at `cuts` (byte offsets, ascending), with an empty piece at each cut.
std::vector<absl::string_view> CutAt(absl::string_view bytes, const std::vector<size_t>& cuts) {
  std::vector<absl::string_view> pieces;
  size_t at = 0;
  for (size_t cut : cuts) {
    pieces.push_back(bytes.substr(at, cut - at));
    pieces.push_back(absl::string_view());
    at = cut;
  }
  pieces.push_back(bytes.substr(at));
  return pieces;
}

TEST(PackedFloatsTest, RunsCoverTheRangeInOrderAcrossPiecesOfAnySize) {
  std::vector<float> v(50);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) + 0.25f;
  const std::string bytes = PackFloats(v);
  // Cuts inside floats (1, 6, 7, 70: a float cut into three pieces at 5..7), on float
  // edges (8, 64) and pieces shorter than a float.
  const PackedFloats packed(CutAt(bytes, {1, 6, 7, 8, 64, 70, 71, 199}));
  EXPECT_EQ(packed.size_bytes(), bytes.size());
  for (uint64_t begin : {uint64_t{0}, uint64_t{1}, uint64_t{15}, uint64_t{16}, uint64_t{49}}) {
    for (uint64_t count : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{50} - begin}) {
      if (begin + count > v.size()) continue;
      SCOPED_TRACE(testing::Message() << "begin " << begin << " count " << count);
      std::vector<float> seen;
      uint64_t next = begin;
      packed.ForEachRun(begin, count, [&](uint64_t first, const char* p, size_t n) {
        EXPECT_EQ(first, next);
        EXPECT_GT(n, 0u);
        next += n;
        for (size_t i = 0; i < n; ++i) {
          float f;
          std::memcpy(&f, p + i * sizeof(float), sizeof(float));
          seen.push_back(f);
        }
      });
      EXPECT_EQ(next, begin + count);
      EXPECT_EQ(seen, std::vector<float>(v.begin() + begin, v.begin() + begin + count));
      std::vector<float> copied(count);
      packed.CopyTo(begin, absl::MakeSpan(copied));
      EXPECT_EQ(copied, seen);
    }
  }
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(packed.At(i), v[i]);
  EXPECT_EQ(packed.FirstNonFinite(), -1);
  EXPECT_EQ(PackedFloats().FirstNonFinite(), -1);
}

TEST(PackedFloatsTest, FindsANonFiniteFloatSplitBetweenPieces) {
  std::vector<float> v(600, 1.0f);
  v[300] = std::numeric_limits<float>::quiet_NaN();
  v[500] = std::numeric_limits<float>::infinity();
  const std::string bytes = PackFloats(v);
  // Float 300 is bytes 1200..1203: cut through it; float 500 lies whole in a piece.
  const PackedFloats packed(CutAt(bytes, {3, 1202, 1203}));
  EXPECT_EQ(packed.FirstNonFinite(), 300);
  EXPECT_TRUE(std::isnan(packed.At(300)));
  v[300] = 2.0f;
  const std::string fixed = PackFloats(v);
  EXPECT_EQ(PackedFloats(CutAt(fixed, {3, 1202, 1203})).FirstNonFinite(), 500);
}

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof(b));
  return b;
}

float FromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}

TEST(Bf16Test, RoundsToNearestEvenAndKeepsSpecialValues) {
  // Exact values come back unchanged.
  for (float f : {0.0f, -0.0f, 1.0f, -2.5f, 0.15625f, 3.0e38f}) {
    const float exact = FromBits(Bits(f) & 0xffff0000u);
    EXPECT_EQ(Bits(FloatFromBf16(Bf16FromFloat(exact))), Bits(exact)) << f;
  }
  // Below, at and above the halfway point between two bfloat16 values; at it, to the
  // one with an even last bit.
  EXPECT_EQ(Bf16FromFloat(FromBits(0x3f808000u)), 0x3f80);  // Halfway, 0x3f80 even.
  EXPECT_EQ(Bf16FromFloat(FromBits(0x3f818000u)), 0x3f82);  // Halfway, 0x3f81 odd.
  EXPECT_EQ(Bf16FromFloat(FromBits(0x3f807fffu)), 0x3f80);
  EXPECT_EQ(Bf16FromFloat(FromBits(0x3f808001u)), 0x3f81);
  EXPECT_EQ(Bf16FromFloat(FromBits(0xbf808001u)), 0xbf81);  // Negative: by magnitude.
  // The largest float rounds up to infinity; infinities stay.
  EXPECT_EQ(Bf16FromFloat(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_EQ(Bf16FromFloat(-std::numeric_limits<float>::infinity()), 0xff80);
  // A NaN whose payload lies only in the dropped bits is still a NaN.
  EXPECT_TRUE(std::isnan(FloatFromBf16(Bf16FromFloat(FromBits(0x7f800001u)))));
  EXPECT_TRUE(std::isnan(FloatFromBf16(Bf16FromFloat(FromBits(0xffc00000u)))));
  // The relative error is at most 2^-8 (half of the 2^-7 spacing of 8 significant bits).
  for (float f = 1e-3f; f < 1e3f; f *= 1.37f) {
    EXPECT_LE(std::abs(FloatFromBf16(Bf16FromFloat(f)) - f), f / 256.0f) << f;
  }
}

TEST(Bf16Test, PackedBf16ConvertsAndScansAcrossPieces) {
  std::vector<float> v(300);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i) - 1.0f;
  std::string bytes;
  AppendBf16(v, &bytes);
  ASSERT_EQ(bytes.size(), 2 * v.size());
  // Cut inside values (odd offsets) and between them.
  const PackedFloats packed(CutAt(bytes, {1, 2, 101, 300, 301}), ValueEncoding::kBf16);
  EXPECT_EQ(packed.width(), 2u);
  EXPECT_TRUE(packed.CheckCount(300, "v").ok());
  EXPECT_EQ(packed.CheckCount(299, "v").message(), "v: expected 299 bfloat16 values, got 600 bytes");
  std::vector<float> got(v.size());
  packed.CopyTo(0, absl::MakeSpan(got));
  std::vector<float> float_runs;
  packed.ForEachFloatRun(0, v.size(), [&](uint64_t first, const char* p, size_t n) {
    EXPECT_EQ(first, float_runs.size());
    for (size_t i = 0; i < n; ++i) {
      float f;
      std::memcpy(&f, p + i * sizeof(float), sizeof(float));
      float_runs.push_back(f);
    }
  });
  EXPECT_EQ(float_runs, got);
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(got[i], FloatFromBf16(Bf16FromFloat(v[i]))) << i;
    EXPECT_EQ(packed.At(i), got[i]);
  }
  EXPECT_EQ(packed.FirstNonFinite(), -1);
  // A NaN in the value cut between pieces (value 50 is bytes 100..101), then an
  // infinity found by the blocked scan.
  v[150] = std::numeric_limits<float>::infinity();
  std::string with_inf;
  AppendBf16(v, &with_inf);
  EXPECT_EQ(PackedFloats(CutAt(with_inf, {101}), ValueEncoding::kBf16).FirstNonFinite(), 150);
  v[50] = std::numeric_limits<float>::quiet_NaN();
  std::string with_nan;
  AppendBf16(v, &with_nan);
  EXPECT_EQ(PackedFloats(CutAt(with_nan, {101}), ValueEncoding::kBf16).FirstNonFinite(), 50);
  EXPECT_EQ(FirstNonFiniteBf16Packed(with_nan.substr(0, 100)), -1);
}

}  // namespace
}  // namespace ps
