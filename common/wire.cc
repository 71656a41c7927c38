#include "common/wire.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace ps::wire {
namespace {

using google::protobuf::internal::WireFormatLite;

// The slices of a buffer as protobuf's input stream, handing out their own memory.
class SliceInput final : public google::protobuf::io::ZeroCopyInputStream {
 public:
  explicit SliceInput(const std::vector<grpc::Slice>& slices) : slices_(slices) {}

  bool Next(const void** data, int* size) override {
    if (backed_up_ > 0) {
      *data = last_ + last_size_ - backed_up_;
      *size = backed_up_;
      count_ += backed_up_;
      backed_up_ = 0;
      return true;
    }
    while (next_ < slices_.size() && slices_[next_].size() == 0) ++next_;
    if (next_ == slices_.size()) return false;
    const grpc::Slice& s = slices_[next_++];
    last_ = reinterpret_cast<const char*>(s.begin());
    last_size_ = static_cast<int>(s.size());
    *data = last_;
    *size = last_size_;
    count_ += last_size_;
    return true;
  }
  void BackUp(int count) override {
    backed_up_ = count;
    count_ -= count;
  }
  bool Skip(int count) override {
    const void* data;
    int size;
    while (count > 0) {
      if (!Next(&data, &size)) return false;
      if (size > count) {
        BackUp(size - count);
        return true;
      }
      count -= size;
    }
    return true;
  }
  int64_t ByteCount() const override { return count_; }

 private:
  const std::vector<grpc::Slice>& slices_;
  size_t next_ = 0;
  const char* last_ = nullptr;
  int last_size_ = 0;
  int backed_up_ = 0;
  int64_t count_ = 0;
};

// Appends the next `n` bytes of `stream` to `out`; false when it has fewer.
bool AppendNext(SliceInput* stream, int n, std::string* out) {
  while (n > 0) {
    const void* data = nullptr;
    int size = 0;
    if (!stream->Next(&data, &size)) return false;
    const int take = std::min(n, size);
    out->append(static_cast<const char*>(data), static_cast<size_t>(take));
    if (take < size) stream->BackUp(size - take);
    n -= take;
  }
  return true;
}

// protobuf's parser reads a tag or a length in at most 5 bytes; CodedInputStream
// takes up to 10.
constexpr int kMaxVarint32Bytes = 5;

}  // namespace

void ByteViews::Reader::ReadAcross(size_t n, char* dst) {
  while (n > 0) {
    const absl::string_view v = views_.views_[view_];
    const size_t take = std::min(n, v.size() - in_view_);
    std::memcpy(dst, v.data() + in_view_, take);
    dst += take;
    n -= take;
    in_view_ += take;
    if (in_view_ == v.size()) {
      ++view_;
      in_view_ = 0;
    }
  }
}

