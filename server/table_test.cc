#include "server/table.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/parallel_copy.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TableConfig Sparse(uint32_t dim) {
  TableConfig c;
  c.name = "emb";
  c.sparse = true;
  c.dim = dim;
  c.init = InitKind::kUniform;
  c.init_scale = 0.5f;
  return c;
}

// TryReadRows works in blocks of keys; reads crossing several blocks, with repeated
// keys, appended after bytes already in `out`, equal ReadRows key by key.
TEST(TableTest, TryReadRowsEqualsReadRowsAcrossBlocks) {
  Table t(Sparse(5), 3, 0, 0);
  std::mt19937_64 rng(5);
  std::vector<uint64_t> keys(1000);
  for (uint64_t& k : keys) k = rng();
  t.CreateRows(keys);
  t.BeginStep();
  std::vector<float> grad(keys.size() * 5, 0.25f);
  t.ApplyRows(keys, grad);  // Rows differ from their initial values.
  std::vector<uint64_t> asked;
  for (int i = 0; i < 700; ++i) asked.push_back(keys[rng() % keys.size()]);
  std::string fast = "prefix";
  ASSERT_TRUE(t.TryReadRows(asked, &fast));
  std::string slow = "prefix";
  t.ReadRows(asked, &slow);
  EXPECT_EQ(fast, slow);
  ASSERT_EQ(fast.size(), 6 + asked.size() * 5 * sizeof(float));
  std::string one;
  t.ReadRows({&asked[650], 1}, &one);
  EXPECT_EQ(fast.substr(6 + 650 * 5 * sizeof(float), one.size()), one);
}

