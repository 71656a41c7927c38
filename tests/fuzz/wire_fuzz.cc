// Fuzzes wire::SplitBytesField, the first code to read a Push (and a pulled reply):
// the tensor field as views into the received slices, the other fields parsed from
// where they lie.
//
// Input: byte 0 picks the message (bit 7: a PullResponse, its `values` is field 1;
// else a PushRequest, field 7) and the size of the slices the rest is cut into (1 +
// its low 6 bits, or the whole in one slice when they are all set); the rest is the
// message.
//
// Checks, against protobuf parsing the same bytes in one piece: a message accepted here
// is one protobuf accepts, with the same tensor bytes (read whole and through a
// ByteViews::Reader in uneven steps) and the same other fields; a rejection is
// INVALID_ARGUMENT with a message that starts "message:", and of bytes protobuf parses
// only for a group (deprecated, and refused on purpose).
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/wire.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/shard.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

template <typename Message>
void Check(const std::string& bytes, size_t piece, uint32_t field) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  const grpc::ByteBuffer buffer(slices.data(), slices.size());
  Message rest;
  ps::wire::ByteViews values;
  const absl::Status s = ps::wire::SplitBytesField(buffer, field, &rest, &values);
  Message whole;
  const bool parsed = whole.ParseFromString(bytes);
  if (!s.ok()) {
    PS_FUZZ_CHECK(absl::IsInvalidArgument(s), s.ToString());
    PS_FUZZ_CHECK(ps::fuzz::NamesField(s, {"message"}), s.ToString());
    // What protobuf accepts is refused only for a group, which it skips as unknown.
    PS_FUZZ_CHECK(!parsed || absl::EndsWith(s.message(), " is a group"),
                  "refused bytes that protobuf parses: " + s.ToString());
    return;
  }
  PS_FUZZ_CHECK(parsed, "accepted bytes that protobuf does not parse");
  std::string joined;
  for (absl::string_view v : values.views()) joined.append(v.data(), v.size());
  PS_FUZZ_CHECK(joined.size() == values.size(), "views and size disagree");
  const std::string whole_values = whole.values();
  whole.clear_values();
  PS_FUZZ_CHECK(joined == whole_values, "tensor bytes differ from protobuf's");
  PS_FUZZ_CHECK(rest.SerializeAsString() == whole.SerializeAsString(),
                "other fields differ from protobuf's");
  // The reader, in steps of 1, 2, 3 ... bytes.
  ps::wire::ByteViews::Reader reader(values);
  std::string read;
  for (size_t step = 1; read.size() < values.size(); ++step) {
    const size_t n = std::min(step, values.size() - read.size());
    std::string piece_bytes(n, '\0');
    reader.Read(n, piece_bytes.data());
    read += piece_bytes;
  }
  PS_FUZZ_CHECK(read == joined, "the reader read other bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t piece =
      (data[0] & 0x3f) == 0x3f ? std::max<size_t>(bytes.size(), 1) : 1 + (data[0] & 0x3f);
  if ((data[0] & 0x80) != 0) {
    Check<ps::PullResponse>(bytes, piece, ps::PullResponse::kValuesFieldNumber);
  } else {
    Check<ps::PushRequest>(bytes, piece, ps::PushRequest::kValuesFieldNumber);
  }
  return 0;
}
