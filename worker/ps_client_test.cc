// PsClient against in-process shards: GrpcPsClient over real gRPC on 127.0.0.1 and
// LocalPsClient over the same ShardCore objects, with RocksDB under $TEST_TMPDIR.
#include "worker/ps_client.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/packing.h"
#include "common/partition.h"
#include "common/status.h"
#include "gtest/gtest.h"
#include "worker/grpc_ps_client.h"
#include "worker/local_ps_client.h"
#include "worker/ps_client_testing.h"

namespace ps {
namespace {

enum class Kind { kGrpc, kLocal };

TableSpec Dense(const std::string& name, uint64_t size, float lr,
                Initializer::Kind init = Initializer::ZEROS, float scale = 0.0f) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(TableSpec::DENSE);
  t.set_size(size);
  t.mutable_init()->set_kind(init);
  t.mutable_init()->set_scale(scale);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(lr);
  return t;
}

TableSpec Sparse(const std::string& name, uint32_t dim, float lr,
                 Initializer::Kind init = Initializer::ZEROS, float scale = 0.0f) {
  TableSpec t = Dense(name, 0, lr, init, scale);
  t.set_kind(TableSpec::SPARSE);
  t.set_dim(dim);
  return t;
}

ShardJobConfig JobConfig(const std::string& id, Consistency mode, uint32_t workers) {
  ShardJobConfig c;
  c.set_job_id(id);
  c.set_seed(7);
  c.mutable_consistency()->set_mode(mode);
  c.set_num_workers(workers);
  c.set_num_shards(2);
  return c;
}

// Exactly what the shard's SGD does with weight decay 0 (server/optimizer.cc).
void Sgd(float lr, float grad, float* w) {
  const float g = grad + 0.0f * *w;
  *w -= lr * g;
}

// Counts bitwise differences.
size_t Mismatches(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

class PsClientTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override { cluster_ = TestCluster::Start(2, TestDir(), GetParam() == Kind::kGrpc); }

  struct ClientOptions {
    uint64_t chunk_bytes = 64 << 10;
    absl::Duration rpc_timeout = absl::Seconds(60);
    int max_attempts = 8;
  };

  std::unique_ptr<PsClient> NewClient(ClientOptions o) {
    if (GetParam() == Kind::kGrpc) {
      GrpcPsClient::Options options;
      options.chunk_bytes = o.chunk_bytes;
      options.rpc_timeout = o.rpc_timeout;
      options.max_attempts = o.max_attempts;
      options.initial_backoff = absl::Milliseconds(10);
      auto client = GrpcPsClient::Connect(cluster_->addresses(), options);
      EXPECT_TRUE(client.ok()) << client.status();
      return *std::move(client);
    }
    LocalPsClient::Options options;
    options.chunk_bytes = o.chunk_bytes;
    options.rpc_timeout = o.rpc_timeout;
    auto client = LocalPsClient::Create(cluster_->cores(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }
  std::unique_ptr<PsClient> NewClient() { return NewClient(ClientOptions()); }

  // How errors name shard s.
  std::string ShardName(int s) const {
    return absl::StrCat("shard ", s, " (",
                        GetParam() == Kind::kGrpc ? cluster_->addresses()[s] : "local", "): ");
  }

  void SyncThreeRanksMatchReference(bool push_pull);

  std::unique_ptr<TestCluster> cluster_;
};

// Three ranks train four SYNC clocks concurrently, each with its own client; every
// pull sees exactly the state a single-process reference computes (mean of the ranks'
// gradients, summed in rank order, applied with SGD), bit for bit. With `push_pull`
// the ranks call PushPull (push of clock c with the pull of c + 1), as the trainer does.
void PsClientTest::SyncThreeRanksMatchReference(bool push_pull) {
  constexpr int kRanks = 3;
  constexpr int kClocks = 4;
  constexpr uint64_t kW = 200000;  // Four blocks: both shards hold part of it.
  constexpr uint64_t kB = 10;      // One block: one shard holds it, the other gets empty parts.
  constexpr uint32_t kDim = 4;
  constexpr int kKeySpace = 64;
  const float lr_w = 0.5f, lr_b = 0.25f, lr_e = 0.125f;
  const std::string job = "sync";
  const std::vector<TableSpec> tables = {
      Dense("w", kW, lr_w, Initializer::UNIFORM, 0.1f), Dense("b", kB, lr_b),
      Sparse("emb", kDim, lr_e, Initializer::NORMAL, 0.1f)};
  const ShardJobConfig config = JobConfig(job, SYNC, kRanks);

  auto key_of = [](int slot) { return static_cast<uint64_t>(slot) * 1000003 + 11; };
  // The keys of rank r at clock c: overlapping between ranks, with repeats.
  auto keys_of = [&](int r, int c) {
    std::vector<uint64_t> keys;
    for (int i = 0; i < 40; ++i) keys.push_back(key_of((r * 31 + c * 17 + i * 5) % kKeySpace));
    keys.push_back(keys[0]);
    return keys;
  };
  // Gradients: small multiples of powers of two, different per rank, clock and element.
  auto gw = [](int r, int c, uint64_t i) {
    return static_cast<float>(static_cast<int>((i * 7 + r * 13 + c * 29) % 101) - 50) / 256.0f;
  };
  auto gb = [](int r, int c, uint64_t i) {
    return static_cast<float>(static_cast<int>((i * 3 + r * 5 + c * 7) % 11) - 5) / 8.0f;
  };
  auto ge = [](int r, int c, size_t pos, uint32_t j) {
    return static_cast<float>(static_cast<int>((pos * 3 + j + r * 5 + c * 11) % 37) - 18) / 64.0f;
  };

  std::unique_ptr<PsClient> setup = NewClient();
  absl::StatusOr<uint64_t> clock = setup->SetupJob(config, tables);
  ASSERT_TRUE(clock.ok()) << clock.status();
  EXPECT_EQ(*clock, 0u);

  // The initial state, read without creating rows.
  std::vector<uint64_t> all_keys;
  for (int k = 0; k < kKeySpace; ++k) all_keys.push_back(key_of(k));
  struct State {
    std::vector<float> w = std::vector<float>(kW);
    std::vector<float> b = std::vector<float>(kB);
    std::vector<float> e = std::vector<float>(kKeySpace * kDim);  // Rows of all_keys.
  };
  auto read_state = [&](PsClient* client, State* s) {
    std::vector<DenseRef> dense = {{"w", 0, kW, s->w.data()}, {"b", 0, kB, s->b.data()}};
    std::vector<SparseRef> sparse = {{"emb", all_keys.data(), all_keys.size(), kDim, s->e.data()}};
    return client->Read(job, dense, sparse);
  };
  std::vector<State> states(kClocks + 1);
  ASSERT_TRUE(read_state(setup.get(), &states[0]).ok());

  // The single-process reference.
  for (int c = 0; c < kClocks; ++c) {
    State s = states[c];
    std::vector<float> sum_w(kW, 0.0f), sum_b(kB, 0.0f);
    std::map<uint64_t, std::vector<float>> sum_e;  // Key -> summed row.
    for (int r = 0; r < kRanks; ++r) {
      for (uint64_t i = 0; i < kW; ++i) sum_w[i] += gw(r, c, i);
      for (uint64_t i = 0; i < kB; ++i) sum_b[i] += gb(r, c, i);
      const std::vector<uint64_t> keys = keys_of(r, c);
      for (size_t p = 0; p < keys.size(); ++p) {
        std::vector<float>& row = sum_e[keys[p]];
        row.resize(kDim, 0.0f);
        for (uint32_t j = 0; j < kDim; ++j) row[j] += ge(r, c, p, j);
      }
    }
    const float workers = static_cast<float>(kRanks);
    for (uint64_t i = 0; i < kW; ++i) Sgd(lr_w, sum_w[i] / workers, &s.w[i]);
    for (uint64_t i = 0; i < kB; ++i) Sgd(lr_b, sum_b[i] / workers, &s.b[i]);
    for (int k = 0; k < kKeySpace; ++k) {
      auto it = sum_e.find(key_of(k));
      if (it == sum_e.end()) continue;
      for (uint32_t j = 0; j < kDim; ++j) Sgd(lr_e, it->second[j] / workers, &s.e[k * kDim + j]);
    }
    states[c + 1] = std::move(s);
  }

  std::vector<absl::Status> results(kRanks);
  std::vector<size_t> mismatches(kRanks, 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      std::unique_ptr<PsClient> client = NewClient();
      absl::StatusOr<uint64_t> c0 = client->SetupJob(config, tables);  // Idempotent.
      if (!c0.ok()) {
        results[r] = c0.status();
        return;
      }
      // The values of a clock, and their refs.
      struct Values {
        std::vector<float> w = std::vector<float>(kW), b = std::vector<float>(kB), e;
        std::vector<uint64_t> keys;
        std::vector<DenseRef> dense;
        std::vector<SparseRef> sparse;
        void Refs() {
          dense = {{"w", 0, kW, w.data()}, {"b", 0, kB, b.data()}};
          sparse = {{"emb", keys.data(), keys.size(), kDim, e.data()}};
        }
      };
      auto values_of = [&](int c) {
        auto v = std::make_unique<Values>();
        v->keys = keys_of(r, c);
        v->e.resize(v->keys.size() * kDim);
        v->Refs();
        return v;
      };
      std::unique_ptr<Values> params = values_of(0);
      if (absl::Status s = client->Pull(job, r, 0, params->dense, params->sparse); !s.ok()) {
        results[r] = Annotate(s, "pull of clock 0");
        return;
      }
      for (int c = 0; c < kClocks; ++c) {
        const State& want = states[c];
        mismatches[r] += Mismatches(params->w, want.w) + Mismatches(params->b, want.b);
        for (size_t p = 0; p < params->keys.size(); ++p) {
          const int slot = static_cast<int>((params->keys[p] - 11) / 1000003);
          for (uint32_t j = 0; j < kDim; ++j) {
            mismatches[r] += params->e[p * kDim + j] != want.e[slot * kDim + j];
          }
        }
        std::unique_ptr<Values> grads = values_of(c);
        for (uint64_t i = 0; i < kW; ++i) grads->w[i] = gw(r, c, i);
        for (uint64_t i = 0; i < kB; ++i) grads->b[i] = gb(r, c, i);
        for (size_t p = 0; p < grads->keys.size(); ++p) {
          for (uint32_t j = 0; j < kDim; ++j) grads->e[p * kDim + j] = ge(r, c, p, j);
        }
        params = values_of(c + 1);
        absl::Status s;
        if (push_pull) {
          s = client->PushPull(job, r, c, grads->dense, grads->sparse, params->dense,
                               params->sparse);
        } else {
          s = client->Push(job, r, c, grads->dense, grads->sparse);
          if (s.ok()) s = client->Pull(job, r, c + 1, params->dense, params->sparse);
        }
        if (!s.ok()) {
          results[r] = Annotate(s, absl::StrCat("push of clock ", c));
          return;
        }
      }
      // What the last pull read: the final state.
      mismatches[r] += Mismatches(params->w, states[kClocks].w);
    });
  }
  for (std::thread& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_TRUE(results[r].ok()) << "rank " << r << ": " << results[r];
    EXPECT_EQ(mismatches[r], 0u) << "rank " << r;
  }

  State final_state;
  absl::StatusOr<uint64_t> read_clock = read_state(setup.get(), &final_state);
  ASSERT_TRUE(read_clock.ok()) << read_clock.status();
  EXPECT_EQ(*read_clock, static_cast<uint64_t>(kClocks));
  EXPECT_EQ(Mismatches(final_state.w, states[kClocks].w), 0u);
  EXPECT_EQ(Mismatches(final_state.b, states[kClocks].b), 0u);
  EXPECT_EQ(Mismatches(final_state.e, states[kClocks].e), 0u);

  absl::StatusOr<std::vector<ShardJobStats>> stats = setup->GetStats(job, true);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 2u);
  for (const ShardJobStats& s : *stats) {
    EXPECT_EQ(s.clock, static_cast<uint64_t>(kClocks)) << "shard " << s.shard;
    EXPECT_EQ(s.worker_clocks, std::vector<uint64_t>(kRanks, kClocks)) << "shard " << s.shard;
    EXPECT_EQ(s.pushes_duplicate, 0u) << "shard " << s.shard;
    // Every rank sent every clock in at least one part.
    EXPECT_GE(s.pushes_applied, static_cast<uint64_t>(kRanks * kClocks)) << "shard " << s.shard;
    EXPECT_NE(s.state_digest, 0u);
  }
}

