#include "worker/data/shard.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "absl/status/status.h"
#include "common/hash.h"
#include "gtest/gtest.h"

namespace ps::data {
namespace {

TEST(SplitMix64Test, MatchesTheReferenceSequence) {
  // The reference SplitMix64 (Steele, Lea, Flood 2014), written out here
  // independently of common/hash.h.
  uint64_t x = 1234567;
  SplitMix64 rng(1234567);
  for (int i = 0; i < 10; ++i) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    EXPECT_EQ(rng.Next(), z) << i;
  }
}

TEST(SplitMix64Test, UniformStaysInRangeAndCoversIt) {
  SplitMix64 rng(7);
  std::vector<int> counts(7);
  for (int i = 0; i < 70000; ++i) {
    const uint64_t v = rng.Uniform(7);
    ASSERT_LT(v, 7u);
    ++counts[v];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
  EXPECT_EQ(rng.Uniform(1), 0u);
  // Huge ranges exercise the rejection threshold.
  const uint64_t big = (uint64_t{1} << 63) + 12345;
  for (int i = 0; i < 100; ++i) ASSERT_LT(rng.Uniform(big), big);
}

TEST(FisherYatesTest, IsAPermutationAndUniformish) {
  // Position of element 0 after shuffling 4 elements should be uniform.
  std::vector<int> where(4);
  for (uint64_t seed = 0; seed < 8000; ++seed) {
    std::vector<int64_t> v = {0, 1, 2, 3};
    SplitMix64 rng(seed);
    FisherYates(&rng, &v);
    std::vector<int64_t> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    ASSERT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3}));
    ++where[static_cast<size_t>(std::find(v.begin(), v.end(), 0) - v.begin())];
  }
  for (int w : where) EXPECT_NEAR(w, 2000, 200);
}

TEST(DataShardTest, RanksCoverTheExamplesDisjointly) {
  const int64_t n = 1003;
  const uint32_t workers = 4;
  std::vector<int> seen(n);
  for (uint32_t r = 0; r < workers; ++r) {
    auto shard = DataShard::Create(n, r, workers, 10, 42);
    ASSERT_TRUE(shard.ok()) << shard.status();
    EXPECT_EQ(shard->shard_size(), r < 3 ? 251 : 250);
    EXPECT_EQ(shard->steps_per_epoch(), 25);  // floor(250 / 10) on every rank.
    const std::vector<int64_t> order = shard->EpochOrder(0);
    ASSERT_EQ(static_cast<int64_t>(order.size()), shard->shard_size());
    for (int64_t i : order) {
      ASSERT_EQ(i % workers, r);
      ++seen[static_cast<size_t>(i)];
    }
  }
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)], 1) << i;
}

TEST(DataShardTest, DeterministicPerEpochAndDifferentAcrossEpochsRanksSeeds) {
  auto a = DataShard::Create(500, 1, 2, 16, 99);
  auto b = DataShard::Create(500, 1, 2, 16, 99);
  auto other_seed = DataShard::Create(500, 1, 2, 16, 100);
  ASSERT_TRUE(a.ok() && b.ok() && other_seed.ok());
  EXPECT_EQ(a->EpochOrder(3), b->EpochOrder(3));
  EXPECT_EQ(a->EpochOrder(3), a->EpochOrder(3));
  EXPECT_NE(a->EpochOrder(3), a->EpochOrder(4));
  EXPECT_NE(a->EpochOrder(3), other_seed->EpochOrder(3));
  std::vector<int64_t> identity;
  for (int64_t i = 1; i < 500; i += 2) identity.push_back(i);
  EXPECT_NE(a->EpochOrder(0), identity);
  std::vector<int64_t> sorted = a->EpochOrder(5);
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, identity);
  // Rank 0's permutation uses its own stream: as a position pattern it differs.
  auto r0 = DataShard::Create(500, 0, 2, 16, 99);
  ASSERT_TRUE(r0.ok());
  std::vector<int64_t> r0_shifted = r0->EpochOrder(3);
  for (int64_t& i : r0_shifted) i += 1;
  EXPECT_NE(r0_shifted, a->EpochOrder(3));
}

TEST(DataShardTest, OrderDependsOnlyOnSeedEpochRank) {
  // The permutation is pinned to the documented construction: Fisher-Yates over
  // the ascending shard driven by SplitMix64(ShuffleSeed(seed, epoch, rank)).
  auto s = DataShard::Create(100, 2, 3, 5, 7);
  ASSERT_TRUE(s.ok());
  std::vector<int64_t> want;
  for (int64_t i = 2; i < 100; i += 3) want.push_back(i);
  SplitMix64 rng(HashCombine(HashCombine(Mix64(7), 11), 2));
  FisherYates(&rng, &want);
  EXPECT_EQ(s->EpochOrder(11), want);
}

