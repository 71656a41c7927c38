#include "worker/ps_routing.h"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/packing.h"
#include "common/partition.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

TableSpec Dense(const std::string& name, uint64_t size) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(TableSpec::DENSE);
  t.set_size(size);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(0.1f);
  return t;
}

TableSpec Sparse(const std::string& name, uint32_t dim) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(TableSpec::SPARSE);
  t.set_dim(dim);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(0.1f);
  return t;
}

std::shared_ptr<const JobRoute> Route(uint32_t shards, const std::vector<TableSpec>& tables) {
  absl::StatusOr<std::shared_ptr<const JobRoute>> r = JobRoute::Create("j", shards, tables);
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

// What a shard would answer for a part: dense element e reads as e, sparse row of key k
// element j as k * 10 + j.
std::string ShardAnswer(const PlanPart& part, absl::Span<const DenseRef> dense,
                        absl::Span<const SparseRef> sparse) {
  std::string out;
  for (const PlanSlice& s : part.slices) {
    if (!s.sparse) {
      for (uint64_t e = s.begin; e < s.begin + s.count; ++e) {
        const float v = static_cast<float>(e);
        out.append(reinterpret_cast<const char*>(&v), sizeof(v));
      }
      continue;
    }
    const SparseRef& ref = sparse[s.ref];
    for (uint64_t k = 0; k < s.count; ++k) {
      const uint64_t key = ref.keys[s.positions[k]];
      for (uint32_t j = 0; j < ref.dim; ++j) {
        const float v = static_cast<float>(key * 10 + j);
        out.append(reinterpret_cast<const char*>(&v), sizeof(v));
      }
    }
  }
  EXPECT_EQ(out.size(), part.floats * sizeof(float));
  (void)dense;
  return out;
}

TEST(JobRouteTest, ValidatesSpecs) {
  TableSpec bad = Dense("w", 0);
  absl::StatusOr<std::shared_ptr<const JobRoute>> r = JobRoute::Create("j", 2, {bad});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("tables[0].size"), std::string::npos) << r.status();

  r = JobRoute::Create("j", 2, {Dense("w", 5), Sparse("w", 3)});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tables[1].name"), std::string::npos) << r.status();
}

TEST(PlanTest, DenseRangeSplitsByPartitionAndScattersBack) {
  const uint64_t size = 5 * kDenseBlockElements + 123;
  auto route = Route(3, {Dense("w", size)});
  const uint64_t begin = 1000, count = size - 2000;
  std::vector<float> buf(count, -1.0f);
  std::vector<DenseRef> dense = {{"w", begin, count, buf.data()}};
  absl::StatusOr<Plan> plan =
      Plan::Build(*route, dense, {}, uint64_t{1} << 30, Plan::Kind::kPull);
  ASSERT_TRUE(plan.ok()) << plan.status();

  // Each shard gets exactly the runs DensePartition::Split gives it.
  auto part = DensePartition::Create("w", size, 3);
  ASSERT_TRUE(part.ok());
  auto ranges = part->Split(begin, count);
  ASSERT_TRUE(ranges.ok());
  std::map<uint32_t, std::vector<std::pair<uint64_t, uint64_t>>> want, got;
  for (const DenseRange& r : *ranges) want[r.shard].push_back({r.begin, r.count});
  for (uint32_t s = 0; s < 3; ++s) {
    for (const PlanPart& p : plan->parts()[s]) {
      for (const PlanSlice& sl : p.slices) got[s].push_back({sl.begin, sl.count});
    }
  }
  EXPECT_EQ(got, want);

  for (uint32_t s = 0; s < 3; ++s) {
    for (const PlanPart& p : plan->parts()[s]) {
      ASSERT_TRUE(ScatterValues(p, ShardAnswer(p, dense, {}), dense, {}).ok());
    }
  }
  for (uint64_t i = 0; i < count; ++i) ASSERT_EQ(buf[i], static_cast<float>(begin + i)) << i;
}