TEST_P(PsClientTest, SyncThreeRanksMatchSingleProcessReference) {
  SyncThreeRanksMatchReference(/*push_pull=*/false);
}

TEST_P(PsClientTest, SyncThreeRanksMatchSingleProcessReferenceWithPushPull) {
  SyncThreeRanksMatchReference(/*push_pull=*/true);
}

TEST_P(PsClientTest, RepeatedPushIsAcknowledgedNotApplied) {
  std::unique_ptr<PsClient> client = NewClient();
  const uint64_t n = 3 * 65536;
  const std::vector<TableSpec> tables = {Dense("w", n, 1.0f), Sparse("emb", 2, 1.0f)};
  ASSERT_TRUE(client->SetupJob(JobConfig("async", ASYNC, 1), tables).ok());
  std::vector<float> w(n);
  std::vector<uint64_t> keys = {1, 2, 3, 2, 99, 12345};
  std::vector<float> e(keys.size() * 2);
  std::vector<DenseRef> dense = {{"w", 0, n, w.data()}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 2, e.data()}};
  ASSERT_TRUE(client->Pull("async", 0, 0, dense, sparse).ok());
  for (uint64_t i = 0; i < n; ++i) w[i] = static_cast<float>(i % 17) / 4.0f;
  for (size_t i = 0; i < e.size(); ++i) e[i] = static_cast<float>(i) / 8.0f;
  ASSERT_TRUE(client->Push("async", 0, 0, dense, sparse).ok());
  auto once = client->GetStats("async", true);
  ASSERT_TRUE(once.ok()) << once.status();

  // The same (rank, clock) again, as a retrying worker would send it.
  absl::Status again = client->Push("async", 0, 0, dense, sparse);
  ASSERT_TRUE(again.ok()) << again;
  auto twice = client->GetStats("async", true);
  ASSERT_TRUE(twice.ok()) << twice.status();
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ((*twice)[s].state_digest, (*once)[s].state_digest) << "shard " << s;
    EXPECT_EQ((*twice)[s].pushes_applied, (*once)[s].pushes_applied) << "shard " << s;
    EXPECT_EQ((*once)[s].pushes_duplicate, 0u);
    // Every part of the repeat was a duplicate.
    EXPECT_EQ((*twice)[s].pushes_duplicate, (*once)[s].pushes_applied) << "shard " << s;
    EXPECT_EQ((*twice)[s].worker_clocks, std::vector<uint64_t>{1});
  }

  // Values: one step of SGD (lr 1) from zeros.
  std::vector<float> got(n);
  std::vector<DenseRef> read = {{"w", 0, n, got.data()}};
  ASSERT_TRUE(client->Read("async", read, {}).ok());
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -w[i]) << i;
}

