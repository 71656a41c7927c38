// Test helper: reads an .npz written by NpzWriter (STORED zip entries of float32
// .npy arrays), checking signatures, sizes and CRCs.
#ifndef PS_CLIENT_NPZ_READER_H_
#define PS_CLIENT_NPZ_READER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ps {

struct NpyArray {
  std::vector<uint64_t> shape;
  std::vector<float> values;
};

// Arrays by entry name without ".npy". DATA_LOSS naming what is malformed.
absl::StatusOr<std::map<std::string, NpyArray>> ReadNpzForTest(const std::string& path);

}  // namespace ps

#endif  // PS_CLIENT_NPZ_READER_H_