TEST(PlanTest, SparseKeysGroupByShardAndDuplicatesFillEveryOccurrence) {
  auto route = Route(4, {Sparse("emb", 3)});
  std::vector<uint64_t> keys;
  for (int i = 0; i < 500; ++i) keys.push_back(static_cast<uint64_t>((i * 37) % 97));  // Repeats.
  keys.push_back(keys[0]);
  std::vector<float> buf(keys.size() * 3, -1.0f);
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 3, buf.data()}};
  absl::StatusOr<Plan> plan = Plan::Build(*route, {}, sparse, 1 << 20, Plan::Kind::kPull);
  ASSERT_TRUE(plan.ok()) << plan.status();
  size_t total = 0;
  for (uint32_t s = 0; s < 4; ++s) {
    uint32_t last = 0;
    bool first = true;
    for (const PlanPart& p : plan->parts()[s]) {
      for (const PlanSlice& sl : p.slices) {
        for (uint64_t k = 0; k < sl.count; ++k) {
          const uint32_t pos = sl.positions[k];
          EXPECT_EQ(SparseShardOf("emb", keys[pos], 4), s);
          if (!first) {
            EXPECT_GT(pos, last) << "positions keep the caller's order";
          }
          last = pos;
          first = false;
          ++total;
        }
      }
      ASSERT_TRUE(ScatterValues(p, ShardAnswer(p, {}, sparse), {}, sparse).ok());
    }
  }
  EXPECT_EQ(total, keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    for (uint32_t j = 0; j < 3; ++j) {
      ASSERT_EQ(buf[i * 3 + j], static_cast<float>(keys[i] * 10 + j)) << i;
    }
  }
}

TEST(PlanTest, GatherPacksGradientsInSliceOrder) {
  auto route = Route(2, {Dense("w", 3 * kDenseBlockElements), Sparse("emb", 2)});
  std::vector<float> w(3 * kDenseBlockElements);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) * 0.5f;
  std::vector<uint64_t> keys = {9, 4, 9, 100, 7};
  std::vector<float> rows;
  for (size_t i = 0; i < keys.size(); ++i) {
    rows.push_back(static_cast<float>(i));
    rows.push_back(static_cast<float>(i) + 0.25f);
  }
  std::vector<DenseRef> dense = {{"w", 0, w.size(), w.data()}};
  std::shared_ptr<LendableFloats> lendable = LendableFloats::Make(w.size());
  std::memcpy(lendable->data(), w.data(), w.size() * sizeof(float));
  const std::vector<DenseRef> lendable_dense = {
      {"w", 0, w.size(), lendable->data(), lendable}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 2, rows.data()}};
  absl::StatusOr<Plan> plan = Plan::Build(*route, dense, sparse, 100000, Plan::Kind::kPush);
  ASSERT_TRUE(plan.ok()) << plan.status();
  std::vector<bool> seen_dense(w.size()), seen_key(keys.size());
  for (uint32_t s = 0; s < 2; ++s) {
    for (const PlanPart& p : plan->parts()[s]) {
      std::string bytes;
      GatherValues(p, dense, sparse, &bytes);
      ASSERT_EQ(bytes.size(), p.floats * sizeof(float));
      // With the dense gradients lendable: they are lent, not copied, and the copied
      // rows with the lent ranges inserted at their offsets are the same bytes.
      std::string rows_only;
      std::vector<LentBytes> lent;
      GatherValues(p, lendable_dense, sparse, &rows_only, ValueEncoding::kFloat32, &lent);
      for (const LentBytes& l : lent) {
        ASSERT_GE(l.data, reinterpret_cast<const char*>(lendable->data()));
      }
      EXPECT_TRUE(JoinLent(rows_only, lent) == bytes);
      uint64_t dense_floats = 0;
      for (const PlanSlice& sl : p.slices) dense_floats += sl.sparse ? 0 : sl.count;
      EXPECT_EQ(rows_only.size(), (p.floats - dense_floats) * sizeof(float));
      EXPECT_EQ(lent.empty(), dense_floats == 0);
      // As bfloat16: the same values in the same order, each rounded.
      std::string half, want_half;
      GatherValues(p, dense, sparse, &half, ValueEncoding::kBf16);
      std::vector<float> as_floats(p.floats);
      std::memcpy(as_floats.data(), bytes.data(), bytes.size());
      AppendBf16(as_floats, &want_half);
      EXPECT_EQ(half, want_half);
      size_t off = 0;
      auto next = [&] {
        float v;
        std::memcpy(&v, bytes.data() + off, sizeof(v));
        off += sizeof(v);
        return v;
      };
      for (const PlanSlice& sl : p.slices) {
        if (!sl.sparse) {
          for (uint64_t e = sl.begin; e < sl.begin + sl.count; ++e) {
            ASSERT_EQ(next(), w[e]);
            seen_dense[e] = true;
          }
          continue;
        }
        std::string packed;
        AppendSliceKeys(sl, sparse, &packed);
        ASSERT_EQ(packed.size(), sl.count * 8);
        for (uint64_t k = 0; k < sl.count; ++k) {
          const uint32_t pos = sl.positions[k];
          uint64_t key;
          std::memcpy(&key, packed.data() + k * 8, 8);
          EXPECT_EQ(key, keys[pos]);
          EXPECT_EQ(next(), rows[pos * 2]);
          EXPECT_EQ(next(), rows[pos * 2 + 1]);
          seen_key[pos] = true;
        }
      }
    }
  }
  for (size_t i = 0; i < w.size(); ++i) ASSERT_TRUE(seen_dense[i]) << i;
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_TRUE(seen_key[i]) << i;
}