TEST_P(PsClientTest, SmallChunksRoundTripExactly) {
  std::unique_ptr<PsClient> client = NewClient({/*chunk_bytes=*/4096});
  const uint64_t n = 100000;
  ASSERT_TRUE(client->SetupJob(JobConfig("chunks", ASYNC, 1), {Dense("w", n, 1.0f)}).ok());
  std::vector<float> g(n);
  for (uint64_t i = 0; i < n; ++i) g[i] = static_cast<float>(i) * 0.001f - 7.0f;
  std::vector<float> w(n, 1.0f);
  std::vector<DenseRef> pull = {{"w", 0, n, w.data()}};
  ASSERT_TRUE(client->Pull("chunks", 0, 0, pull, {}).ok());
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(w[i], 0.0f);
  std::vector<DenseRef> push = {{"w", 0, n, g.data()}};
  ASSERT_TRUE(client->Push("chunks", 0, 0, push, {}).ok());
  ASSERT_TRUE(client->Pull("chunks", 0, 1, pull, {}).ok());
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(w[i], -g[i]) << i;

  // A sub-range straddling both shards, into the middle of a buffer.
  std::vector<float> part(70000);
  std::vector<DenseRef> sub = {{"w", 12345, part.size(), part.data()}};
  ASSERT_TRUE(client->Pull("chunks", 0, 1, sub, {}).ok());
  for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], -g[12345 + i]) << i;

  auto stats = client->GetStats("chunks", false);
  ASSERT_TRUE(stats.ok());
  uint64_t parts = 0;
  for (const ShardJobStats& s : *stats) parts += s.pushes_applied;
  EXPECT_GE(parts, n * 4 / 4096);  // 400 KB in 4 KiB parts.
}

TEST_P(PsClientTest, SyncPullOfClockThatNeverCompletesTimesOut) {
  std::unique_ptr<PsClient> client =
      NewClient({64 << 10, /*rpc_timeout=*/absl::Milliseconds(300), /*max_attempts=*/1});
  ASSERT_TRUE(client->SetupJob(JobConfig("wait", SYNC, 2), {Dense("w", 1000, 0.1f)}).ok());
  std::vector<float> w(1000);
  std::vector<DenseRef> dense = {{"w", 0, 1000, w.data()}};
  ASSERT_TRUE(client->Pull("wait", 0, 0, dense, {}).ok());
  // Clock 1 needs both workers' pushes of clock 0; none come.
  const absl::Time start = absl::Now();
  absl::Status s = client->Pull("wait", 0, 1, dense, {});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "shard ")) << s;
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(10));
}