TEST(TableTest, TryReadRowsWithAMissingKeyLeavesOutAsItWas) {
  Table t(Sparse(4), 3, 0, 0);
  std::vector<uint64_t> keys(600);
  for (uint64_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  t.CreateRows(keys);
  keys[550] = 1;  // No row: in the third block.
  std::string out = "prefix";
  EXPECT_FALSE(t.TryReadRows(keys, &out));
  EXPECT_EQ(out, "prefix");
  EXPECT_EQ(t.num_rows(), 600u);
}

// A push's check finds the rows of its keys, and the apply uses them: with Adam's
// slots, with keys that have no row yet (created by the apply, or by an earlier apply
// after the rows were found), the same values as ApplyRows, which looks each key up.
TEST(TableTest, ApplyRowsAtTheFoundRowsEqualsApplyRows) {
  TableConfig c = Sparse(6);
  c.optimizer.kind = OptimizerKind::kAdam;
  Table looked_up(c, 3, 0, 0);
  Table found(c, 3, 0, 0);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> old_keys(500);
  for (uint64_t& k : old_keys) k = rng();
  looked_up.CreateRows(old_keys);
  found.CreateRows(old_keys);
  // 300 rows that exist and 200 that do not, shuffled.
  std::vector<uint64_t> keys(old_keys.begin(), old_keys.begin() + 300);
  for (int i = 0; i < 200; ++i) keys.push_back(rng());
  std::shuffle(keys.begin(), keys.end(), rng);
  std::vector<float> grad(keys.size() * 6);
  for (float& g : grad) g = static_cast<float>(rng() % 1000) / 1000.0f - 0.5f;
  std::vector<uint64_t> rows;
  ASSERT_EQ(found.CountMissing(keys, &rows), 200u);
  ASSERT_EQ(rows.size(), keys.size());
  // Another push creates 50 of the missing rows between the lookup and the apply.
  std::vector<uint64_t> first;
  for (size_t i = 0; i < keys.size() && first.size() < 50; ++i) {
    if (rows[i] == RowIndex::kNone) first.push_back(keys[i]);
  }
  const std::vector<float> first_grad(first.size() * 6, 0.125f);
  for (Table* t : {&looked_up, &found}) {
    t->BeginStep();
    t->ApplyRows(first, first_grad);
    t->BeginStep();
  }
  looked_up.ApplyRows(keys, grad);
  found.ApplyRowsAt(keys, rows, grad.data());
  EXPECT_EQ(found.num_rows(), 700u);
  EXPECT_EQ(looked_up.num_rows(), 700u);
  std::string a;
  std::string b;
  looked_up.ReadRows(keys, &a);
  found.ReadRows(keys, &b);
  EXPECT_EQ(a, b);
  EXPECT_EQ(looked_up.SaveState(), found.SaveState());  // Slots and step too.
}

// Each key's first place, for keys with rows (found by their rows, marked in a bitmap)
// and keys without, wherever they lie; a call leaves no mark for the next one.
TEST(TableTest, FirstOccurrencesFindEveryRepeatAndLeaveNoMark) {
  Table t(Sparse(2), 3, 0, 0);
  std::vector<uint64_t> keys(1000);
  for (uint64_t i = 0; i < keys.size(); ++i) keys[i] = i * 104729 + 1;
  t.CreateRows(keys);
  std::vector<uint64_t> rows;
  std::vector<uint32_t> first;
  auto identity = [](size_t n) {
    std::vector<uint32_t> v(n);
    for (uint32_t i = 0; i < n; ++i) v[i] = i;
    return v;
  };
  t.FindRows(keys, &rows);
  EXPECT_FALSE(t.FirstOccurrences(keys, rows, &first));
  EXPECT_EQ(first, identity(keys.size()));
  EXPECT_FALSE(t.FirstOccurrences(keys, rows, &first));  // The first call's marks are gone.
  // Key 3 twice more (far from its first place, in other bitmap words), key 900 once
  // more, and two keys without rows, one of them twice.
  std::vector<uint64_t> repeated = keys;
  for (uint64_t k : {keys[3], uint64_t{5}, keys[900], keys[3], uint64_t{6}, uint64_t{5}}) {
    repeated.push_back(k);
  }
  t.FindRows(repeated, &rows);
  EXPECT_TRUE(t.FirstOccurrences(repeated, rows, &first));
  std::vector<uint32_t> want = identity(repeated.size());
  want[1000] = 3;
  want[1002] = 900;
  want[1003] = 3;
  want[1005] = 1001;
  EXPECT_EQ(first, want);
  t.FindRows(keys, &rows);
  EXPECT_FALSE(t.FirstOccurrences(keys, rows, &first));  // No mark of the repeats is left.
  // Rows added after the bitmap was sized are marked too.
  std::vector<uint64_t> more(5000);
  for (uint64_t i = 0; i < more.size(); ++i) more[i] = (i + 2000) * 104729 + 1;
  t.CreateRows(more);
  more.push_back(more[4500]);
  t.FindRows(more, &rows);
  EXPECT_TRUE(t.FirstOccurrences(more, rows, &first));
  EXPECT_EQ(first.back(), 4500u);
  more.pop_back();
  EXPECT_FALSE(t.FirstOccurrences(more, {rows.data(), more.size()}, &first));
}

TEST(TableTest, RowBytesCountsTheKeyAndIndexEntries) {
  TableConfig c = Sparse(16);
  c.optimizer.kind = OptimizerKind::kAdam;
  Table t(c, 3, 0, 0);
  // Weights and Adam's two slots, the key, two 16-byte index entries.
  EXPECT_EQ(t.RowBytes(), 16u * 4 * 3 + 8 + 32);
  std::vector<uint64_t> keys = {1, 2, 3};
  t.CreateRows(keys);
  EXPECT_EQ(t.MemoryBytes(), 3 * t.RowBytes());
}

// A recycled snapshot buffer already has a dense state's size and is overwritten in
// place (in pieces on several threads when large): no byte of the old contents may
// survive. 4M + 3 floats per array: two pieces of unequal size.
TEST(TableTest, DenseStateOverwritesARecycledBufferEntirely) {
  TableConfig c;
  c.name = "w";
  c.size = (4u << 20) + 3;
  c.init = InitKind::kNormal;
  c.init_scale = 0.1f;
  c.optimizer.kind = OptimizerKind::kAdam;
  Table t(c, 9, 0, c.size);
  t.BeginStep();
  std::vector<float> grad(c.size, 0.5f);
  t.ApplyDense(0, grad.data(), grad.size());
  const std::string fresh = t.SaveState();
  ASSERT_EQ(fresh.size(), t.StateBytes());
  std::string recycled(t.StateBytes(), '\x7f');
  t.SaveStateInto(&recycled);
  EXPECT_TRUE(recycled == fresh);
  std::string small = "too small";
  t.SaveStateInto(&small);
  EXPECT_TRUE(small == fresh);

  Table copy(c, 1, 0, c.size);  // Another seed: other initial weights.
  ASSERT_TRUE(copy.LoadState(recycled).ok());
  EXPECT_EQ(copy.Digest(), t.Digest());
}

// A snapshot that borrows the weights and slots (SaveStateInto with `lent`) and
// copies them after a push landed still holds the state from before the push: the
// push wrote copies of the lent blocks.
TEST(TableTest, BorrowedStateOfASnapshotSurvivesAPush) {
  TableConfig c;
  c.name = "w";
  c.size = 2 * DenseValues::kBlockFloats + 5;  // Three blocks of each array.
  c.init = InitKind::kUniform;
  c.init_scale = 0.2f;
  c.optimizer.kind = OptimizerKind::kAdam;  // Two slots.
  c.optimizer.learning_rate = 0.1f;
  Table t(c, 7, 0, c.size);
  std::vector<float> grad(c.size, 0.25f);
  t.BeginStep();
  t.ApplyDense(0, grad.data(), grad.size());
  const std::string before = t.SaveState();

  std::string snap(t.StateBytes(), '\x7f');
  std::vector<LentBytes> lent;
  t.SaveStateInto(&snap, &lent);
  ASSERT_EQ(lent.size(), 9u);  // Weights, then each slot.
  t.BeginStep();
  t.ApplyDense(0, grad.data(), grad.size());
  EXPECT_EQ(t.copies_on_write(), 9u);
  std::vector<ByteRun> runs;
  for (const LentBytes& l : lent) runs.push_back(ByteRun{l.data, l.size});
  ParallelGather(snap.data() + lent.front().at, runs);
  EXPECT_TRUE(snap == before) << "the snapshot saw the push that came after it";
  lent.clear();
  EXPECT_NE(t.SaveState(), before);
  t.BeginStep();
  t.ApplyDense(0, grad.data(), grad.size());
  EXPECT_EQ(t.copies_on_write(), 9u) << "loans back: pushes write in place again";
}

// A dense part that starts mid-table and spans several blocks: a step over a range
// that crosses block boundaries equals the optimizer over one flat array, and reads
// (copied or lent) see it.
TEST(TableTest, DenseStepsAcrossBlocksEqualOneFlatStep) {
  TableConfig c;
  c.name = "w";
  c.size = 4 * DenseValues::kBlockFloats;
  c.init = InitKind::kUniform;
  c.init_scale = 0.2f;
  c.optimizer.kind = OptimizerKind::kAdam;
  c.optimizer.learning_rate = 0.01f;
  const uint64_t local_begin = 1000, local_count = 2 * DenseValues::kBlockFloats + 77;
  Table t(c, 5, local_begin, local_count);
  std::vector<float> weights(local_count), m(local_count, 0.0f), v(local_count, 0.0f);
  for (uint64_t i = 0; i < local_count; ++i) weights[i] = InitialValue(c, 5, local_begin + i, 0);
  const uint64_t begin = local_begin + DenseValues::kBlockFloats - 100;
  const uint64_t n = DenseValues::kBlockFloats + 150;
  std::vector<float> grad(n);
  for (uint64_t i = 0; i < n; ++i) grad[i] = 0.001f * static_cast<float>(i % 97) - 0.04f;
  t.BeginStep();
  t.ApplyDense(begin, grad.data(), n);
  float* slots[2] = {m.data() + (begin - local_begin), v.data() + (begin - local_begin)};
  ApplyOptimizer(c.optimizer, 1, grad.data(), weights.data() + (begin - local_begin), slots, n);

  std::string read;
  t.ReadDense(local_begin, local_count, &read);
  ASSERT_EQ(read.size(), local_count * sizeof(float));
  EXPECT_EQ(std::memcmp(read.data(), weights.data(), read.size()), 0);
  std::vector<LentBytes> lent;
  t.LendDense(begin, n, 0, &lent);
  std::string joined;
  for (const LentBytes& l : lent) joined.append(l.data, l.size);
  EXPECT_EQ(lent.size(), 3u);  // The end of block 0, all of block 1, the start of 2.
  EXPECT_TRUE(joined == read.substr((begin - local_begin) * sizeof(float), n * sizeof(float)));
  // The slots, stepped run by run beside the weights, follow them in the state.
  const std::string state = t.SaveState();
  const size_t array = local_count * sizeof(float);
  ASSERT_EQ(state.size(), 8 + 4 + 8 + 3 * array);
  EXPECT_EQ(std::memcmp(state.data() + 20 + array, m.data(), array), 0);
  EXPECT_EQ(std::memcmp(state.data() + 20 + 2 * array, v.data(), array), 0);
}

}  // namespace
}  // namespace ps