TEST(PlanTest, TinyChunksCutDenseByElementsAndSparseByKeys) {
  auto route = Route(2, {Dense("w", 10000), Sparse("emb", 4)});
  std::vector<float> w(10000);
  std::vector<uint64_t> keys(300);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i % 150;
  std::vector<float> rows(keys.size() * 4);
  std::vector<DenseRef> dense = {{"w", 0, w.size(), w.data()}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 4, rows.data()}};
  const uint64_t chunk = 1024;
  absl::StatusOr<Plan> plan = Plan::Build(*route, dense, sparse, chunk, Plan::Kind::kPush);
  ASSERT_TRUE(plan.ok()) << plan.status();
  uint64_t dense_total = 0, keys_total = 0;
  for (uint32_t s = 0; s < 2; ++s) {
    uint64_t next_begin = 0;
    bool have_next = false;
    for (const PlanPart& p : plan->parts()[s]) {
      uint64_t bytes = 0;
      for (const PlanSlice& sl : p.slices) {
        if (sl.sparse) {
          bytes += sl.count * (8 + 16);
          keys_total += sl.count;
        } else {
          bytes += sl.count * 4;
          dense_total += sl.count;
          // Dense pieces continue where the previous one stopped.
          if (have_next) {
            EXPECT_EQ(sl.begin, next_begin);
          }
          next_begin = sl.begin + sl.count;
          have_next = true;
        }
      }
      EXPECT_LE(bytes, chunk);
      EXPECT_GT(bytes, 0u);
    }
  }
  EXPECT_EQ(dense_total, w.size());
  EXPECT_EQ(keys_total, keys.size());
  // 10000 floats in 1 KiB parts: at least 40 parts in all.
  EXPECT_GE(plan->num_requests(), 40u);
}