TEST_P(PsClientTest, MalformedUseNamesShardAndField) {
  std::unique_ptr<PsClient> client = NewClient();
  const uint64_t n = 3 * 65536;
  const std::vector<TableSpec> tables = {Dense("w", n, 0.1f), Sparse("emb", 3, 0.1f)};
  ASSERT_TRUE(client->SetupJob(JobConfig("bad", ASYNC, 1), tables).ok());
  std::vector<float> buf(n);
  std::vector<uint64_t> keys = {1, 2};

  std::vector<DenseRef> unknown = {{"nope", 0, 10, buf.data()}};
  absl::Status s = client->Pull("bad", 0, 0, unknown, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "dense[0].table")) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "'nope'")) << s;

  std::vector<DenseRef> outside = {{"w", n - 5, 10, buf.data()}};
  s = client->Push("bad", 0, 0, outside, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "dense[0].begin")) << s;

  std::vector<SparseRef> dim = {{"emb", keys.data(), 2, 4, buf.data()}};
  s = client->Pull("bad", 0, 0, {}, dim);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "sparse[0].dim")) << s;

  // Found by the shards: a rank the job does not have.
  std::vector<DenseRef> all = {{"w", 0, n, buf.data()}};
  s = client->Pull("bad", 5, 0, all, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), ShardName(0)) ||
              absl::StartsWith(s.message(), ShardName(1)))
      << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "rank: 5")) << s;

  // A table dropped on shard 1 behind the client's back.
  auto job = cluster_->cores()[1]->FindJob("bad");
  ASSERT_TRUE(job.ok());
  ASSERT_TRUE((*job)->DropTable("w").ok());
  s = client->Pull("bad", 0, 0, all, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), ShardName(1) + "slices[0].table")) << s;

  // Setup errors.
  ShardJobConfig three = JobConfig("bad", ASYNC, 1);
  three.set_num_shards(3);
  s = client->SetupJob(three, tables).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "config.num_shards")) << s;

  TableSpec zero_lr = Dense("z", 10, 0.1f);
  zero_lr.mutable_optimizer()->set_learning_rate(0.0f);
  s = client->SetupJob(JobConfig("bad", ASYNC, 1), {zero_lr}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "tables[0].optimizer.learning_rate")) << s;

  s = client->SetupJob(JobConfig("bad", ASYNC, 1), {Dense("emb", 10, 0.1f)}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "shard ")) << s;

  s = client->Pull("nojob", 0, 0, all, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "shard ")) << s;
}

TEST_P(PsClientTest, AttachCheckpointRestore) {
  std::unique_ptr<PsClient> client = NewClient();
  const uint64_t n = 70000;
  const std::vector<TableSpec> tables = {Dense("w", n, 0.5f, Initializer::UNIFORM, 1.0f),
                                         Sparse("emb", 2, 0.5f)};
  ASSERT_TRUE(client->SetupJob(JobConfig("ck", SYNC, 1), tables).ok());
  std::vector<float> w(n);
  std::vector<uint64_t> keys = {5, 6, 7};
  std::vector<float> e(6);
  std::vector<DenseRef> dense = {{"w", 0, n, w.data()}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 2, e.data()}};
  for (uint64_t c = 0; c < 2; ++c) {
    ASSERT_TRUE(client->Pull("ck", 0, c, dense, sparse).ok());
    std::fill(w.begin(), w.end(), 0.25f);
    std::fill(e.begin(), e.end(), 1.0f);
    ASSERT_TRUE(client->Push("ck", 0, c, dense, sparse).ok());
  }
  auto ck = client->Checkpoint("ck");
  ASSERT_TRUE(ck.ok()) << ck.status();
  ASSERT_EQ(ck->size(), 2u);
  for (const ShardCheckpoint& c : *ck) EXPECT_EQ(c.clock, 2u);
  auto at2 = client->GetStats("ck", true);
  ASSERT_TRUE(at2.ok());

  // A client that never set the job up learns it from the shards.
  std::unique_ptr<PsClient> other = NewClient();
  std::vector<float> w2(n);
  std::vector<DenseRef> dense2 = {{"w", 0, n, w2.data()}};
  ASSERT_TRUE(other->Pull("ck", 0, 2, dense2, {}).ok());
  ASSERT_TRUE(client->Pull("ck", 0, 2, dense, {}).ok());
  EXPECT_EQ(Mismatches(w, w2), 0u);
  ASSERT_TRUE(other->Push("ck", 0, 2, dense2, {}).ok());

  auto lists = client->ListCheckpoints("ck");
  ASSERT_TRUE(lists.ok()) << lists.status();
  EXPECT_EQ(CompleteCheckpoints(*lists), std::vector<uint64_t>{2});

  ASSERT_TRUE(client->Restore("ck", 2).ok());
  auto restored = client->GetStats("ck", true);
  ASSERT_TRUE(restored.ok());
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ((*restored)[s].state_digest, (*at2)[s].state_digest) << "shard " << s;
    EXPECT_EQ((*restored)[s].clock, 2u);
  }
  absl::Status missing = client->Restore("ck", 99);
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_TRUE(absl::StartsWith(missing.message(), "shard ")) << missing;

  // A restarted worker sets the job up again and gets the restored clock.
  absl::StatusOr<uint64_t> clock = other->SetupJob(JobConfig("ck", SYNC, 1), tables);
  ASSERT_TRUE(clock.ok()) << clock.status();
  EXPECT_EQ(*clock, 2u);

  ASSERT_TRUE(client->DropJob("ck", true).ok());
  EXPECT_EQ(client->Pull("ck", 0, 2, dense, {}).code(), absl::StatusCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Clients, PsClientTest, ::testing::Values(Kind::kGrpc, Kind::kLocal),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return info.param == Kind::kGrpc ? "Grpc" : "Local";
                         });

// gRPC only: transport faults injected in front of the real service.
class GrpcPsClientTest : public ::testing::Test {
 protected:
  void SetUp() override { cluster_ = TestCluster::Start(2, TestDir()); }

