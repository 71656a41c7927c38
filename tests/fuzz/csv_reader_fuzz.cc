// Fuzzes the CSV reader (worker/data/readers.h ReadCsv). Byte 0 picks the shape
// (num_features 1..4, header line, label column -1/0/1), byte 1 the feature scale and
// num_classes; the rest is the file, plain or gzipped. Checks: reader_fuzz_util.h.
#include <cstdint>

#include "tests/fuzz/reader_fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  ps::data::ReadOptions o;
  o.num_features = 1 + data[0] % 4;
  const bool header = (data[0] & 0x10) != 0;
  const int32_t label_column = static_cast<int32_t>((data[0] >> 5) % 3) - 1;
  const float scales[] = {1.0f, 1.0f / 255, 1000.0f};
  o.feature_scale = scales[data[1] % 3];
  o.num_classes = 2 + (data[1] / 3) % 9;
  ps::fuzz::MemFile file(absl::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));
  ps::fuzz::CheckRead(ps::data::ReadCsv(file.path(), o, label_column, header), o, file.path());
  return 0;
}
