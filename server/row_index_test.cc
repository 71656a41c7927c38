#include "server/row_index.h"

#include <cstdint>
#include <random>
#include <unordered_map>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(RowIndexTest, EmptyIndexFindsNothing) {
  RowIndex index;
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.Find(0), RowIndex::kNone);
  index.Prefetch(7);  // No entries yet: must not touch memory.
}

TEST(RowIndexTest, InsertKeepsTheFirstRowOfAKey) {
  RowIndex index;
  EXPECT_EQ(index.Insert(5, 0), std::make_pair(uint64_t{0}, true));
  EXPECT_EQ(index.Insert(5, 9), std::make_pair(uint64_t{0}, false));
  EXPECT_EQ(index.Find(5), 0u);
  EXPECT_EQ(index.size(), 1u);
}

// Inserting a present key never grows the index, even at exactly half load.
TEST(RowIndexTest, InsertOfAPresentKeyAtHalfLoadDoesNotGrow) {
  RowIndex index;
  for (uint64_t k = 0; k < 8; ++k) index.Insert(k, k);
  ASSERT_EQ(index.capacity(), 16u);  // Exactly half full.
  EXPECT_EQ(index.Insert(3, 99), std::make_pair(uint64_t{3}, false));
  EXPECT_EQ(index.capacity(), 16u);
  EXPECT_EQ(index.Insert(8, 8), std::make_pair(uint64_t{8}, true));
  EXPECT_EQ(index.capacity(), 32u);
}

// Random inserts and lookups through many growths, against std::unordered_map; keys
// from a small range collide often, and the extremes 0 and 2^64 - 1 are keys too.
TEST(RowIndexTest, MatchesAMapThroughGrowthAndClear) {
  std::mt19937_64 rng(11);
  RowIndex index;
  std::unordered_map<uint64_t, uint64_t> model;
  for (int round = 0; round < 2; ++round) {
    for (int i = 0; i < 50000; ++i) {
      uint64_t key = (i % 3 == 0) ? rng() % 4096 : rng();
      if (i == 100) key = 0;
      if (i == 200) key = ~uint64_t{0};
      const uint64_t row = model.size();
      const auto [got, added] = index.Insert(key, row);
      const auto [it, model_added] = model.emplace(key, row);
      ASSERT_EQ(added, model_added) << key;
      ASSERT_EQ(got, it->second) << key;
      const uint64_t probe = rng() % 8192;
      const auto m = model.find(probe);
      ASSERT_EQ(index.Find(probe), m == model.end() ? RowIndex::kNone : m->second) << probe;
    }
    ASSERT_EQ(index.size(), model.size());
    for (const auto& [key, row] : model) ASSERT_EQ(index.Find(key), row) << key;
    index.Clear();
    model.clear();
    EXPECT_EQ(index.Find(0), RowIndex::kNone);
  }
}

}  // namespace
}  // namespace ps