  std::unique_ptr<GrpcPsClient> Connect(int max_attempts = 8, uint64_t chunk_bytes = 64 << 10) {
    GrpcPsClient::Options o;
    o.max_attempts = max_attempts;
    o.chunk_bytes = chunk_bytes;
    o.initial_backoff = absl::Milliseconds(5);
    o.channels_per_shard = 3;
    auto client = GrpcPsClient::Connect(cluster_->addresses(), o);
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  std::unique_ptr<TestCluster> cluster_;
};

TEST_F(GrpcPsClientTest, ConnectValidates) {
  EXPECT_EQ(GrpcPsClient::Connect({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GrpcPsClient::Connect({"127.0.0.1:1", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  GrpcPsClient::Options o;
  o.channels_per_shard = 0;
  EXPECT_EQ(GrpcPsClient::Connect({"127.0.0.1:1"}, o).status().code(),
            absl::StatusCode::kInvalidArgument);
  GrpcPsClient::Options negative;
  negative.push_pull_retry = absl::Seconds(-1);
  absl::Status s = GrpcPsClient::Connect({"127.0.0.1:1"}, negative).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("push_pull_retry"), absl::string_view::npos) << s;
}

TEST_F(GrpcPsClientTest, LostAndFailedCallsAreRetriedAndPushesDeduplicated) {
  std::unique_ptr<GrpcPsClient> client = Connect();
  const uint64_t n = 3 * 65536;
  ASSERT_TRUE(client->SetupJob(JobConfig("retry", SYNC, 1), {Dense("w", n, 1.0f)}).ok());
  std::vector<float> w(n);
  std::vector<DenseRef> dense = {{"w", 0, n, w.data()}};
  cluster_->service(0)->FailPulls(2);
  ASSERT_TRUE(client->Pull("retry", 0, 0, dense, {}).ok());
  EXPECT_EQ(cluster_->service(0)->injected(), 2);

  for (uint64_t i = 0; i < n; ++i) w[i] = static_cast<float>(i % 1000) / 16.0f;
  // Shard 1 applies the first part it gets but the answer is lost; shard 0 refuses two.
  cluster_->service(1)->LosePushResponses(1);
  cluster_->service(0)->FailPushes(2);
  absl::Status s = client->Push("retry", 0, 0, dense, {});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(cluster_->service(1)->injected(), 1);
  EXPECT_EQ(cluster_->service(0)->injected(), 4);

  auto stats = client->GetStats("retry", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[0].pushes_duplicate, 0u);
  EXPECT_EQ((*stats)[1].pushes_duplicate, 1u);
  for (const ShardJobStats& st : *stats) EXPECT_EQ(st.clock, 1u);

  // Applied exactly once: one SGD step (lr 1) from zeros.
  std::vector<float> got(n);
  std::vector<DenseRef> read = {{"w", 0, n, got.data()}};
  ASSERT_TRUE(client->Pull("retry", 0, 1, read, {}).ok());
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -w[i]) << i;
}

// PushPull under failures: refused and lost push parts are retried (the lost one
// acknowledged as a duplicate), a refused pull is retried, and every pull part reads
// the worker's own update: part by part where the two calls cover the same ranges,
// after the whole push of the shard where they do not.
TEST_F(GrpcPsClientTest, PushPullRetriesAndReadsItsOwnUpdate) {
  std::unique_ptr<GrpcPsClient> client = Connect();
  const uint64_t n = 3 * 65536;  // 12 parts of 64 KiB over the two shards.
  ASSERT_TRUE(client
                  ->SetupJob(JobConfig("pp", ASYNC, 1),
                             {Dense("w", n, 1.0f), Dense("b", 10, 1.0f)})
                  .ok());
  std::vector<float> grad(n), got(n, 7.0f);
  for (uint64_t i = 0; i < n; ++i) grad[i] = static_cast<float>(i % 1000) / 16.0f;
  std::vector<DenseRef> push = {{"w", 0, n, grad.data()}};
  std::vector<DenseRef> pull = {{"w", 0, n, got.data()}};
  cluster_->service(0)->FailPushes(2);
  cluster_->service(1)->LosePushResponses(1);
  cluster_->service(0)->FailPulls(1);
  const FlakyShardService::Calls before0 = cluster_->service(0)->calls();
  absl::Status s = client->PushPull("pp", 0, 0, push, {}, pull, {});
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(cluster_->service(0)->injected(), 3);
  EXPECT_EQ(cluster_->service(1)->injected(), 1);
  // Each part's pull rode on the push of the same ranges.
  const FlakyShardService::Calls after0 = cluster_->service(0)->calls();
  EXPECT_GE(after0.push_pull - before0.push_pull, 3 + 1);  // 3 failed, then each part once.
  EXPECT_EQ(after0.push, before0.push);
  EXPECT_EQ(after0.pull, before0.pull);
  // One SGD step (lr 1) from zeros, applied once and read back.
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -grad[i]) << i;
  auto stats = client->GetStats("pp", false);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)[1].pushes_duplicate, 1u);

  // Pulling other ranges than were pushed: each pull part waits for its shard's push.
  std::vector<float> b(10, 7.0f), w_head(1000, 7.0f);
  std::vector<DenseRef> other = {{"b", 0, 10, b.data()}, {"w", 0, 1000, w_head.data()}};
  ASSERT_TRUE(client->PushPull("pp", 0, 1, push, {}, other, {}).ok());
  for (uint64_t i = 0; i < 1000; ++i) ASSERT_EQ(w_head[i], -2 * grad[i]) << i;
  for (float v : b) EXPECT_EQ(v, 0.0f);

  // As many parts as the push, each shifted by 16 elements: none pairs with a push
  // part, so none rides on one, and every pull part still reads the whole push.
  const uint64_t shift = 16;
  std::vector<float> shifted(n - shift, 7.0f);
  std::vector<DenseRef> push_head = {{"w", 0, n - shift, grad.data()}};
  std::vector<DenseRef> pull_tail = {{"w", shift, n - shift, shifted.data()}};
  const FlakyShardService::Calls before_shift[2] = {cluster_->service(0)->calls(),
                                                    cluster_->service(1)->calls()};
  ASSERT_TRUE(client->PushPull("pp", 0, 2, push_head, {}, pull_tail, {}).ok());
  for (uint32_t sh = 0; sh < 2; ++sh) {
    const FlakyShardService::Calls now = cluster_->service(sh)->calls();
    EXPECT_EQ(now.push_pull, before_shift[sh].push_pull) << sh;
    EXPECT_EQ(now.push - before_shift[sh].push, now.pull - before_shift[sh].pull) << sh;
  }
  for (uint64_t i = 0; i < n - shift; ++i) {
    const uint64_t at = i + shift;  // Pushed three times, but for the last `shift`.
    const float want = at < n - shift ? -3 * grad[at] : -2 * grad[at];
    ASSERT_EQ(shifted[i], want) << i;
  }
}

// PushPull is one round trip per pair of parts: in SYNC any push part carries a pull
// part, as many as the two calls have per shard; the rest go alone. Against a shard
// built before PushPull (UNIMPLEMENTED) the call is repeated with that shard's pushes
// and pulls separate, and so are later calls to it (until push_pull_retry has passed),
// with the same results.
TEST_F(GrpcPsClientTest, PushPullIsOneCallPerPartAndFallsBackForOlderShards) {
  std::unique_ptr<GrpcPsClient> client = Connect();  // 64 KiB parts.
  const uint64_t n = 3 * 65536;                      // 12 parts over the two shards.
  ASSERT_TRUE(
      client->SetupJob(JobConfig("pp", SYNC, 1), {Dense("w", n, 1.0f), Dense("b", 10, 1.0f)})
          .ok());
  std::vector<float> grad(n), got(n, 7.0f), b(10, 7.0f);
  for (uint64_t i = 0; i < n; ++i) grad[i] = static_cast<float>(i % 1000) / 16.0f;
  std::vector<DenseRef> push = {{"w", 0, n, grad.data()}};
  std::vector<DenseRef> pull = {{"w", 0, n, got.data()}};
  std::vector<DenseRef> pull_b = {{"b", 0, 10, b.data()}};
  using Calls = FlakyShardService::Calls;
  auto delta = [&](uint32_t shard, const Calls& before) {
    const Calls now = cluster_->service(shard)->calls();
    return Calls{now.pull - before.pull, now.push - before.push,
                 now.push_pull - before.push_pull};
  };
  Calls before[2] = {cluster_->service(0)->calls(), cluster_->service(1)->calls()};
  ASSERT_TRUE(client->PushPull("pp", 0, 0, push, {}, pull, {}).ok());
  int parts[2];  // Per shard: the parts of a push (and of a pull) of all of "w".
  for (uint32_t s = 0; s < 2; ++s) {
    const Calls d = delta(s, before[s]);
    parts[s] = d.push_pull;
    EXPECT_GE(d.push_pull, 2) << s;
    EXPECT_EQ(d.push, 0) << s;
    EXPECT_EQ(d.pull, 0) << s;
  }
  EXPECT_EQ(parts[0] + parts[1], 12);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -grad[i]) << i;

