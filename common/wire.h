// Tensor bytes on the wire without extra copies: protobuf messages read from and built
// as grpc::ByteBuffers, with one `bytes` field (the tensor) left where it lies.
//
// Receiving: SplitBytesField walks a serialized message in the buffer's own slices;
// the tensor field becomes views into those slices (no copy) and protobuf parses the
// other fields from where they lie.
// Sending: a message is its small fields serialized by protobuf, then the tensor
// field's tag and length, then a slice that owns the tensor's bytes in a reused buffer
// (BufferPool::Wrap), so gRPC writes them to the socket from there. Fields may come in
// any order in protobuf's wire format, so these are ordinary messages to any peer.
//
// A slice is never lent out of memory its owner takes back when a call returns: gRPC
// (1.51) may keep a slice after the call, e.g. a write stuck on a stopped peer's full
// socket, even after the connection was closed (seen with a SIGSTOPped shard).
#ifndef PS_COMMON_WIRE_H_
#define PS_COMMON_WIRE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/lendable.h"
#include "common/sync.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"

namespace ps::wire {

// The bytes of one field as views into a received buffer's slices (which it holds).
class ByteViews {
 public:
  size_t size() const { return size_; }
  // The pieces in order; their concatenation is the field's bytes.
  const std::vector<absl::string_view>& views() const { return views_; }
  // Reads the bytes front to back without searching for each piece's view.
  class Reader {
   public:
    explicit Reader(const ByteViews& views) : views_(views) {}
    // Copies the next `n` bytes to `dst`. The caller keeps within size().
    void Read(size_t n, char* dst) {
      if (view_ < views_.views_.size() && n < views_.views_[view_].size() - in_view_) {
        std::memcpy(dst, views_.views_[view_].data() + in_view_, n);  // Within one view.
        in_view_ += n;
        return;
      }
      ReadAcross(n, dst);
    }

   private:
    void ReadAcross(size_t n, char* dst);

    const ByteViews& views_;
    size_t view_ = 0;
    size_t in_view_ = 0;
  };

 private:
  friend absl::Status SplitBytesField(const grpc::ByteBuffer&, uint32_t,
                                      google::protobuf::MessageLite*, ByteViews*);
  std::vector<grpc::Slice> slices_;  // Keep the views' memory.
  std::vector<absl::string_view> views_;
  size_t size_ = 0;
};

// Splits the message serialized in `buffer` into the bytes of `field` (a length-
// delimited field, the last occurrence wins as in proto3), as views, and every other
// field, parsed into `rest` (cleared first; `field` of it stays empty). An absent field
// is empty. Accepts what protobuf's parse of the whole would, but for groups (refused).
// INVALID_ARGUMENT when the bytes are not a well-formed message of `rest`'s type.
absl::Status SplitBytesField(const grpc::ByteBuffer& buffer, uint32_t field,
                             google::protobuf::MessageLite* rest, ByteViews* out);

// Appends the tag and length of a length-delimited `field` of `size` bytes to `out`.
void AppendBytesFieldHeader(uint32_t field, size_t size, std::string* out);

// Strings kept for reuse: their capacity stays mapped, so filling them again costs no
// page faults (fresh pages cost more than the copy on this machine kind, DESIGN.md
// "Performance facts"). At most `max_free` are kept and none past `max_bytes`.
// Thread-safe.
class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  BufferPool(size_t max_free, size_t max_bytes) : max_free_(max_free), max_bytes_(max_bytes) {}

  std::unique_ptr<std::string> Get();
  void Put(std::unique_ptr<std::string> buffer);
  // A slice of the whole of `buffer` that hands it back to this pool when gRPC drops
  // the slice. The pool must be owned by a shared_ptr; the slice keeps it alive.
  grpc::Slice Wrap(std::unique_ptr<std::string> buffer);
  // Appends to `out` the slices of a message's bytes: `copied` (wrapped as by Wrap, or
  // handed back at once when empty) with each of `lent` inserted at its `at` offset of
  // it, in order of `at`. A lent range's slice is its memory where it lies and holds its
  // loan until gRPC drops the slice; `lent` is left empty.
  void AppendSlices(std::unique_ptr<std::string> copied, std::vector<LentBytes>* lent,
                    std::vector<grpc::Slice>* out);

 private:
  const size_t max_free_;
  const size_t max_bytes_;
  Mutex mu_;
  std::vector<std::unique_ptr<std::string>> free_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps::wire

#endif  // PS_COMMON_WIRE_H_
