// Fuzzes the libsvm reader (worker/data/readers.h ReadLibsvm). Byte 0 picks
// num_features (1..16) and 0- or 1-based indices, byte 1 the feature scale (and now
// and then num_classes 3, which must be refused); the rest is the file, plain or
// gzipped. Checks: reader_fuzz_util.h.
#include <cstdint>

#include "tests/fuzz/reader_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  ps::data::ReadOptions o;
  o.num_features = 1 + data[0] % 16;
  const bool one_based = (data[0] & 0x10) != 0;
  const float scales[] = {1.0f, 1.0f / 255, 1000.0f};
  o.feature_scale = scales[data[1] % 3];
  o.num_classes = (data[1] & 0x80) != 0 ? 3 : 2;
  ps::fuzz::MemFile file(absl::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
  const absl::StatusOr<ps::data::Dataset> d = ps::data::ReadLibsvm(file.path(), o, one_based);
  if (o.num_classes != 2) PS_FUZZ_CHECK(!d.ok(), "libsvm data with 3 classes must be refused");
  ps::fuzz::CheckRead(d, o, file.path());
  return 0;
}