TEST(PlanTest, PushAndPullReachEveryShardReadOnlyShardsWithData) {
  // One block: a single shard holds the whole table.
  auto route = Route(3, {Dense("b", 10)});
  std::vector<float> b(10);
  std::vector<DenseRef> dense = {{"b", 0, 10, b.data()}};
  absl::StatusOr<Plan> push = Plan::Build(*route, dense, {}, 4096, Plan::Kind::kPush);
  ASSERT_TRUE(push.ok());
  absl::StatusOr<Plan> pull = Plan::Build(*route, dense, {}, 4096, Plan::Kind::kPull);
  ASSERT_TRUE(pull.ok());
  absl::StatusOr<Plan> read = Plan::Build(*route, dense, {}, 4096, Plan::Kind::kRead);
  ASSERT_TRUE(read.ok());
  int with_data = 0;
  for (uint32_t s = 0; s < 3; ++s) {
    ASSERT_EQ(push->parts()[s].size(), 1u) << s;
    ASSERT_EQ(pull->parts()[s].size(), 1u) << s;
    if (push->parts()[s][0].slices.empty()) {
      EXPECT_EQ(push->parts()[s][0].floats, 0u);
      EXPECT_TRUE(pull->parts()[s][0].slices.empty());
      EXPECT_TRUE(read->parts()[s].empty());
      // An empty part scatters nothing and accepts only an empty answer.
      EXPECT_TRUE(ScatterValues(pull->parts()[s][0], "", dense, {}).ok());
    } else {
      ++with_data;
      EXPECT_EQ(read->parts()[s].size(), 1u);
    }
  }
  EXPECT_EQ(with_data, 1);

  // An empty push still reaches every shard.
  absl::StatusOr<Plan> empty = Plan::Build(*route, {}, {}, 4096, Plan::Kind::kPush);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->num_requests(), 3u);
}

TEST(PlanTest, SliceLimitsAndPartLimit) {
  // A huge dense range in one part: slices of at most 2^28 elements.
  const uint64_t size = (uint64_t{1} << 28) + 5;
  auto route = Route(1, {Dense("big", size)});
  float dummy = 0;
  std::vector<DenseRef> dense = {{"big", 0, size, &dummy}};  // Never dereferenced here.
  absl::StatusOr<Plan> plan = Plan::Build(*route, dense, {}, uint64_t{1} << 40, Plan::Kind::kPull);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->parts()[0].size(), 1u);
  ASSERT_EQ(plan->parts()[0][0].slices.size(), 2u);
  EXPECT_EQ(plan->parts()[0][0].slices[0].count, uint64_t{1} << 28);
  EXPECT_EQ(plan->parts()[0][0].slices[1].count, 5u);

  // 2^26 floats in 1 KiB chunks would be 262144 parts: chunks grow to stay <= 65536.
  const uint64_t n = uint64_t{1} << 26;
  auto route2 = Route(1, {Dense("w", n)});
  std::vector<DenseRef> dense2 = {{"w", 0, n, &dummy}};
  absl::StatusOr<Plan> many = Plan::Build(*route2, dense2, {}, 1024, Plan::Kind::kPush);
  ASSERT_TRUE(many.ok());
  EXPECT_LE(many->parts()[0].size(), kMaxPushParts);
  uint64_t total = 0;
  for (const PlanPart& p : many->parts()[0]) total += p.floats;
  EXPECT_EQ(total, n);
}

TEST(PlanTest, DeterministicParts) {
  auto route = Route(2, {Dense("w", 200000), Sparse("emb", 8)});
  std::vector<float> w(200000);
  std::vector<uint64_t> keys(1000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i * 7919;
  std::vector<float> rows(keys.size() * 8);
  std::vector<DenseRef> dense = {{"w", 0, w.size(), w.data()}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 8, rows.data()}};
  absl::StatusOr<Plan> a = Plan::Build(*route, dense, sparse, 8192, Plan::Kind::kPush);
  absl::StatusOr<Plan> b = Plan::Build(*route, dense, sparse, 8192, Plan::Kind::kPush);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->parts().size(), b->parts().size());
  for (size_t s = 0; s < a->parts().size(); ++s) {
    ASSERT_EQ(a->parts()[s].size(), b->parts()[s].size());
    for (size_t p = 0; p < a->parts()[s].size(); ++p) {
      std::string x, y;
      GatherValues(a->parts()[s][p], dense, sparse, &x);
      GatherValues(b->parts()[s][p], dense, sparse, &y);
      EXPECT_EQ(x, y);
      ASSERT_EQ(a->parts()[s][p].slices.size(), b->parts()[s][p].slices.size());
    }
  }
}

