#include "server/dense_values.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

constexpr size_t kBlock = DenseValues::kBlockFloats;

// Values i * 0.5 + `base` for i in [0, n), written through MutableRuns.
void Fill(DenseValues* v, float base) {
  v->MutableRuns(0, v->size(), [&](size_t at, float* w, size_t k) {
    for (size_t i = 0; i < k; ++i) w[i] = static_cast<float>(at + i) * 0.5f + base;
  });
}

std::vector<float> Read(const DenseValues& v, size_t begin, size_t n) {
  std::vector<float> out(n);
  v.ConstRuns(begin, n, [&](size_t at, const float* w, size_t k) {
    std::memcpy(out.data() + at, w, k * sizeof(float));
  });
  return out;
}

std::vector<float> Joined(const std::vector<LentBytes>& lent) {
  std::string bytes;
  for (const LentBytes& l : lent) bytes.append(l.data, l.size);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

std::vector<float> Expected(size_t begin, size_t n, float base) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(begin + i) * 0.5f + base;
  return out;
}

// Runs split at block boundaries and nowhere else; a short last block.
TEST(DenseValuesTest, RunsFollowTheBlocks) {
  DenseValues v(2 * kBlock + 7);
  EXPECT_EQ(Read(v, 0, v.size()), std::vector<float>(v.size(), 0.0f));
  Fill(&v, 1.0f);
  std::vector<size_t> runs;
  v.ConstRuns(kBlock - 3, kBlock + 9, [&](size_t, const float*, size_t k) { runs.push_back(k); });
  EXPECT_EQ(runs, (std::vector<size_t>{3, kBlock, 6}));
  EXPECT_EQ(Read(v, kBlock - 3, kBlock + 9), Expected(kBlock - 3, kBlock + 9, 1.0f));
  std::vector<ByteRun> all;
  v.AppendRuns(&all);
  size_t bytes = 0;
  for (const ByteRun& r : all) bytes += r.size;
  EXPECT_EQ(bytes, v.size() * sizeof(float));
}

// A write to a lent block moves the table to a copy: the lent bytes keep the values of
// when they were lent. Once the loan is returned, writes are in place again.
TEST(DenseValuesTest, WritesCopyLentBlocksOnly) {
  DenseValues v(3 * kBlock);
  Fill(&v, 0.0f);
  std::vector<LentBytes> lent;
  v.Lend(kBlock - 2, 4, /*at=*/16, &lent);  // The end of block 0 and the start of block 1.
  ASSERT_EQ(lent.size(), 2u);
  EXPECT_EQ(lent[0].at, 16u);
  EXPECT_EQ(lent[1].at, 16u);
  EXPECT_EQ(lent[0].size, 2 * sizeof(float));
  Fill(&v, 100.0f);  // All three blocks: two are lent.
  EXPECT_EQ(v.copies_on_write(), 2u);
  EXPECT_EQ(Joined(lent), Expected(kBlock - 2, 4, 0.0f));
  EXPECT_EQ(Read(v, 0, v.size()), Expected(0, v.size(), 100.0f));
  Fill(&v, 200.0f);  // The loan still holds the old blocks, not the table's new ones.
  EXPECT_EQ(v.copies_on_write(), 2u);

  std::vector<LentBytes> again;
  v.Lend(0, 1, 0, &again);
  again.clear();  // Returned at once: the next write is in place.
  Fill(&v, 300.0f);
  EXPECT_EQ(v.copies_on_write(), 2u);
  EXPECT_EQ(Joined(lent), Expected(kBlock - 2, 4, 0.0f));
}

// A copy on write reuses a block an earlier copy left behind once its loans are back
// (no fresh pages), never one still lent.
TEST(DenseValuesTest, CopiesReuseReturnedBlocks) {
  DenseValues v(kBlock);
  Fill(&v, 0.0f);
  auto first = [&v] {
    const float* p = nullptr;
    v.ConstRuns(0, 1, [&p](size_t, const float* w, size_t) { p = w; });
    return p;
  };
  const float* original = first();
  std::vector<LentBytes> a;
  v.Lend(0, kBlock, 0, &a);
  Fill(&v, 1.0f);  // Copies: the original is still lent.
  const float* second = first();
  EXPECT_NE(second, original);
  std::vector<LentBytes> b;
  v.Lend(0, kBlock, 0, &b);
  Fill(&v, 2.0f);  // Copies again: the original is still lent, so a third block.
  const float* third = first();
  EXPECT_NE(third, original);
  EXPECT_NE(third, second);
  a.clear();  // The original comes back.
  std::vector<LentBytes> c;
  v.Lend(0, kBlock, 0, &c);
  Fill(&v, 3.0f);
  EXPECT_EQ(first(), original);
  EXPECT_EQ(v.copies_on_write(), 3u);
  EXPECT_EQ(Joined(b), Expected(0, kBlock, 1.0f));
  EXPECT_EQ(Joined(c), Expected(0, kBlock, 2.0f));
  EXPECT_EQ(Read(v, 0, kBlock), Expected(0, kBlock, 3.0f));
}

// A loan outlives the values it came from (a pull still sending when its job is
// dropped), and a reassignment leaves it alone.
TEST(DenseValuesTest, LoansOutliveAssignAndTheValues) {
  std::vector<LentBytes> lent;
  {
    auto v = std::make_unique<DenseValues>(kBlock + 5);
    Fill(v.get(), 3.0f);
    v->Lend(0, v->size(), 0, &lent);
    const std::vector<float> other = Expected(0, v->size(), -1.0f);
    v->Assign(reinterpret_cast<const char*>(other.data()) , other.size());
    EXPECT_EQ(Read(*v, 0, v->size()), other);
  }
  EXPECT_EQ(Joined(lent), Expected(0, kBlock + 5, 3.0f));
}

}  // namespace
}  // namespace ps