TEST(DataShardTest, BatchesSliceTheEpochOrder) {
  auto s = DataShard::Create(103, 0, 1, 10, 5);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->steps_per_epoch(), 10);
  const std::vector<int64_t> order = s->EpochOrder(2);
  std::set<int64_t> visited;
  for (int64_t step = 0; step < s->steps_per_epoch(); ++step) {
    const std::vector<int64_t> rows = s->BatchRows(2, step);
    ASSERT_EQ(rows.size(), 10u);
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i], order[static_cast<size_t>(step) * 10 + i]);
      visited.insert(rows[i]);
    }
  }
  EXPECT_EQ(visited.size(), 100u);  // The last 3 of the permutation are left out.
  EXPECT_TRUE(s->BatchRows(2, 10).empty());
  EXPECT_TRUE(s->BatchRows(2, -1).empty());
}

TEST(DataShardTest, GlobalBatchRanksSliceTheOneWorkerGlobalBatch) {
  // 3 workers x batch 7 see, step by step, what 1 worker x batch 21 sees.
  const int64_t n = 1003;
  auto single = DataShard::Create(n, 0, 1, 21, 42, Sharding::kGlobalBatch);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->steps_per_epoch(), 47);  // floor(1003 / 21).
  std::vector<DataShard> ranks;
  for (uint32_t r = 0; r < 3; ++r) {
    auto s = DataShard::Create(n, r, 3, 7, 42, Sharding::kGlobalBatch);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->steps_per_epoch(), 47);
    EXPECT_EQ(s->shard_size(), 47 * 7);
    ranks.push_back(*s);
  }
  std::set<int64_t> left_out_before;
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    const std::vector<int64_t> want = single->EpochOrder(epoch);
    ASSERT_EQ(want.size(), 47u * 21);
    std::vector<std::vector<int64_t>> orders;
    for (const DataShard& s : ranks) orders.push_back(s.EpochOrder(epoch));
    std::vector<int> seen(n);
    for (int64_t step = 0; step < 47; ++step) {
      std::vector<int64_t> global;
      for (uint32_t r = 0; r < 3; ++r) {
        const std::vector<int64_t> rows = ranks[r].BatchRows(epoch, step);
        ASSERT_EQ(rows.size(), 7u);
        // The trainer slices EpochOrder() the same way.
        EXPECT_TRUE(std::equal(rows.begin(), rows.end(), orders[r].begin() + step * 7));
        global.insert(global.end(), rows.begin(), rows.end());
      }
      EXPECT_EQ(global, std::vector<int64_t>(want.begin() + step * 21,
                                             want.begin() + (step + 1) * 21))
          << "epoch " << epoch << " step " << step;
      for (int64_t i : global) ++seen[static_cast<size_t>(i)];
    }
    // Each example at most once per epoch; n mod 21 = 16 left out, a new set each epoch.
    std::set<int64_t> left_out;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_LE(seen[static_cast<size_t>(i)], 1) << i;
      if (seen[static_cast<size_t>(i)] == 0) left_out.insert(i);
    }
    EXPECT_EQ(left_out.size(), 16u);
    EXPECT_NE(left_out, left_out_before);
    left_out_before = left_out;
  }
}

TEST(DataShardTest, OneWorkerIsTheSameUnderBothShardings) {
  auto strided = DataShard::Create(103, 0, 1, 10, 5);
  auto global = DataShard::Create(103, 0, 1, 10, 5, Sharding::kGlobalBatch);
  ASSERT_TRUE(strided.ok() && global.ok());
  EXPECT_EQ(strided->steps_per_epoch(), global->steps_per_epoch());
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    const std::vector<int64_t> s = strided->EpochOrder(epoch);
    const std::vector<int64_t> g = global->EpochOrder(epoch);
    ASSERT_EQ(g.size(), 100u);
    EXPECT_TRUE(std::equal(g.begin(), g.end(), s.begin())) << epoch;
  }
}

TEST(DataShardTest, GlobalBatchNeedsOneFullGlobalBatch) {
  // 101 examples: 2 x 50 fits, 2 x 51 does not; 4 x 25 fits though a strided rank
  // would hold 25 examples.
  EXPECT_EQ(DataShard::Create(101, 1, 2, 51, 0, Sharding::kGlobalBatch).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto s = DataShard::Create(101, 1, 2, 50, 0, Sharding::kGlobalBatch);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->steps_per_epoch(), 1);
  EXPECT_TRUE(DataShard::Create(101, 3, 4, 25, 0, Sharding::kGlobalBatch).ok());
}

TEST(DataShardTest, RejectsImpossibleShapes) {
  EXPECT_EQ(DataShard::Create(100, 0, 0, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataShard::Create(100, 2, 2, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DataShard::Create(100, 0, 2, 0, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  // 101 examples over 2 workers: the smallest shard has 50 < 51.
  EXPECT_EQ(DataShard::Create(101, 0, 2, 51, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(DataShard::Create(101, 0, 2, 50, 0).ok());
}

}  // namespace
}  // namespace ps::data