  // Pulling "b" alone: one pull part per shard (an empty one where it holds none), so
  // one push part per shard carries it and the others go as plain pushes.
  for (uint32_t s = 0; s < 2; ++s) before[s] = cluster_->service(s)->calls();
  ASSERT_TRUE(client->PushPull("pp", 0, 1, push, {}, pull_b, {}).ok());
  for (uint32_t s = 0; s < 2; ++s) {
    const Calls d = delta(s, before[s]);
    EXPECT_EQ(d.push_pull, 1) << s;
    EXPECT_EQ(d.push, parts[s] - 1) << s;
    EXPECT_EQ(d.pull, 0) << s;
  }
  for (float v : b) EXPECT_EQ(v, 0.0f);

  cluster_->service(1)->RefusePushPull(true);
  for (uint32_t s = 0; s < 2; ++s) before[s] = cluster_->service(s)->calls();
  ASSERT_TRUE(client->PushPull("pp", 0, 2, push, {}, pull, {}).ok());
  const Calls refused = delta(1, before[1]);
  EXPECT_GE(refused.push_pull, 1);  // Those sent before the first refusal cancelled the rest.
  EXPECT_LE(refused.push_pull, parts[1]);
  EXPECT_EQ(refused.push, parts[1]);
  EXPECT_EQ(refused.pull, parts[1]);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -3 * grad[i]) << i;
  // Shard 1 is no longer asked; shard 0 still takes PushPull.
  for (uint32_t s = 0; s < 2; ++s) before[s] = cluster_->service(s)->calls();
  ASSERT_TRUE(client->PushPull("pp", 0, 3, push, {}, pull, {}).ok());
  const Calls d0 = delta(0, before[0]), d1 = delta(1, before[1]);
  EXPECT_EQ(d0.push_pull, parts[0]);
  EXPECT_EQ(d0.push, 0);
  EXPECT_EQ(d0.pull, 0);
  EXPECT_EQ(d1.push_pull, 0);
  EXPECT_EQ(d1.push, parts[1]);
  EXPECT_EQ(d1.pull, parts[1]);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -4 * grad[i]) << i;

  // A client that asks a refusing shard again at once (push_pull_retry 0) finds it
  // upgraded as soon as it is.
  GrpcPsClient::Options o = client->options();
  o.push_pull_retry = absl::ZeroDuration();
  absl::StatusOr<std::unique_ptr<GrpcPsClient>> eager =
      GrpcPsClient::Connect(cluster_->addresses(), o);
  ASSERT_TRUE(eager.ok()) << eager.status();
  for (uint64_t c = 4; c < 6; ++c) {
    before[1] = cluster_->service(1)->calls();
    ASSERT_TRUE((*eager)->PushPull("pp", 0, c, push, {}, pull, {}).ok());
    const Calls d = delta(1, before[1]);
    EXPECT_GE(d.push_pull, 1) << c;  // Asked again, refused again.
    EXPECT_EQ(d.push, parts[1]) << c;
  }
  cluster_->service(1)->RefusePushPull(false);
  before[1] = cluster_->service(1)->calls();
  ASSERT_TRUE((*eager)->PushPull("pp", 0, 6, push, {}, pull, {}).ok());
  const Calls upgraded = delta(1, before[1]);
  EXPECT_EQ(upgraded.push_pull, parts[1]);
  EXPECT_EQ(upgraded.push, 0);
  EXPECT_EQ(upgraded.pull, 0);
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -7 * grad[i]) << i;
  // Every push was applied once: 7 clocks, no step twice.
  auto stats = client->GetStats("pp", false);
  ASSERT_TRUE(stats.ok());
  for (const ShardJobStats& st : *stats) EXPECT_EQ(st.clock, 7u);
}

