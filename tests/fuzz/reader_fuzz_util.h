// Shared by the reader fuzz targets: bytes as a file the readers can open by path
// (an anonymous in-memory file, /proc/self/fd/N, so fuzzing touches no disk), and the
// checks every reader's result must pass.
#ifndef PS_TESTS_FUZZ_READER_FUZZ_UTIL_H_
#define PS_TESTS_FUZZ_READER_FUZZ_UTIL_H_

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "tests/fuzz/fuzz_check.h"
#include "worker/data/dataset.h"
#include "worker/data/readers.h"

namespace ps::fuzz {

// An in-memory file holding `bytes`; closed on destruction.
class MemFile {
 public:
  explicit MemFile(absl::string_view bytes) : fd_(memfd_create("ps-fuzz", 0)) {
    PS_FUZZ_CHECK(fd_ >= 0, "memfd_create");
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = write(fd_, bytes.data() + done, bytes.size() - done);
      PS_FUZZ_CHECK(n > 0, "write to the memfd");
      done += static_cast<size_t>(n);
    }
  }
  ~MemFile() { close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;

  std::string path() const { return absl::StrCat("/proc/self/fd/", fd_); }

 private:
  const int fd_;
};

// A reader's result: OK with a well-formed dataset of the options' shape, or
// INVALID_ARGUMENT / DATA_LOSS whose message starts with the file's path.
inline void CheckRead(const absl::StatusOr<data::Dataset>& d, const data::ReadOptions& o,
                      const std::string& path, const std::string& other_path = "") {
  if (!d.ok()) {
    const absl::Status& s = d.status();
    PS_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument ||
                      s.code() == absl::StatusCode::kDataLoss,
                  s.ToString());
    const std::string m(s.message());
    PS_FUZZ_CHECK(m.rfind(path, 0) == 0 || (!other_path.empty() && m.rfind(other_path, 0) == 0),
                  s.ToString());
    return;
  }
  PS_FUZZ_CHECK(data::ValidateDataset(*d).empty(), data::ValidateDataset(*d));
  PS_FUZZ_CHECK(d->num_features == o.num_features && d->num_classes == o.num_classes, "shape");
  PS_FUZZ_CHECK(d->labels.size() == static_cast<size_t>(d->num_examples), "labels");
  for (int32_t l : d->labels) {
    PS_FUZZ_CHECK(l >= 0 && static_cast<uint32_t>(l) < o.num_classes, absl::StrCat("label ", l));
  }
  if (d->sparse) {
    PS_FUZZ_CHECK(d->row_offsets.size() == static_cast<size_t>(d->num_examples) + 1, "rows");
    PS_FUZZ_CHECK(d->indices.size() == d->values.size(), "nonzeros");
    for (uint64_t i : d->indices) PS_FUZZ_CHECK(i < o.num_features, absl::StrCat("index ", i));
    for (float v : d->values) PS_FUZZ_CHECK(std::isfinite(v), "a finite value");
  } else {
    PS_FUZZ_CHECK(d->dense.size() == static_cast<size_t>(d->num_examples) * o.num_features,
                  "dense size");
    for (float v : d->dense) PS_FUZZ_CHECK(std::isfinite(v), "a finite feature");
  }
}

}  // namespace ps::fuzz

#endif  // PS_TESTS_FUZZ_READER_FUZZ_UTIL_H_
