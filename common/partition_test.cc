#include "common/partition.h"

#include <algorithm>
#include <cstddef>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

// Every element belongs to exactly one shard, runs are contiguous and balanced.
TEST(DensePartitionTest, RangesTileTheTableAndAreBalanced) {
  for (uint64_t size : {1ull, 7ull, 100ull, 1000ull, 65537ull}) {
    for (uint32_t shards : {1u, 2u, 3u, 8u}) {
      auto p = DensePartition::Create("w", size, shards, /*block_elements=*/16);
      ASSERT_TRUE(p.ok());
      std::vector<int> owner(size, -1);
      uint64_t min_blocks = ~0ull, max_blocks = 0;
      for (uint32_t s = 0; s < shards; ++s) {
        DenseRange r = p->RangeOf(s);
        EXPECT_EQ(r.shard, s);
        for (uint64_t i = r.begin; i < r.begin + r.count; ++i) {
          ASSERT_EQ(owner[i], -1) << "element " << i << " owned twice";
          owner[i] = static_cast<int>(s);
        }
        const uint64_t blocks = (r.count + 15) / 16;
        min_blocks = std::min(min_blocks, blocks);
        max_blocks = std::max(max_blocks, blocks);
      }
      for (uint64_t i = 0; i < size; ++i) ASSERT_NE(owner[i], -1) << "element " << i;
      EXPECT_LE(max_blocks - min_blocks, 1u) << size << " over " << shards;
    }
  }
}

TEST(DensePartitionTest, SplitAgreesWithRangeOf) {
  auto p = DensePartition::Create("layer1.w", 1000, 3, 16);
  ASSERT_TRUE(p.ok());
  for (uint64_t begin : {0ull, 5ull, 333ull, 999ull}) {
    for (uint64_t count : {1ull, 17ull, 400ull}) {
      if (begin + count > 1000) continue;
      auto pieces = p->Split(begin, count);
      ASSERT_TRUE(pieces.ok());
      uint64_t pos = begin;
      for (const DenseRange& piece : *pieces) {
        EXPECT_EQ(piece.begin, pos);
        const DenseRange owner = p->RangeOf(piece.shard);
        EXPECT_GE(piece.begin, owner.begin);
        EXPECT_LE(piece.begin + piece.count, owner.begin + owner.count);
        pos += piece.count;
      }
      EXPECT_EQ(pos, begin + count);
    }
  }
}

TEST(DensePartitionTest, SplitRejectsRangesOutsideTheTable) {
  auto p = DensePartition::Create("w", 100, 2);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Split(90, 11).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(p->Split(101, 0).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(p->Split(~0ull, 2).status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(p->Split(100, 0).ok());
}

TEST(DensePartitionTest, InvalidShapesAreErrors) {
  EXPECT_EQ(DensePartition::Create("w", 0, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DensePartition::Create("w", 10, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Small tables (one block each) land on different shards depending on their names.
TEST(DensePartitionTest, SmallTablesSpreadOverShards) {
  std::set<uint32_t> used;
  for (int t = 0; t < 32; ++t) {
    auto p = DensePartition::Create("bias" + std::to_string(t), 10, 4);
    ASSERT_TRUE(p.ok());
    auto pieces = p->Split(0, 10);
    ASSERT_TRUE(pieces.ok());
    ASSERT_EQ(pieces->size(), 1u);
    used.insert((*pieces)[0].shard);
  }
  EXPECT_EQ(used.size(), 4u);
}

TEST(SparsePartitionTest, StableAndBalanced) {
  // The placement is part of the on-disk and wire contract: pin a few values.
  const uint32_t v = VirtualShardOf("emb", 12345);
  EXPECT_LT(v, kVirtualShards);
  EXPECT_EQ(v, VirtualShardOf("emb", 12345));
  EXPECT_EQ(v, 2462u);

  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 20000; ++k) keys.push_back(k * 7919);
  auto groups = GroupKeysByShard("emb", keys, 4);
  ASSERT_EQ(groups.size(), 4u);
  size_t total = 0;
  for (uint32_t s = 0; s < 4; ++s) {
    total += groups[s].size();
    EXPECT_GT(groups[s].size(), 4500u);
    EXPECT_LT(groups[s].size(), 5500u);
    for (size_t j = 0; j < groups[s].size(); ++j) {
      EXPECT_EQ(SparseShardOf("emb", keys[groups[s][j]], 4), s);
      if (j > 0) {
        EXPECT_LT(groups[s][j - 1], groups[s][j]);
      }
    }
  }
  EXPECT_EQ(total, keys.size());
}

// Every shard count, and key counts that leave a remainder after any vector width: each
// position lands in its key's shard (SparseShardOf, key by key), once, in order.
TEST(SparsePartitionTest, GroupsMatchTheShardOfEachKey) {
  for (uint32_t shards : {1u, 2u, 3u, 5u, 64u, 5000u}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{17}, size_t{20003}}) {
      SCOPED_TRACE(absl::StrCat(shards, " shards, ", n, " keys"));
      std::vector<uint64_t> keys;
      for (uint64_t k = 0; k < n; ++k) keys.push_back(k * 0x9e3779b97f4a7c15ULL + (k % 3));
      const auto groups = GroupKeysByShard("t", keys, shards);
      ASSERT_EQ(groups.size(), shards);
      std::vector<int> seen(n, 0);
      for (uint32_t s = 0; s < shards; ++s) {
        for (size_t j = 0; j < groups[s].size(); ++j) {
          const uint32_t at = groups[s][j];
          ASSERT_LT(at, n);
          ++seen[at];
          EXPECT_EQ(SparseShardOf("t", keys[at], shards), s);
          if (j > 0) {
            EXPECT_LT(groups[s][j - 1], at);
          }
        }
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<std::ptrdiff_t>(n));
    }
  }
  EXPECT_TRUE(GroupKeysByShard("t", {}, 0).empty());
}

}  // namespace
}  // namespace ps