// Gradients in a LendableFloats go out without a copy, mixed in one part with copied
// ones (a second dense table and sparse rows), through retries, and apply exactly as
// copied ones do; the loans come back after the push, and hold the memory when the
// caller lets go of it first. The shards' pulls lend their blocks too: with one worker
// no block needs a copy on write.
TEST_F(GrpcPsClientTest, LendableGradientsApplyAsCopiedOnesAndComeBack) {
  std::unique_ptr<GrpcPsClient> client = Connect();
  const uint64_t n = 3 * 65536;  // Several parts per shard.
  ASSERT_TRUE(client
                  ->SetupJob(JobConfig("lend", ASYNC, 1),
                             {Dense("w", n, 1.0f), Dense("b", 10, 1.0f), Sparse("emb", 2, 1.0f)})
                  .ok());
  std::shared_ptr<LendableFloats> grad = LendableFloats::Make(n + 16);
  for (uint64_t i = 0; i < n; ++i) grad->data()[16 + i] = static_cast<float>(i % 1000) / 16.0f;
  std::vector<float> b_grad(10, 0.5f);
  const std::vector<uint64_t> keys = {7, 1000001};
  std::vector<float> rows = {0.25f, -0.5f, 1.0f, 2.0f};
  std::vector<DenseRef> push = {{"b", 0, 10, b_grad.data()},
                                {"w", 0, n, grad->data() + 16, grad}};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 2, rows.data()}};
  cluster_->service(0)->FailPushes(1);
  ASSERT_TRUE(client->Push("lend", 0, 0, push, sparse).ok());
  EXPECT_EQ(cluster_->service(0)->injected(), 1);
  std::weak_ptr<LendableFloats> weak = grad;
  push.clear();
  grad.reset();  // Whatever gRPC still holds stays allocated until it lets go.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!weak.expired() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(weak.expired()) << "a loan of the gradients was never returned";

  // One SGD step (lr 1) from zeros, read twice: the first pull's blocks are lent to
  // gRPC while the second reads them.
  std::vector<float> w(n, 7.0f), b(10, 7.0f), got_rows(4, 7.0f);
  std::vector<DenseRef> pull = {{"w", 0, n, w.data()}, {"b", 0, 10, b.data()}};
  std::vector<SparseRef> read = {{"emb", keys.data(), keys.size(), 2, got_rows.data()}};
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(client->Pull("lend", 0, 1, pull, read).ok());
    for (uint64_t i = 0; i < n; ++i) {
      ASSERT_EQ(w[i], -static_cast<float>(i % 1000) / 16.0f) << i;
    }
    for (float v : b) EXPECT_EQ(v, -0.5f);
    for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(got_rows[i], -rows[i]);
  }
  auto stats = client->GetStats("lend", false);
  ASSERT_TRUE(stats.ok());
  for (const ShardJobStats& st : *stats) EXPECT_EQ(st.dense_copies_on_write, 0u);
}

// Pulls and pushes of the same blocks at once, over gRPC: a pull is sent from the
// table's blocks, and a push that arrives while it is being sent copies the blocks
// first. Every push part and every pull covers one shard's whole half of the table,
// applied or read under one lock, so a pull whose bytes a push changed in flight would
// show two different values; none may. Meant for --config=tsan too.
TEST_F(GrpcPsClientTest, PullsBeingSentKeepTheirValuesWhilePushesLand) {
  const uint64_t n = uint64_t{2} << 20;  // Two halves of 4 MiB, one per shard.
  std::unique_ptr<GrpcPsClient> writer = Connect(8, 4 << 20);
  std::unique_ptr<GrpcPsClient> reader = Connect(8, 4 << 20);
  ASSERT_TRUE(writer->SetupJob(JobConfig("cow", ASYNC, 2), {Dense("w", n, 1.0f)}).ok());
  std::atomic<bool> done{false};
  std::atomic<int> pushes{0};
  std::thread push_loop([&] {
    std::shared_ptr<LendableFloats> grad = LendableFloats::Make(n);
    std::fill(grad->data(), grad->data() + n, 1.0f);
    const std::vector<DenseRef> push = {{"w", 0, n, grad->data(), grad}};
    for (uint64_t clock = 0; !done.load(); ++clock) {
      ASSERT_TRUE(writer->Push("cow", 0, clock, push, {}).ok());
      pushes.fetch_add(1);
    }
  });
  std::vector<float> half(n / 2);
  int pulls = 0, torn = 0;
  uint64_t copies = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while ((pulls < 40 || copies < 3) && absl::Now() < deadline) {
    const std::vector<DenseRef> pull = {{"w", (pulls % 2) * (n / 2), n / 2, half.data()}};
    ASSERT_TRUE(reader->Pull("cow", 1, 0, pull, {}).ok());
    ++pulls;
    torn += std::count(half.begin(), half.end(), half[0]) != static_cast<long>(half.size());
    EXPECT_LE(half[0], 0.0f);
    EXPECT_EQ(half[0], std::floor(half[0]));  // Whole steps of -1 only.
    if (pulls % 10 == 0) {
      auto stats = reader->GetStats("cow", false);
      ASSERT_TRUE(stats.ok());
      copies = 0;
      for (const ShardJobStats& st : *stats) copies += st.dense_copies_on_write;
    }
  }
  done.store(true);
  push_loop.join();
  EXPECT_EQ(torn, 0) << "of " << pulls << " pulls";
  EXPECT_GT(pushes.load(), 0);
  // Whether a push met a block still being sent is up to the scheduler: in plain
  // builds within the first few pulls (with copy on write disabled, 963 torn pulls of
  // a run), but once in a slow --config=tsan run on a busy machine, never in 20 s.
  // Then there was nothing to check, which is a skip, not a pass. The copies
  // themselves are checked deterministically in shard_job_test and table_test.
  if (copies == 0) {
    GTEST_SKIP() << "no push met a block in flight (" << pulls << " pulls, " << pushes.load()
                 << " pushes)";
  }
}