TEST(PlanTest, ErrorsNameTheArgument) {
  auto route = Route(2, {Dense("w", 100), Sparse("emb", 3)});
  std::vector<float> buf(1000);
  std::vector<uint64_t> keys = {1, 2};

  std::vector<DenseRef> unknown = {{"w", 0, 10, buf.data()}, {"nope", 0, 1, buf.data()}};
  absl::StatusOr<Plan> p = Plan::Build(*route, unknown, {}, 4096, Plan::Kind::kPull);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(p.status().message().find("dense[1].table"), std::string::npos) << p.status();

  std::vector<DenseRef> outside = {{"w", 95, 10, buf.data()}};
  p = Plan::Build(*route, outside, {}, 4096, Plan::Kind::kPull);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(p.status().message().find("dense[0].begin"), std::string::npos) << p.status();

  std::vector<DenseRef> kind = {{"emb", 0, 1, buf.data()}};
  p = Plan::Build(*route, kind, {}, 4096, Plan::Kind::kPull);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);

  auto small = LendableFloats::Make(8);
  std::vector<DenseRef> not_inside = {{"w", 0, 10, small->data(), small}};
  p = Plan::Build(*route, not_inside, {}, 4096, Plan::Kind::kPush);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("dense[0].lendable"), std::string::npos) << p.status();
  not_inside = {{"w", 0, 10, buf.data(), small}};
  EXPECT_FALSE(Plan::Build(*route, not_inside, {}, 4096, Plan::Kind::kPush).ok());
  not_inside = {{"w", 0, 2, small->data() + 7, small}};  // One float past its end.
  EXPECT_FALSE(Plan::Build(*route, not_inside, {}, 4096, Plan::Kind::kPush).ok());
  const std::vector<DenseRef> inside = {{"w", 0, 8, small->data(), small},
                                        {"w", 8, 1, small->data() + 7, small},
                                        {"w", 9, 0, small->data() + 8, small}};
  EXPECT_TRUE(Plan::Build(*route, inside, {}, 4096, Plan::Kind::kPush).ok());

  std::vector<SparseRef> dim = {{"emb", keys.data(), keys.size(), 4, buf.data()}};
  p = Plan::Build(*route, {}, dim, 4096, Plan::Kind::kPull);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("sparse[0].dim"), std::string::npos) << p.status();

  std::vector<SparseRef> null_keys = {{"emb", nullptr, 2, 3, buf.data()}};
  p = Plan::Build(*route, {}, null_keys, 4096, Plan::Kind::kPull);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("sparse[0].keys"), std::string::npos) << p.status();

  // Scattering a wrong-sized answer is refused.
  std::vector<DenseRef> ok = {{"w", 0, 10, buf.data()}};
  p = Plan::Build(*route, ok, {}, 4096, Plan::Kind::kPull);
  ASSERT_TRUE(p.ok());
  for (const auto& parts : p->parts()) {
    for (const PlanPart& part : parts) {
      EXPECT_EQ(ScatterValues(part, "abc", ok, {}).code(), absl::StatusCode::kInternal);
    }
  }
}

TEST(CompleteCheckpointsTest, Intersects) {
  EXPECT_EQ(CompleteCheckpoints({{1, 2, 3, 5}, {2, 3, 4, 5}, {0, 3, 5}}),
            (std::vector<uint64_t>{3, 5}));
  EXPECT_TRUE(CompleteCheckpoints({}).empty());
}

}  // namespace
}  // namespace ps
