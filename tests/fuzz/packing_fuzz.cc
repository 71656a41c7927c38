// Fuzzes value/key unpacking (common/packing.h): arbitrary bytes as packed float32
// and uint64, and as a float payload of a claimed count. Checks: lengths that are not
// a whole number of elements are INVALID_ARGUMENT naming the field, every accepted
// buffer round-trips byte for byte, and the non-finite scan agrees with a plain one.
// PackedFloats over the bytes cut into pieces (of 1 to 8 bytes, from the first byte),
// float32 and bfloat16, reads and scans exactly what the contiguous bytes hold.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/packing.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<uint64_t> nf = ps::CountFloats(bytes, "values");
  absl::StatusOr<std::vector<float>> floats = ps::UnpackFloats(bytes, "values");
  PS_FUZZ_CHECK(nf.ok() == (size % 4 == 0), "CountFloats accepts exactly multiples of 4");
  PS_FUZZ_CHECK(floats.ok() == nf.ok(), "UnpackFloats agrees with CountFloats");
  if (floats.ok()) {
    PS_FUZZ_CHECK(floats->size() == *nf, "float count");
    PS_FUZZ_CHECK(ps::PackFloats(*floats) == bytes, "floats round-trip");
    int64_t first = -1;
    for (size_t i = 0; i < floats->size(); ++i) {
      if (!std::isfinite((*floats)[i])) {
        first = static_cast<int64_t>(i);
        break;
      }
    }
    PS_FUZZ_CHECK(ps::FirstNonFinite(*floats) == first, "FirstNonFinite");
    PS_FUZZ_CHECK(ps::FirstNonFinitePacked(bytes) == first, "FirstNonFinitePacked");
    for (size_t i = 0; i < floats->size(); ++i) {
      const float v = ps::FloatAt(bytes, i);
      PS_FUZZ_CHECK(std::memcmp(&v, &(*floats)[i], 4) == 0, "FloatAt");
    }
    std::vector<float> into(floats->size());
    PS_FUZZ_CHECK(ps::UnpackFloatsInto(bytes, absl::MakeSpan(into), "values").ok(),
                  "UnpackFloatsInto of the right size");
    PS_FUZZ_CHECK(size == 0 || std::memcmp(into.data(), bytes.data(), size) == 0,
                  "UnpackFloatsInto copy");
  } else {
    PS_FUZZ_CHECK(floats.status().code() == absl::StatusCode::kInvalidArgument,
                  floats.status().ToString());
    PS_FUZZ_CHECK(ps::fuzz::NamesField(floats.status(), {"values"}), floats.status().ToString());
  }

  absl::StatusOr<std::vector<uint64_t>> keys = ps::UnpackKeys(bytes, "slices[0].keys");
  absl::StatusOr<uint64_t> nk = ps::CountKeys(bytes, "slices[0].keys");
  PS_FUZZ_CHECK(keys.ok() == (size % 8 == 0), "UnpackKeys accepts exactly multiples of 8");
  PS_FUZZ_CHECK(nk.ok() == keys.ok(), "CountKeys agrees with UnpackKeys");
  if (keys.ok()) {
    PS_FUZZ_CHECK(keys->size() == *nk, "key count");
    PS_FUZZ_CHECK(ps::PackKeys(*keys) == bytes, "keys round-trip");
  } else {
    PS_FUZZ_CHECK(ps::fuzz::NamesField(keys.status(), {"slices[0].keys"}),
                  keys.status().ToString());
  }

  // A claimed count from the first 8 bytes (any value, huge ones included) against
  // the rest as the payload.
  if (size >= 8) {
    uint64_t claimed;
    std::memcpy(&claimed, data, 8);
    const absl::string_view payload = bytes.substr(8);
    for (const uint64_t expected : {claimed, claimed & 0xffff, uint64_t{payload.size() / 4}}) {
      const absl::Status s = ps::CheckFloatCount(payload, expected, "values");
      PS_FUZZ_CHECK(s.ok() == (payload.size() % 4 == 0 && payload.size() / 4 == expected),
                    "CheckFloatCount accepts exactly the claimed count");
      if (!s.ok()) PS_FUZZ_CHECK(ps::fuzz::NamesField(s, {"values"}), s.ToString());
      if (expected <= (uint64_t{1} << 16)) {
        std::vector<float> out(expected);
        PS_FUZZ_CHECK(ps::UnpackFloatsInto(payload, absl::MakeSpan(out), "values").ok() == s.ok(),
                      "UnpackFloatsInto agrees with CheckFloatCount");
      }
    }
  }
  // The bytes in pieces, as either encoding.
  const size_t piece = size > 0 ? 1 + data[0] % 8 : 1;
  std::vector<absl::string_view> pieces;
  for (size_t at = 0; at < size; at += piece) pieces.push_back(bytes.substr(at, piece));
  for (const ps::ValueEncoding encoding : {ps::ValueEncoding::kFloat32, ps::ValueEncoding::kBf16}) {
    const ps::PackedFloats packed(pieces, encoding);
    const size_t width = packed.width();
    const size_t n = size / width;
    PS_FUZZ_CHECK(packed.CheckCount(n, "values").ok() == (size % width == 0),
                  "CheckCount accepts exactly whole values");
    std::vector<float> got(n), want(n);
    packed.CopyTo(0, absl::MakeSpan(got));
    int64_t first = -1;
    for (size_t i = 0; i < n; ++i) {
      if (width == 4) {
        std::memcpy(&want[i], data + 4 * i, 4);
      } else {
        uint16_t b;
        std::memcpy(&b, data + 2 * i, 2);
        want[i] = ps::FloatFromBf16(b);
      }
      if (first < 0 && !std::isfinite(want[i])) first = static_cast<int64_t>(i);
    }
    PS_FUZZ_CHECK(n == 0 || std::memcmp(got.data(), want.data(), n * sizeof(float)) == 0,
                  "PackedFloats::CopyTo");
    PS_FUZZ_CHECK(packed.FirstNonFinite() == first, "PackedFloats::FirstNonFinite");
    if (width == 2) {
      // Back to bfloat16: every value not a NaN comes back bit for bit.
      std::string again;
      ps::AppendBf16(got, &again);
      for (size_t i = 0; i < n; ++i) {
        if (!std::isnan(got[i])) {
          PS_FUZZ_CHECK(std::memcmp(again.data() + 2 * i, data + 2 * i, 2) == 0,
                        "bfloat16 round trip");
        }
      }
    }
  }
  return 0;
}
