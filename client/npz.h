// NumPy .npy/.npz writing, for exporting trained parameters to Python:
// numpy.load("model.npz")["w0"] gives a float32 array of the recorded shape.
#ifndef PS_CLIENT_NPZ_H_
#define PS_CLIENT_NPZ_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ps {

// CRC-32 (IEEE 802.3, as zip and zlib's crc32()), continuing from `crc` (0 to start).
uint32_t Crc32(absl::string_view data, uint32_t crc = 0);

// The .npy header (format 1.0) of a little-endian float32 C-order array of `shape`;
// the array's bytes follow it. An empty shape is a scalar.
std::string NpyHeader(absl::Span<const uint64_t> shape);

// Writes an .npz: a zip archive (STORED, no compression) with one "<name>.npy" entry
// per array. Archives and entries are limited to 4 GiB (no zip64): larger ones fail
// with OUT_OF_RANGE. Not thread-safe; the file is complete only after Close().
class NpzWriter {
 public:
  // Creates or truncates `path`. The error names the path.
  static absl::StatusOr<std::unique_ptr<NpzWriter>> Create(const std::string& path);

  NpzWriter(const NpzWriter&) = delete;
  NpzWriter& operator=(const NpzWriter&) = delete;
  ~NpzWriter();  // Closes the file if Close() was not called (the archive is invalid).

  // Adds `values` as "<name>.npy"; the product of `shape` must equal values.size()
  // (INVALID_ARGUMENT), and `name` must be a non-empty name without '/'.
  absl::Status Add(const std::string& name, absl::Span<const uint64_t> shape,
                   absl::Span<const float> values);

  // Writes the central directory and closes the file.
  absl::Status Close();

 private:
  struct Entry {
    std::string name;
    uint32_t crc = 0;
    uint32_t size = 0;
    uint32_t offset = 0;
  };
  NpzWriter(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  absl::Status Write(absl::string_view bytes);

  std::FILE* file_;  // Owned.
  const std::string path_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
  uint16_t dos_time_ = 0, dos_date_ = 0;
};

}  // namespace ps

#endif  // PS_CLIENT_NPZ_H_