// A job with bf16_gradients: pushes go as bfloat16 and apply as the rounded values,
// dense and sparse, from the client that set the job up and from one that only
// attached to it (the job's config says how to push).
TEST_F(GrpcPsClientTest, Bf16JobsPushRoundedGradientsFromEveryClient) {
  std::unique_ptr<GrpcPsClient> client = Connect();
  const uint64_t n = 3 * 65536;  // Several parts per shard.
  ShardJobConfig config = JobConfig("bf", ASYNC, 1);
  config.set_bf16_gradients(true);
  ASSERT_TRUE(client->SetupJob(config, {Dense("w", n, 1.0f), Sparse("emb", 4, 1.0f)}).ok());
  std::vector<float> grad(n), got(n, 7.0f);
  for (uint64_t i = 0; i < n; ++i) grad[i] = 0.001f * static_cast<float>(i % 977) + 1e-5f;
  auto rounded = [](float f) { return FloatFromBf16(Bf16FromFloat(f)); };
  std::vector<DenseRef> push = {{"w", 0, n, grad.data()}};
  std::vector<DenseRef> pull = {{"w", 0, n, got.data()}};
  ASSERT_TRUE(client->PushPull("bf", 0, 0, push, {}, pull, {}).ok());
  size_t differ = 0;
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i], -rounded(grad[i])) << i;  // One SGD step (lr 1) from zeros.
    differ += rounded(grad[i]) != grad[i] ? 1 : 0;
  }
  EXPECT_GT(differ, n / 2);  // The test could tell float32 from bfloat16.

  std::unique_ptr<GrpcPsClient> other = Connect();
  const std::vector<uint64_t> keys = {3, 1000003, 42};
  std::vector<float> rows = {0.1f, 0.2f, 0.3f, 0.4f, 1.1f, 1.2f, 1.3f, 1.4f,
                             -0.5f, 0.25f, 3.3f, 1e-3f};
  std::vector<SparseRef> sparse = {{"emb", keys.data(), keys.size(), 4, rows.data()}};
  ASSERT_TRUE(other->Push("bf", 0, 1, push, sparse).ok());
  std::vector<float> pulled(rows.size(), 7.0f);
  std::vector<SparseRef> read = {{"emb", keys.data(), keys.size(), 4, pulled.data()}};
  ASSERT_TRUE(other->Pull("bf", 0, 2, pull, read).ok());
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(pulled[i], -rounded(rows[i])) << i;
  for (uint64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], -rounded(grad[i]) - rounded(grad[i])) << i;
}

// A SYNC pull waits on every shard, also one it reads nothing from: otherwise the push
// of the next clock can reach that shard before it applied the previous clock (a rank's
// part to it still in flight) and be refused as out of order.
TEST_F(GrpcPsClientTest, SyncPullWaitsOnShardsItReadsNothingFrom) {
  // "b" fits in one block: one shard holds it, the other only gets empty parts.
  auto part = DensePartition::Create("b", 10, 2);
  ASSERT_TRUE(part.ok());
  const int holder = part->RangeOf(0).count > 0 ? 0 : 1;
  const int other = 1 - holder;
  std::unique_ptr<GrpcPsClient> rank0 = Connect();
  GrpcPsClient::Options slow;
  slow.initial_backoff = absl::Milliseconds(300);
  auto rank1 = GrpcPsClient::Connect(cluster_->addresses(), slow);
  ASSERT_TRUE(rank1.ok());
  const std::vector<TableSpec> tables = {Dense("b", 10, 1.0f)};
  ASSERT_TRUE(rank0->SetupJob(JobConfig("gate", SYNC, 2), tables).ok());
  std::vector<float> b0(10, 1.0f), b1(10, 1.0f);
  std::vector<DenseRef> d0 = {{"b", 0, 10, b0.data()}};
  std::vector<DenseRef> d1 = {{"b", 0, 10, b1.data()}};
  ASSERT_TRUE(rank0->Pull("gate", 0, 0, d0, {}).ok());
  ASSERT_TRUE((*rank1)->Pull("gate", 1, 0, d1, {}).ok());
  ASSERT_TRUE(rank0->Push("gate", 0, 0, d0, {}).ok());
  // Rank 1's (empty) part to the other shard is refused once and retried 300 ms later;
  // its part to the holder arrives at once and completes clock 0 there.
  cluster_->service(other)->FailPushes(1, /*rank=*/1);
  absl::Status pushed1;
  std::thread t([&] { pushed1 = (*rank1)->Push("gate", 1, 0, d1, {}); });
  absl::Status pulled = rank0->Pull("gate", 0, 1, d0, {});
  absl::Status pushed0 = rank0->Push("gate", 0, 1, d0, {});
  t.join();
  EXPECT_TRUE(pulled.ok()) << pulled;
  EXPECT_TRUE(pushed0.ok()) << pushed0;
  EXPECT_TRUE(pushed1.ok()) << pushed1;
  EXPECT_EQ(cluster_->service(other)->injected(), 1);
  EXPECT_EQ(cluster_->service(holder)->injected(), 0);
}

TEST_F(GrpcPsClientTest, GivesUpAfterMaxAttemptsNamingTheShard) {
  std::unique_ptr<GrpcPsClient> client = Connect(/*max_attempts=*/3);
  ASSERT_TRUE(client->SetupJob(JobConfig("flaky", ASYNC, 1), {Dense("w", 3 * 65536, 1.0f)}).ok());
  std::vector<float> w(3 * 65536);
  std::vector<DenseRef> dense = {{"w", 0, w.size(), w.data()}};
  cluster_->service(1)->FailPulls(1000);
  absl::Status s = client->Pull("flaky", 0, 0, dense, {});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_TRUE(absl::StartsWith(s.message(), "shard 1 (" + client->address(1) + "): injected"))
      << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "after 3 attempts")) << s;
  // One failing part per attempt (the other parts of shard 1 may have failed as well).
  EXPECT_GE(cluster_->service(1)->injected(), 3);
}

TEST_F(GrpcPsClientTest, UnreachableShardIsUnavailable) {
  GrpcPsClient::Options o;
  o.max_attempts = 2;
  o.initial_backoff = absl::Milliseconds(1);
  o.rpc_timeout = absl::Seconds(5);
  // Port 1 on loopback: nothing listens there.
  auto client = GrpcPsClient::Connect({cluster_->addresses()[0], "127.0.0.1:1"}, o);
  ASSERT_TRUE(client.ok());
  absl::StatusOr<uint64_t> s = (*client)->SetupJob(JobConfig("x", ASYNC, 1), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_TRUE(absl::StartsWith(s.status().message(), "shard 1 (127.0.0.1:1): ")) << s.status();
}

}  // namespace
}  // namespace ps
