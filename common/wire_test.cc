#include "common/wire.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "proto/shard.pb.h"

namespace ps::wire {
namespace {

PushRequest Sample(size_t value_bytes) {
  PushRequest req;
  req.set_job_id("job");
  req.set_rank(3);
  req.set_clock(77);
  req.set_part(1);
  req.set_num_parts(4);
  Slice* s = req.add_slices();
  s->set_table("w");
  s->set_begin(10);
  s->set_count(value_bytes / 4);
  std::string values(value_bytes, '\0');
  for (size_t i = 0; i < value_bytes; ++i) values[i] = static_cast<char>(i * 31 + 7);
  req.set_values(values);
  return req;
}

// `bytes` cut into slices of `piece` bytes (the last shorter), as gRPC hands over a
// message that arrived in several frames.
grpc::ByteBuffer Chopped(const std::string& bytes, size_t piece) {
  std::vector<grpc::Slice> slices;
  for (size_t at = 0; at < bytes.size(); at += piece) {
    slices.emplace_back(bytes.data() + at, std::min(piece, bytes.size() - at));
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

std::string Joined(const ByteViews& v) {
  std::string out;
  for (absl::string_view piece : v.views()) out.append(piece.data(), piece.size());
  return out;
}

TEST(SplitBytesFieldTest, ViewsTheFieldInPlaceAndParsesTheRest) {
  const PushRequest req = Sample(1000);
  const std::string wire = req.SerializeAsString();
  for (size_t piece : {size_t{1}, size_t{7}, size_t{64}, wire.size()}) {
    SCOPED_TRACE(piece);
    const grpc::ByteBuffer buffer = Chopped(wire, piece);
    PushRequest rest;
    rest.set_job_id("left over from an earlier use");
    ByteViews values;
    ASSERT_TRUE(SplitBytesField(buffer, 7, &rest, &values).ok());
    EXPECT_EQ(values.size(), 1000u);
    EXPECT_EQ(Joined(values), req.values());
    EXPECT_EQ(values.views().size() == 1, piece == wire.size());
    EXPECT_TRUE(rest.values().empty());
    rest.set_values(req.values());
    EXPECT_EQ(rest.SerializeAsString(), wire);
  }
}

// Fields may come in any order and repeat: the rest is what protobuf makes of the whole
// message, less the field, wherever the field's occurrences lie among the others.
TEST(SplitBytesFieldTest, FieldsAroundTheFieldParseAsTheWholeMessage) {
  PushRequest a = Sample(40);
  PushRequest b;
  b.set_rank(9);
  b.add_slices()->set_keys(std::string(800, 'k'));
  b.set_values("middle");
  PushRequest c;
  c.set_job_id("later");
  c.add_slices()->set_table("t");
  const std::string wire = a.SerializeAsString() + b.SerializeAsString() + c.SerializeAsString();
  PushRequest whole;
  ASSERT_TRUE(whole.ParseFromString(wire));
  whole.clear_values();
  for (size_t piece : {size_t{1}, size_t{5}, size_t{100}, wire.size()}) {
    SCOPED_TRACE(piece);
    PushRequest rest;
    ByteViews values;
    ASSERT_TRUE(SplitBytesField(Chopped(wire, piece), 7, &rest, &values).ok());
    EXPECT_EQ(Joined(values), "middle");
    EXPECT_EQ(rest.SerializeAsString(), whole.SerializeAsString());
    EXPECT_EQ(rest.slices_size(), 3);
    EXPECT_EQ(rest.job_id(), "later");
  }
}

// A peer may interleave the field with others as often as it likes: 400k alternations
// (2.4 MB in 64-byte slices) are read in one pass, well within the test's timeout.
// Parsing each run of other fields from the start of the slices again took 44 s at
// half this size, and four times that here.
TEST(SplitBytesFieldTest, InterleavedFieldsAreReadInOnePass) {
  std::string wire;
  PushRequest whole;
  for (int i = 0; i < 400000; ++i) {
    PushRequest piece;
    piece.set_rank(static_cast<uint32_t>(i));
    piece.set_values(i % 2 == 0 ? "ab" : "c");
    wire += piece.SerializeAsString();
  }
  ASSERT_TRUE(whole.ParseFromString(wire));
  whole.clear_values();
  PushRequest rest;
  ByteViews values;
  ASSERT_TRUE(SplitBytesField(Chopped(wire, 64), 7, &rest, &values).ok());
  EXPECT_EQ(Joined(values), "c");
  EXPECT_EQ(rest.rank(), 399999u);
  EXPECT_EQ(rest.SerializeAsString(), whole.SerializeAsString());
}

TEST(SplitBytesFieldTest, ReaderReadsFrontToBackAcrossSlices) {
  const PushRequest req = Sample(300);
  const grpc::ByteBuffer buffer = Chopped(req.SerializeAsString(), 7);
  PushRequest rest;
  ByteViews values;
  ASSERT_TRUE(SplitBytesField(buffer, 7, &rest, &values).ok());
  ByteViews::Reader reader(values);
  std::string got;
  for (size_t n : {size_t{1}, size_t{6}, size_t{7}, size_t{64}, size_t{0}, size_t{222}}) {
    std::string piece(n, '?');
    reader.Read(n, piece.data());
    got += piece;
  }
  EXPECT_EQ(got, req.values());
}

TEST(SplitBytesFieldTest, LastOccurrenceWinsAndAbsentIsEmpty) {
  PushRequest first = Sample(8);
  PushRequest second;
  second.set_values("the last one");
  const std::string wire = first.SerializeAsString() + second.SerializeAsString();
  PushRequest rest;
  ByteViews values;
  ASSERT_TRUE(SplitBytesField(Chopped(wire, 3), 7, &rest, &values).ok());
  EXPECT_EQ(Joined(values), "the last one");

  PushRequest none = Sample(0);
  none.clear_values();
  ASSERT_TRUE(SplitBytesField(Chopped(none.SerializeAsString(), 4), 7, &rest, &values).ok());
  EXPECT_EQ(values.size(), 0u);
  EXPECT_EQ(rest.job_id(), "job");

  ASSERT_TRUE(SplitBytesField(grpc::ByteBuffer(), 7, &rest, &values).ok());
  EXPECT_EQ(rest.ByteSizeLong(), 0u);
}

TEST(SplitBytesFieldTest, MalformedMessagesAreInvalidArgument) {
  const std::string wire = Sample(100).SerializeAsString();
  PushRequest rest;
  ByteViews values;
  // Cut inside the values: fewer bytes than the length says.
  absl::Status s = SplitBytesField(Chopped(wire.substr(0, wire.size() - 10), 16), 7, &rest,
                                   &values);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // A zero tag, a group, and a truncated varint.
  for (const std::string& bad : {std::string("\x00\x01", 2), std::string("\x0b\x0c", 2),
                                std::string("\x18\xff", 2)}) {
    s = SplitBytesField(Chopped(bad, 1), 7, &rest, &values);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  }
  // Tags and lengths in more than 5 bytes, which protobuf refuses (CodedInputStream
  // takes up to 10): the field's own, and another field's after it.
  for (const std::string& bad : {std::string("\xba\x80\x80\x80\x80\x00\x00", 7),
                                 std::string("\x3a\x80\x80\x80\x80\x80\x00", 7),
                                 std::string("\x3a\x00\x88\x80\x80\x80\x80\x00\x01", 9),
                                 // Lengths of 2^32 and 2^32 + 3 in 5 bytes, which would
                                 // read as 0 and 3 cut to 32 bits.
                                 std::string("\x3a\x80\x80\x80\x80\x10", 6),
                                 std::string("\x3a\x83\x80\x80\x80\x10"
                                             "abc",
                                             9)}) {
    PushRequest whole;
    EXPECT_FALSE(whole.ParseFromString(bad));
    s = SplitBytesField(Chopped(bad, 2), 7, &rest, &values);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  }
  // A group (which protobuf would skip as an unknown field) is named as one.
  s = SplitBytesField(Chopped(std::string("\x0b\x10\x01\x0c", 4), 1), 7, &rest, &values);
  EXPECT_EQ(s.message(), "message: field 1 is a group") << s;
  // Cut inside another field.
  s = SplitBytesField(Chopped(wire.substr(0, 3), 1), 7, &rest, &values);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // Well-formed wire format, but not a PushRequest: field 6 (slices) holds bytes that
  // are no Slice message (a truncated varint inside), named in the error.
  s = SplitBytesField(Chopped(std::string("\x32\x02\x10\xff", 4), 2), 7, &rest, &values);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("PushRequest"), std::string::npos) << s;
}

TEST(WireTest, BuiltMessageParsesAsProtobuf) {
  const PushRequest req = Sample(4096);
  PushRequest header = req;
  header.clear_values();
  std::string head = header.SerializeAsString();
  AppendBytesFieldHeader(7, req.values().size(), &head);
  auto pool = std::make_shared<BufferPool>(4, 1 << 20);
  std::unique_ptr<std::string> values = pool->Get();
  values->assign(req.values());
  std::vector<grpc::Slice> slices = {grpc::Slice(head), pool->Wrap(std::move(values))};
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  std::vector<grpc::Slice> dumped;
  ASSERT_TRUE(buffer.Dump(&dumped).ok());
  std::string bytes;
  for (const grpc::Slice& s : dumped) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  PushRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.SerializeAsString(), req.SerializeAsString());
  // And back through SplitBytesField, in the one slice it was wrapped in.
  PushRequest rest;
  ByteViews got;
  ASSERT_TRUE(SplitBytesField(buffer, 7, &rest, &got).ok());
  ASSERT_EQ(got.views().size(), 1u);
  EXPECT_EQ(got.views()[0], req.values());
  EXPECT_EQ(rest.SerializeAsString(), header.SerializeAsString());
}

// Lent ranges land at their offsets among the copied bytes (at the start, in the
// middle, twice at one offset, at the end), their loans are held by the slices until
// the message is gone, and the copied bytes' buffer then goes back to the pool (at
// once when nothing was copied).
TEST(BufferPoolTest, AppendSlicesInterleavesLentBytesAndHoldsTheLoans) {
  auto pool = std::make_shared<BufferPool>(2, 1 << 20);
  auto floats = LendableFloats::Make(4);
  const char* lendable = reinterpret_cast<const char*>(floats->data());
  std::memcpy(floats->data(), "ABCDEFGHIJKLMNOP", 16);
  std::vector<LentBytes> lent = {
      {0, lendable, 2, LendableFloats::Lend(floats)},
      {4, lendable + 2, 3, LendableFloats::Lend(floats)},
      {4, lendable + 5, 1, LendableFloats::Lend(floats)},
      {10, lendable + 6, 10, LendableFloats::Lend(floats)},
  };
  std::vector<grpc::Slice> slices;
  const std::string* copied_buffer = nullptr;
  {
    std::unique_ptr<std::string> copied = pool->Get();
    *copied = "0123456789";
    copied_buffer = copied.get();
    std::vector<grpc::Slice> out;
    pool->AppendSlices(std::move(copied), &lent, &out);
    EXPECT_TRUE(lent.empty());
    EXPECT_TRUE(floats->lent());
    grpc::ByteBuffer message(out.data(), out.size());
    out.clear();
    ASSERT_TRUE(message.Dump(&slices).ok());
  }
  std::string joined;
  for (const grpc::Slice& sl : slices) joined.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(joined, "AB0123CDEF456789GHIJKLMNOP");
  EXPECT_TRUE(floats->lent());
  slices.clear();
  EXPECT_FALSE(floats->lent());
  std::unique_ptr<std::string> back = pool->Get();  // The copied bytes' buffer is back.
  EXPECT_EQ(back.get(), copied_buffer);

  std::vector<grpc::Slice> only_copied;
  std::vector<LentBytes> none;
  std::unique_ptr<std::string> copied = pool->Get();
  *copied = "0123456789";
  pool->AppendSlices(std::move(copied), &none, &only_copied);
  ASSERT_EQ(only_copied.size(), 1u);
  EXPECT_EQ(only_copied[0].size(), 10u);
  std::vector<grpc::Slice> empty;
  back->clear();
  const std::string* empty_buffer = back.get();
  pool->AppendSlices(std::move(back), &none, &empty);
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(pool->Get().get(), empty_buffer);  // Handed back at once.
}

TEST(BufferPoolTest, WrappedBuffersComeBackWithTheirCapacity) {
  auto pool = std::make_shared<BufferPool>(2, 1 << 20);
  std::unique_ptr<std::string> b = pool->Get();
  b->assign(4096, 'x');
  const char* memory = b->data();
  {
    grpc::Slice s = pool->Wrap(std::move(b));
    EXPECT_EQ(s.size(), 4096u);
    EXPECT_EQ(reinterpret_cast<const char*>(s.begin()), memory);
    {
      grpc::Slice copy = s;
    }
    // One reference is left: the buffer is still out.
    EXPECT_NE(pool->Get()->data(), memory);
  }
  std::unique_ptr<std::string> again = pool->Get();
  EXPECT_TRUE(again->empty());
  EXPECT_GE(again->capacity(), 4096u);
  EXPECT_EQ(again->data(), memory);  // The same memory, reused.

  // Buffers past max_bytes are not kept.
  again->reserve(2 << 20);
  pool->Put(std::move(again));
  EXPECT_LT(pool->Get()->capacity(), size_t{2} << 20);
}

}  // namespace
}  // namespace ps::wire
