// Little-endian encoding of the shard's checkpoint records. The reader checks every
// length against what is left and reports DATA_LOSS instead of reading past the end.
#ifndef PS_SERVER_BYTES_H_
#define PS_SERVER_BYTES_H_

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace ps {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}  // Not owned.
  void U32(uint32_t v) { Raw(&v, sizeof(v)); }
  void U64(uint64_t v) { Raw(&v, sizeof(v)); }
  void Str(absl::string_view s) {
    U64(s.size());
    out_->append(s.data(), s.size());
  }
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }

 private:
  std::string* out_;
};

class ByteReader {
 public:
  ByteReader(absl::string_view in, absl::string_view what) : in_(in), what_(what) {}
  absl::Status U32(uint32_t* v) { return Raw(v, sizeof(*v)); }
  absl::Status U64(uint64_t* v) { return Raw(v, sizeof(*v)); }
  absl::Status Str(std::string* s) {
    uint64_t n = 0;
    if (absl::Status st = U64(&n); !st.ok()) return st;
    if (n > in_.size()) return Truncated();
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return absl::OkStatus();
  }
  absl::Status Raw(void* p, size_t n) {
    if (n > in_.size()) return Truncated();
    if (n > 0) std::memcpy(p, in_.data(), n);
    in_.remove_prefix(n);
    return absl::OkStatus();
  }
  // The next `n` bytes where they lie (valid while the input is), skipped.
  absl::Status View(size_t n, const char** p) {
    if (n > in_.size()) return Truncated();
    *p = in_.data();
    in_.remove_prefix(n);
    return absl::OkStatus();
  }
  bool done() const { return in_.empty(); }

 private:
  absl::Status Truncated() const {
    return absl::DataLossError(std::string(what_) + ": record is truncated");
  }
  absl::string_view in_;
  absl::string_view what_;
};

}  // namespace ps

#endif  // PS_SERVER_BYTES_H_
