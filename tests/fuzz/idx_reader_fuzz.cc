// Fuzzes the IDX reader (worker/data/readers.h ReadIdx), which reads two files. Byte 0
// picks the image shape the options expect (rows and cols 1..4, now and then one
// feature off), byte 1 the feature scale and num_classes, bytes 2-3 (little-endian)
// where the rest splits into the images file and the labels file, plain or gzipped.
// Checks: reader_fuzz_util.h.
#include <algorithm>
#include <cstdint>

#include "tests/fuzz/reader_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  ps::data::ReadOptions o;
  const uint32_t rows = 1 + data[0] % 4, cols = 1 + (data[0] >> 2) % 4;
  o.num_features = rows * cols + ((data[0] & 0x80) != 0 ? 1 : 0);
  const float scales[] = {1.0f, 1.0f / 255, 1000.0f};
  o.feature_scale = scales[data[1] % 3];
  o.num_classes = 2 + (data[1] / 3) % 9;
  const absl::string_view rest(reinterpret_cast<const char*>(data) + 4, size - 4);
  const size_t split = std::min<size_t>(data[2] | (size_t{data[3]} << 8), rest.size());
  ps::fuzz::MemFile images(rest.substr(0, split));
  ps::fuzz::MemFile labels(rest.substr(split));
  ps::fuzz::CheckRead(ps::data::ReadIdx(images.path(), labels.path(), o), o, images.path(),
                      labels.path());
  return 0;
}