absl::Status SplitBytesField(const grpc::ByteBuffer& buffer, uint32_t field,
                             google::protobuf::MessageLite* rest, ByteViews* out) {
  *out = ByteViews();
  rest->Clear();
  if (!buffer.Valid()) return absl::OkStatus();  // An empty message.
  if (grpc::Status s = buffer.Dump(&out->slices_); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("message: unreadable: ", s.error_message()));
  }
  // The other fields: those before the field's first occurrence are parsed where they
  // lie, as one range (our peers write the field last, so that is all of them); any
  // after it are copied out as they are and parsed after that range, as protobuf's
  // parse of the whole message would. Linear in the message's size however the fields
  // are interleaved. Protobuf parses every byte but the field's own tag and length.
  int prefix_end = -1;  // Where the field first occurs.
  std::string tail;
  {
    SliceInput stream(out->slices_);
    google::protobuf::io::CodedInputStream in(&stream);
    SliceInput tail_reader(out->slices_);  // Behind `in`, copying the fields after.
    const uint32_t wanted =
        WireFormatLite::MakeTag(static_cast<int>(field), WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
    while (true) {
      const int at = in.CurrentPosition();
      const uint32_t tag = in.ReadTag();
      if (tag == 0) {
        // The end of the input, or a malformed or zero tag.
        if (!in.ConsumedEntireMessage()) {
          return absl::InvalidArgumentError("message: malformed field tag");
        }
        if (prefix_end < 0) prefix_end = at;
        break;
      }
      if (tag != wanted) {
        // Before the field's first occurrence: skipped in place (a length-delimited
        // field is not read into a string). After it: copied to `tail`.
        if (WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_START_GROUP) {
          // Deprecated, and in none of our messages: refused rather than skipped.
          return absl::InvalidArgumentError(absl::StrCat(
              "message: field ", WireFormatLite::GetTagFieldNumber(tag), " is a group"));
        }
        if (!WireFormatLite::SkipField(&in, tag)) {
          return absl::InvalidArgumentError(
              absl::StrCat("message: malformed field ", WireFormatLite::GetTagFieldNumber(tag)));
        }
        if (prefix_end >= 0 && (!tail_reader.Skip(at - static_cast<int>(tail_reader.ByteCount())) ||
                                !AppendNext(&tail_reader, in.CurrentPosition() - at, &tail))) {
          return absl::InvalidArgumentError("message: unreadable");  // Read by `in` already.
        }
        continue;
      }
      if (prefix_end < 0) prefix_end = at;
      // As protobuf reads them: a length below 2^31, in at most 5 bytes (ReadVarint32
      // would drop the bits past 32).
      uint64_t length64 = 0;
      const int length_at = in.CurrentPosition();
      if (length_at - at > kMaxVarint32Bytes || !in.ReadVarint64(&length64) ||
          in.CurrentPosition() - length_at > kMaxVarint32Bytes ||
          length64 > static_cast<uint64_t>(std::numeric_limits<int32_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("message: field ", field, ": bad tag or length"));
      }
      uint32_t length = static_cast<uint32_t>(length64);
      out->views_.clear();  // The last occurrence wins.
      out->size_ = 0;
      while (length > 0) {
        const void* data = nullptr;
        int size = 0;
        if (!in.GetDirectBufferPointer(&data, &size) || size <= 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("message: field ", field, ": ", length, " bytes missing"));
        }
        const uint32_t take = std::min(length, static_cast<uint32_t>(size));
        out->views_.emplace_back(static_cast<const char*>(data), take);
        out->size_ += take;
        in.Skip(static_cast<int>(take));
        length -= take;
      }
    }
  }
  SliceInput stream(out->slices_);
  if (!rest->MergeFromBoundedZeroCopyStream(&stream, prefix_end) ||
      (!tail.empty() && !rest->MergeFromString(tail))) {
    return absl::InvalidArgumentError(
        absl::StrCat("message: malformed ", rest->GetTypeName(), " fields"));
  }
  return absl::OkStatus();
}

void AppendBytesFieldHeader(uint32_t field, size_t size, std::string* out) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag(WireFormatLite::MakeTag(static_cast<int>(field),
                                         WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  coded.WriteVarint64(size);
}

std::unique_ptr<std::string> BufferPool::Get() {
  {
    MutexLock lock(&mu_);
    if (!free_.empty()) {
      std::unique_ptr<std::string> b = std::move(free_.back());
      free_.pop_back();
      b->clear();
      return b;
    }
  }
  return std::make_unique<std::string>();
}

void BufferPool::Put(std::unique_ptr<std::string> buffer) {
  if (buffer == nullptr || buffer->capacity() > max_bytes_) return;
  MutexLock lock(&mu_);
  if (free_.size() < max_free_) free_.push_back(std::move(buffer));
}

grpc::Slice BufferPool::Wrap(std::unique_ptr<std::string> buffer) {
  struct Loan {
    std::shared_ptr<BufferPool> pool;
    std::unique_ptr<std::string> buffer;
  };
  std::string* raw = buffer.get();
  auto* loan = new Loan{shared_from_this(), std::move(buffer)};
  return grpc::Slice(
      raw->data(), raw->size(),
      [](void* p) {
        std::unique_ptr<Loan> l(static_cast<Loan*>(p));
        l->pool->Put(std::move(l->buffer));
      },
      loan);
}

void BufferPool::AppendSlices(std::unique_ptr<std::string> copied, std::vector<LentBytes>* lent,
                              std::vector<grpc::Slice>* out) {
  const size_t size = copied->size();
  grpc::Slice buffer;
  if (size > 0) {
    buffer = Wrap(std::move(copied));
  } else {
    Put(std::move(copied));
  }
  size_t at = 0;  // Of the copied bytes, appended so far.
  for (LentBytes& l : *lent) {
    // Offsets out of order or past the copied bytes are a producer's bug: the message
    // would be garbled.
    PS_CHECK(l.at >= at && l.at <= size)
        << "lent bytes at " << l.at << " after " << at << " of " << size << " copied";
    if (l.at > at) out->push_back(buffer.sub(at, l.at));
    at = l.at;
    auto* loan = new std::shared_ptr<const void>(std::move(l.keep));
    out->emplace_back(
        const_cast<char*>(l.data), l.size,
        [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); }, loan);
  }
  lent->clear();
  if (size > at) out->push_back(at == 0 ? std::move(buffer) : buffer.sub(at, size));
}

}  // namespace ps::wire
