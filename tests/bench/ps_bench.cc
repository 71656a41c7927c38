// ps_bench: the project's data-path benchmark. One run is one comparison: every figure
// of ours is measured beside its baseline in the same process and the same run.
//
//   bazel run -c opt //tests/bench:ps_bench -- --all --json
//   bazel run -c opt //tests/bench:ps_bench -- --mode=dense,latency --quick
//   bazel run -c opt //tests/bench:ps_bench -- --mode=dense --dense_floats=16777216
//       --dense_shards=2 --dense_clients=1 [--no_baseline]   (one configuration, e.g. under perf)
//
// Modes (each a key of the JSON object on stdout, a list of rows):
//   dense       push+pull of dense tensors vs the best raw gRPC echo of the same bytes:
//               both timed in rounds (a round ends with its last reply), compared
//               best round to best round (`ratio`) and mean to mean (`mean_ratio`),
//               with the CPU seconds per GB each took (`cpu_ratio`: ours / raw)
//   sparse      pull and push of 100k keys per call vs memcpy of the same bytes
//   latency     small (1 KiB) pull, push and push+pull (PushPull) round trips vs a raw
//               1 KiB echo
//   e2e         training samples/s of bundled jobs with 1 and 2 workers
//   checkpoint  checkpoint MB/s and pause vs a raw RocksDB WriteBatch of the same bytes;
//               the time of a SYNC push that takes a checkpoint's snapshot
//               (`trigger_push_ms`) against the other pushes (`other_push_ms`), with a
//               small table pushed and with the whole table (`whole_*`)
// Shards run in this process behind the real gRPC service on 127.0.0.1 (as the raw
// echo does), so ours and raw share the same two cores. Logs go to stderr.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/sync.h"
#include "google/protobuf/text_format.h"
#include "server/checkpoint_bench.h"
#include "tests/bench/bench_util.h"
#include "tests/bench/echo.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/grpc_ps_client.h"
#include "worker/ps_client_testing.h"
#include "worker/trainer.h"

namespace ps::bench {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

struct Args {
  std::set<std::string> modes;
  bool json = false;
  bool quick = false;
  // Where the jobs' data paths resolve (common/data_paths.h): by default the real
  // source folder behind the runfiles (relative paths) and /usr/share/datasets.
  std::string data_root;
  std::vector<std::string> e2e_jobs = {"deploy/jobs/digits_softmax.textproto",
                                       "deploy/jobs/fashion_mnist_mlp.textproto"};
  // Run as well when their generated data is there (deploy/data/BUILD makes it).
  std::vector<std::string> e2e_optional_jobs = {
      "deploy/jobs/keras_mirrored_binary.textproto",
      "deploy/jobs/torch_dataparallel_binary.textproto"};
  int e2e_clocks = 0;  // 0: the mode's default.
  // GrpcPsClient options (0: the client's defaults), for sweeps.
  uint64_t chunk_kb = 0;
  int channels = 0;
  // Dense sweep limits (empty: the mode's defaults), to profile one configuration.
  std::vector<uint64_t> dense_floats;
  std::vector<int> dense_shards;
  std::vector<int> dense_clients;
  bool no_baseline = false;  // Profiling ours alone: no raw echo, ratios 0.
  double dense_gb = 1.0;  // GB (push + pull) a dense row moves sequentially, and pipelined.
  double sparse_s = 0.5;     // Seconds of pulls, and of pushes, per sparse row.
  // Sparse sweep limits (empty: the mode's defaults), to profile one configuration.
  std::vector<uint32_t> sparse_dims;
  std::vector<int> sparse_shards;
};

Args g_args;  // Set once by Main before any mode runs.

const char* const kModes[] = {"dense", "sparse", "latency", "e2e", "checkpoint"};

// "1,2,4" into positive numbers.
template <typename T>
bool ParseList(absl::string_view text, std::vector<T>* out) {
  out->clear();
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    T v{};
    if (!absl::SimpleAtoi(item, &v) || v <= 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--all") {
      for (const char* m : kModes) a->modes.insert(m);
      continue;
    }
    if (arg == "--json") {
      a->json = true;
      continue;
    }
    if (arg == "--no_baseline") {
      a->no_baseline = true;
      continue;
    }
    if (arg == "--quick") {
      a->quick = true;
      continue;
    }
    std::vector<std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    if (kv.size() != 2) return false;
    if (kv[0] == "--mode") {
      for (absl::string_view m : absl::StrSplit(kv[1], ',')) {
        if (std::find(std::begin(kModes), std::end(kModes), m) == std::end(kModes)) {
          std::fprintf(stderr, "ps_bench: --mode: unknown mode '%s'\n", std::string(m).c_str());
          return false;
        }
        a->modes.insert(std::string(m));
      }
    } else if (kv[0] == "--data_root") {
      a->data_root = kv[1];
    } else if (kv[0] == "--e2e_jobs") {
      a->e2e_jobs = absl::StrSplit(kv[1], ',', absl::SkipEmpty());
      a->e2e_optional_jobs.clear();
    } else if (kv[0] == "--chunk_kb") {
      if (!absl::SimpleAtoi(kv[1], &a->chunk_kb)) return false;
    } else if (kv[0] == "--channels") {
      if (!absl::SimpleAtoi(kv[1], &a->channels)) return false;
    } else if (kv[0] == "--dense_floats") {
      if (!ParseList(kv[1], &a->dense_floats)) return false;
    } else if (kv[0] == "--dense_shards") {
      if (!ParseList(kv[1], &a->dense_shards)) return false;
    } else if (kv[0] == "--dense_clients") {
      if (!ParseList(kv[1], &a->dense_clients)) return false;
    } else if (kv[0] == "--dense_gb") {
      if (!absl::SimpleAtod(kv[1], &a->dense_gb) || a->dense_gb <= 0) return false;
    } else if (kv[0] == "--sparse_dims") {
      if (!ParseList(kv[1], &a->sparse_dims)) return false;
    } else if (kv[0] == "--sparse_shards") {
      if (!ParseList(kv[1], &a->sparse_shards)) return false;
    } else if (kv[0] == "--sparse_s") {
      if (!absl::SimpleAtod(kv[1], &a->sparse_s) || a->sparse_s < 0) return false;
    } else if (kv[0] == "--e2e_clocks") {
      if (!absl::SimpleAtoi(kv[1], &a->e2e_clocks) || a->e2e_clocks < 0) return false;
    } else {
      return false;
    }
  }
  if (a->data_root.empty()) {
    // Runfiles are symlinks into the source tree; data paths are confined to real roots.
    std::error_code ec;
    const std::string digits = "tests/data/digits.csv.gz";
    std::string real = std::filesystem::canonical(digits, ec).string();
    if (ec || real.size() < digits.size()) {
      real = std::filesystem::current_path(ec).string();
    } else {
      real = real.substr(0, real.size() - digits.size() - 1);
    }
    a->data_root = real + ":/usr/share/datasets";
  }
  return !a->modes.empty();
}

[[noreturn]] void Fail(const std::string& what, const absl::Status& s) {
  PS_LOG(FATAL) << "ps_bench: " << what << ": " << s;
  std::abort();
}

std::vector<std::unique_ptr<GrpcPsClient>> Clients(const std::vector<std::string>& addresses,
                                                   int n) {
  std::vector<std::unique_ptr<GrpcPsClient>> out;
  GrpcPsClient::Options o;
  if (g_args.chunk_kb > 0) o.chunk_bytes = g_args.chunk_kb << 10;
  if (g_args.channels > 0) o.channels_per_shard = g_args.channels;
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<std::unique_ptr<GrpcPsClient>> c = GrpcPsClient::Connect(addresses, o);
    if (!c.ok()) Fail("connect", c.status());
    out.push_back(*std::move(c));
  }
  return out;
}

ShardJobConfig AsyncJob(const std::string& id, uint32_t workers) {
  ShardJobConfig config;
  config.set_job_id(id);
  config.mutable_consistency()->set_mode(ASYNC);
  config.set_num_workers(workers);
  return config;
}

TableSpec Table(const std::string& name, TableSpec::Kind kind, uint64_t size, uint32_t dim,
                bool adam = false) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(kind);
  if (kind == TableSpec::DENSE) {
    t.set_size(size);
  } else {
    t.set_dim(dim);
  }
  if (adam) {
    t.mutable_optimizer()->mutable_adam();
  } else {
    t.mutable_optimizer()->mutable_sgd();
  }
  t.mutable_optimizer()->set_learning_rate(1e-4f);
  return t;
}

// Runs `fn(i)` on `n` threads at once (on this one when n is 1); returns the wall
// seconds until all finished.
double RunParallel(int n, const std::function<void(int)>& fn) {
  const auto t0 = Clock::now();
  if (n == 1) {
    fn(0);
    return SecondsSince(t0);
  }
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(fn, i);
  for (auto& t : threads) t.join();
  return SecondsSince(t0);
}

// `rounds` rounds of `fn(i)` run by `n` clients at once: a round ends when every
// client's call has returned, as an echo round ends with its last reply.
Rounds ClientRounds(int n, int rounds, const std::function<void(int)>& fn) {
  return TimeRounds(0, rounds, [&] {
    RunParallel(n, fn);
    return true;
  });
}

// ---- dense ----------------------------------------------------------------------

void RunDense(const Args& a, std::vector<Row>* rows) {
  std::vector<uint64_t> sizes =
      a.quick ? std::vector<uint64_t>{uint64_t{1} << 18, uint64_t{1} << 20}
              : std::vector<uint64_t>{uint64_t{1} << 20, uint64_t{16} << 20, uint64_t{64} << 20};
  if (!a.dense_floats.empty()) sizes = a.dense_floats;
  std::vector<int> client_counts = a.quick ? std::vector<int>{1, 2} : std::vector<int>{1, 2, 4};
  if (!a.dense_clients.empty()) client_counts = a.dense_clients;
  const std::vector<int> shard_counts =
      a.dense_shards.empty() ? std::vector<int>{1, 2} : a.dense_shards;
  const int max_clients = *std::max_element(client_counts.begin(), client_counts.end());
  // Each size with float32 gradients; the target's 16M floats (else the largest size)
  // also with bfloat16 gradients (JobSpec.bf16_gradients), one client.
  const uint64_t bf16_floats =
      std::find(sizes.begin(), sizes.end(), uint64_t{16} << 20) != sizes.end()
          ? uint64_t{16} << 20
          : *std::max_element(sizes.begin(), sizes.end());
  std::vector<std::pair<uint64_t, bool>> jobs;
  for (uint64_t floats : sizes) {
    jobs.emplace_back(floats, false);
    if (floats == bf16_floats) jobs.emplace_back(floats, true);
  }
  // The raw baseline per size: the best of chunk sizes x channel counts.
  std::map<uint64_t, EchoBest> raw;
  if (!a.no_baseline) {
    EchoServer echo;
    for (uint64_t floats : sizes) {
      const size_t bytes = floats * sizeof(float);
      const int iters = bytes >= 256 * kMiB ? 5 : 8;
      raw[floats] = BestEcho(echo, bytes, {1 * kMiB, 4 * kMiB, 16 * kMiB}, {1, 2, 4}, iters);
    }
  }
  for (int shards : shard_counts) {
    std::unique_ptr<TestCluster> cluster = TestCluster::Start(shards, BenchDir(absl::StrCat("dense", shards)));
    std::vector<std::unique_ptr<GrpcPsClient>> clients =
        Clients(cluster->addresses(), max_clients);
    for (const auto& [floats, bf16] : jobs) {
      const std::string job = absl::StrCat("dense", floats, bf16 ? "bf16" : "");
      ShardJobConfig config = AsyncJob(job, max_clients);
      config.set_bf16_gradients(bf16);
      if (auto s = clients[0]->SetupJob(config, {Table("w", TableSpec::DENSE, floats, 0)});
          !s.ok()) {
        Fail("dense setup", s.status());
      }
      // Per client: gradients in lendable memory (sent without a copy, DenseRef::
      // lendable), and the parameters the pulls fill.
      std::vector<std::shared_ptr<LendableFloats>> grads(max_clients);
      std::vector<std::vector<float>> params(max_clients, std::vector<float>(floats, 0.0f));
      for (auto& g : grads) {
        g = LendableFloats::Make(floats);
        std::fill(g->data(), g->data() + floats, 1e-3f);
      }
      std::vector<uint64_t> next_clock(max_clients, 0);
      std::vector<bool> warm(max_clients, false);
      uint64_t copies_before = 0;
      const double bytes = static_cast<double>(floats) * sizeof(float);
      for (int c : client_counts) {
        if (bf16 && c != client_counts.front()) continue;
        // Enough rounds to move about --dense_gb (at least 5), after one warm-up round
        // of each client (connections, first touch of the table).
        const int iters = std::clamp(static_cast<int>(a.dense_gb * 1e9 / (2 * bytes * c)), 5, 400);
        std::vector<double> push_s(c, 0), pull_s(c, 0);
        // Sequential: Push(clock), then Pull(clock + 1), each call timed.
        auto round = [&](int i, bool timed) {
          DenseRef grad{"w", 0, floats, grads[i]->data(), grads[i]};
          DenseRef param{"w", 0, floats, params[i].data()};
          const uint64_t clock = next_clock[i]++;
          const auto t0 = Clock::now();
          if (auto s = clients[i]->Push(job, i, clock, {&grad, 1}, {}); !s.ok()) Fail("push", s);
          const auto t1 = Clock::now();
          if (auto s = clients[i]->Pull(job, i, clock + 1, {&param, 1}, {}); !s.ok()) {
            Fail("pull", s);
          }
          if (timed) {
            push_s[i] += std::chrono::duration<double>(t1 - t0).count();
            pull_s[i] += SecondsSince(t1);
          }
        };
        // Pipelined: the same, as the trainer calls it (PushPull: the values of one
        // part come back while the gradients of the next go out).
        auto pipelined = [&](int i) {
          DenseRef grad{"w", 0, floats, grads[i]->data(), grads[i]};
          DenseRef param{"w", 0, floats, params[i].data()};
          const uint64_t clock = next_clock[i]++;
          if (auto s = clients[i]->PushPull(job, i, clock, {&grad, 1}, {}, {&param, 1}, {});
              !s.ok()) {
            Fail("push-pull", s);
          }
        };
        RunParallel(c, [&](int i) {
          if (!warm[i]) round(i, false);
        });
        for (int i = 0; i < c; ++i) warm[i] = true;
        const Rounds sequential = ClientRounds(c, iters, [&](int i) { round(i, true); });
        const Rounds ours = ClientRounds(c, iters, pipelined);
        const double moved = 2 * bytes * c;  // Per round: push + pull of every client.
        const double cpu_s_per_gb = ours.cpu_s / (moved * iters / 1e9);
        // Dense blocks a push had to copy because a pull was still sending them
        // (server/dense_values.h), in this row's rounds.
        uint64_t copies = 0;
        if (auto stats = clients[0]->GetStats(job, false); stats.ok()) {
          for (const ShardJobStats& st : *stats) copies += st.dense_copies_on_write;
        } else {
          Fail("stats", stats.status());
        }
        // The shards' counters start again after a restart: never a negative count.
        const uint64_t row_copies = copies >= copies_before ? copies - copies_before : copies;
        copies_before = copies;
        const EchoBest& r = raw[floats];
        auto ratio = [](double ours, double raw) { return raw > 0 ? ours / raw : 0; };
        Row row;
        row.Set("floats", static_cast<double>(floats))
            .Set("shards", shards)
            .Set("clients", c)
            .Set("gradients", bf16 ? "bf16" : "float32")
            .Set("rounds", iters)
            .Set("ours_gbps", moved / ours.Best() / 1e9)
            .Set("ours_mean_gbps", moved / ours.Mean() / 1e9)
            .Set("sequential_gbps", moved / sequential.Best() / 1e9)
            .Set("push_ms", push_s[0] * 1e3 / iters)
            .Set("pull_ms", pull_s[0] * 1e3 / iters)
            .Set("cpu_s_per_gb", cpu_s_per_gb)
            .Set("cpu_cores", ours.cpu_s / ours.Total())
            .Set("raw_gbps", r.gbps)
            .Set("raw_mean_gbps", r.mean_gbps)
            .Set("raw_cpu_s_per_gb", r.cpu_s_per_gb)
            .Set("raw_cpu_cores", r.cpu_cores)
            .Set("raw_chunk_mib", static_cast<double>(r.chunk) / kMiB)
            .Set("raw_channels", r.channels)
            .Set("copies_on_write", static_cast<double>(row_copies))
            .Set("ratio", ratio(moved / ours.Best() / 1e9, r.gbps))
            .Set("mean_ratio", ratio(moved / ours.Mean() / 1e9, r.mean_gbps))
            .Set("sequential_ratio", ratio(moved / sequential.Best() / 1e9, r.gbps))
            .Set("cpu_ratio", ratio(cpu_s_per_gb, r.cpu_s_per_gb));
        PS_LOG(INFO) << "dense: " << row.ToText();
        rows->push_back(std::move(row));
      }
      if (auto s = clients[0]->DropJob(job, true); !s.ok()) Fail("drop", s);
    }
  }
}

// ---- sparse ---------------------------------------------------------------------

uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// `sets` sets of `n` distinct keys each: uniform over 2^64, or Zipf(s) ranks over
// `universe` items (drawn by inverting the CDF), hashed so hot keys spread over shards.
std::vector<std::vector<uint64_t>> KeySets(bool zipf, double s, uint64_t universe, size_t n,
                                           int sets) {
  std::vector<double> cdf;
  if (zipf) {
    cdf.resize(universe);
    double sum = 0;
    for (uint64_t k = 0; k < universe; ++k) {
      sum += std::pow(static_cast<double>(k + 1), -s);
      cdf[k] = sum;
    }
    for (double& c : cdf) c /= sum;
  }
  std::vector<std::vector<uint64_t>> out;
  uint64_t state = zipf ? 17 : 29;
  for (int i = 0; i < sets; ++i) {
    std::set<uint64_t> keys;
    while (keys.size() < n) {
      const uint64_t r = Mix(state++);
      if (!zipf) {
        keys.insert(r);
        continue;
      }
      const double u = static_cast<double>(r >> 11) / 9007199254740992.0;
      const uint64_t rank = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
      keys.insert(Mix(rank ^ 0x5bd1e995));
    }
    out.emplace_back(keys.begin(), keys.end());
    // Callers send keys in an order of their own, not sorted.
    std::vector<uint64_t>& v = out.back();
    for (size_t j = v.size(); j > 1; --j) std::swap(v[j - 1], v[Mix(state++) % j]);
  }
  return out;
}

void RunSparse(const Args& a, std::vector<Row>* rows) {
  const size_t n = a.quick ? 20000 : 100000;
  const int sets = a.quick ? 2 : 4;
  const int min_calls = a.quick ? 4 : 12;
  const double min_s = a.quick ? 0.0 : a.sparse_s;
  const std::vector<int> shard_counts = !a.sparse_shards.empty() ? a.sparse_shards
                                        : a.quick                 ? std::vector<int>{2}
                                                                  : std::vector<int>{1, 2};
  const std::vector<uint32_t> dims =
      !a.sparse_dims.empty() ? a.sparse_dims : std::vector<uint32_t>{16, 64};
  // One client makes one call at a time, as one worker does: its rate is that of the
  // chain of routing, the shards' reads and the scatter. Two clients (two workers,
  // ranks 0 and 1, each with its own keys) show what the shards serve at once. ASYNC
  // applies a push as it comes; a SYNC job (one worker: its pushes come in clock
  // order) sums each clock's gradients per key before its step.
  const int max_clients = 2;
  std::map<std::string, std::vector<std::vector<uint64_t>>> keys;
  keys["uniform"] = KeySets(false, 0, 0, n, sets);
  keys["zipf1.1"] = KeySets(true, 1.1, a.quick ? uint64_t{1} << 18 : uint64_t{1} << 22, n, sets);
  for (int shards : shard_counts) {
    std::unique_ptr<TestCluster> cluster = TestCluster::Start(shards, BenchDir(absl::StrCat("sparse", shards)));
    std::vector<std::unique_ptr<GrpcPsClient>> clients = Clients(cluster->addresses(), max_clients);
    for (uint32_t dim : dims) {
      const double memcpy_gbps = MemcpyGbps(n * dim * sizeof(float));
      for (const auto& [dist, key_sets] : keys) {
        for (const bool sync : {false, true}) {
          const std::string job = absl::StrCat("sparse", dim, dist, sync ? "sync" : "");
          const std::vector<int> client_counts =
              sync ? std::vector<int>{1} : std::vector<int>{1, 2};
          const int workers = client_counts.back();
          ShardJobConfig config = AsyncJob(job, workers);
          if (sync) config.mutable_consistency()->set_mode(SYNC);
          if (auto s = clients[0]->SetupJob(config, {Table("e", TableSpec::SPARSE, 0, dim)});
              !s.ok()) {
            Fail("sparse setup", s.status());
          }
          // Each client reads into and pushes from its own buffer, as its own rank.
          std::vector<std::vector<float>> values(max_clients, std::vector<float>(n * dim, 1e-3f));
          std::vector<uint64_t> clocks(max_clients, 0);
          auto ref = [&](int client, int i) {
            return SparseRef{"e", key_sets[i].data(), key_sets[i].size(), dim,
                             values[client].data()};
          };
          // Warm-up: creates every row, then one push of each rank.
          for (int i = 0; i < sets; ++i) {
            SparseRef r = ref(0, i);
            if (auto s = clients[0]->Pull(job, 0, 0, {}, {&r, 1}); !s.ok()) Fail("pull", s);
          }
          for (int c = 0; c < workers; ++c) {
            SparseRef r = ref(c, c % sets);
            if (auto s = clients[c]->Push(job, c, clocks[c]++, {}, {&r, 1}); !s.ok()) {
              Fail("push", s);
            }
          }
          for (int c : client_counts) {
            // At least `min_calls` calls per client and `min_s` seconds each way: a call
            // takes a few milliseconds, and a dozen of them moved by 2x from run to run.
            auto run = [&](bool pull) {
              std::atomic<int> calls{0};
              const auto t0 = Clock::now();
              RunParallel(c, [&](int i) {
                int mine = 0;
                while (mine < min_calls || SecondsSince(t0) < min_s) {
                  SparseRef r = ref(i, (mine + i) % sets);
                  absl::Status s = pull ? clients[i]->Pull(job, i, clocks[i], {}, {&r, 1})
                                        : clients[i]->Push(job, i, clocks[i]++, {}, {&r, 1});
                  if (!s.ok()) Fail(pull ? "pull" : "push", s);
                  ++mine;
                }
                calls += mine;
              });
              return static_cast<double>(n) * calls.load() / SecondsSince(t0);
            };
            const double pull_keys_per_s = run(true);
            const double push_keys_per_s = run(false);
            const double row_bytes = static_cast<double>(dim) * sizeof(float);
            const double pull_gbps = pull_keys_per_s * row_bytes / 1e9;
            Row row;
            row.Set("keys", static_cast<double>(n))
                .Set("dim", dim)
                .Set("dist", dist)
                .Set("consistency", sync ? "sync" : "async")
                .Set("shards", shards)
                .Set("clients", c)
                .Set("pull_keys_per_s", pull_keys_per_s)
                .Set("push_keys_per_s", push_keys_per_s)
                .Set("pull_gbps", pull_gbps)
                .Set("push_gbps", push_keys_per_s * row_bytes / 1e9)
                .Set("memcpy_gbps", memcpy_gbps)
                .Set("ratio", memcpy_gbps > 0 ? pull_gbps / memcpy_gbps : 0);
            PS_LOG(INFO) << "sparse: " << row.ToText();
            rows->push_back(std::move(row));
          }
          if (auto s = clients[0]->DropJob(job, true); !s.ok()) Fail("drop", s);
        }
      }
    }
  }
}

// ---- latency --------------------------------------------------------------------

void RunLatency(const Args& a, std::vector<Row>* rows) {
  const int n = a.quick ? 500 : 5000;
  const uint64_t floats = 256;  // 1 KiB.
  EchoServer echo;
  EchoClient raw_client(echo.address(), 1);
  std::unique_ptr<TestCluster> cluster = TestCluster::Start(1, BenchDir("latency"));
  std::unique_ptr<GrpcPsClient> client = std::move(Clients(cluster->addresses(), 1)[0]);
  const std::string job = "latency";
  if (auto s = client->SetupJob(AsyncJob(job, 1), {Table("w", TableSpec::DENSE, floats, 0)});
      !s.ok()) {
    Fail("latency setup", s.status());
  }
  std::vector<float> buf(floats, 1e-3f), values(floats);
  DenseRef ref{"w", 0, floats, buf.data()};
  DenseRef into{"w", 0, floats, values.data()};
  uint64_t clock = 0;
  // The echo, our pull, our push and our push with the next clock's pull (PushPull:
  // 1 KiB each way in one round trip, as the echo) take turns in blocks of calls, so a
  // change in the guest's speed during the run reaches all of them alike; a tenth more
  // calls of each warm up first.
  struct Series {
    std::vector<double> us;
    double cpu_s = 0;  // Of the process (client, server and gRPC's threads).
    double wall_s = 0;
  };
  Series raw, pull, push, push_pull;
  auto call = [&](Series* series) -> absl::Status {
    if (series == &pull) return client->Pull(job, 0, clock, {&ref, 1}, {});
    if (series == &push) return client->Push(job, 0, clock++, {&ref, 1}, {});
    return client->PushPull(job, 0, clock++, {&ref, 1}, {}, {&into, 1}, {});
  };
  auto run = [&](Series* series, int calls, bool keep) {
    const double cpu0 = CpuSeconds();
    const auto start = Clock::now();
    std::vector<double> us;
    if (series == &raw) {
      if (!raw_client.RoundTripsUs(floats * sizeof(float), calls, &us)) {
        Fail("echo", absl::UnavailableError("echo failed"));
      }
    } else {
      for (int i = 0; i < calls; ++i) {
        const auto t0 = Clock::now();
        if (absl::Status s = call(series); !s.ok()) Fail("latency call", s);
        us.push_back(SecondsSince(t0) * 1e6);
      }
    }
    if (!keep) return;
    series->us.insert(series->us.end(), us.begin(), us.end());
    series->wall_s += SecondsSince(start);
    series->cpu_s += CpuSeconds() - cpu0;
  };
  const std::pair<const char*, Series*> ops[] = {
      {"pull", &pull}, {"push", &push}, {"pushpull", &push_pull}};
  for (Series* s : {&raw, &pull, &push, &push_pull}) run(s, n / 10, false);
  constexpr int kBlock = 100;
  for (int done = 0; done < n; done += kBlock) {
    for (Series* s : {&raw, &pull, &push, &push_pull}) run(s, std::min(kBlock, n - done), true);
  }
  const double raw_p50 = Quantile(&raw.us, 0.5), raw_p99 = Quantile(&raw.us, 0.99);
  for (const auto& [op, series] : ops) {
    Series& ours = *series;
    const double p50 = Quantile(&ours.us, 0.5), p99 = Quantile(&ours.us, 0.99);
    Row row;
    row.Set("op", op)
        .Set("bytes", static_cast<double>(floats * sizeof(float)))
        .Set("shards", 1)
        .Set("p50_us", p50)
        .Set("p99_us", p99)
        .Set("calls_per_s", n / ours.wall_s)
        .Set("cpu_us_per_call", ours.cpu_s / n * 1e6)
        .Set("raw_p50_us", raw_p50)
        .Set("raw_p99_us", raw_p99)
        .Set("raw_calls_per_s", n / raw.wall_s)
        .Set("raw_cpu_us_per_call", raw.cpu_s / n * 1e6)
        .Set("ratio", raw_p50 > 0 ? p50 / raw_p50 : 0);
    PS_LOG(INFO) << "latency: " << row.ToText();
    rows->push_back(std::move(row));
  }
}

// ---- e2e ------------------------------------------------------------------------

struct E2eResult {
  double samples_per_s = 0;  // All ranks together.
  double iter_ms = 0, pull_ms = 0, push_ms = 0, compute_ms = 0;  // Per clock, rank 0.
  int cpu_threads = 0;  // OpenBLAS threads of each GEMM.
};

absl::StatusOr<JobSpec> ReadSpec(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("e2e job: cannot open ", path));
  std::stringstream text;
  text << in.rdbuf();
  JobSpec spec;
  if (!google::protobuf::TextFormat::ParseFromString(text.str(), &spec)) {
    return absl::InvalidArgumentError(absl::StrCat("e2e job: ", path, " is not a JobSpec"));
  }
  return spec;
}

// Trains `spec` with `workers` ranks (threads, a client each) for `clocks` clocks per
// rank against 2 in-process shards.
E2eResult TrainFor(const Args& a, const JobSpec& base, uint32_t workers, uint64_t clocks,
                   const std::string& job) {
  JobSpec spec = base;
  // Examples one rank computes per clock (the trainer gathers batch_size rows per
  // clock whatever the sharding).
  const double rank_batch = base.batch_size();
  spec.set_num_workers(workers);
  spec.mutable_eval()->set_every_clocks(0);
  spec.clear_checkpoint();
  spec.set_epochs(std::max<uint32_t>(spec.epochs(), 1000));  // The clock cap ends it.
  std::unique_ptr<TestCluster> cluster = TestCluster::Start(2, BenchDir(job));
  std::vector<std::unique_ptr<GrpcPsClient>> clients = Clients(cluster->addresses(), workers);
  struct Sums {
    double iter = 0, pull = 0, push = 0, compute = 0;
    uint64_t clocks = 0;
  };
  std::vector<Sums> sums(workers);
  std::vector<absl::Status> status(workers);
  // GEMM threads as deploy/local_cluster.sh gives each worker: the cores shared by
  // every shard and worker (OpenBLAS's pool is per process, one setting for all ranks).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (auto s = compute::SetCpuGemmThreads(std::max(1, cores / static_cast<int>(2 + workers)));
      !s.ok()) {
    Fail("e2e cpu threads", s);
  }
  RunParallel(static_cast<int>(workers), [&](int r) {
    TrainerOptions o;
    o.job_id = job;
    o.spec = spec;
    o.rank = static_cast<uint32_t>(r);
    o.data_root = a.data_root;
    o.device = compute::DeviceChoice::kCpu;
    o.report_every_s = 0;  // Every clock.
    Sums& s = sums[r];
    status[r] = Train(o, clients[r].get(), [&](const TrainerProgress& p) {
      // A one-clock period: its elapsed time is batch / samples_per_s.
      if (p.samples_per_s > 0) s.iter += spec.batch_size() / p.samples_per_s;
      s.pull += p.pull_s;
      s.push += p.push_s;
      s.compute += p.compute_s;
      ++s.clocks;
      return p.clock < clocks;
    });
  });
  E2eResult out;
  out.cpu_threads = compute::CpuGemmThreads();
  for (uint32_t r = 0; r < workers; ++r) {
    if (!status[r].ok() && !absl::IsCancelled(status[r])) Fail("e2e train", status[r]);
    if (sums[r].iter > 0) out.samples_per_s += sums[r].clocks * rank_batch / sums[r].iter;
  }
  const Sums& s = sums[0];
  const double k = s.clocks > 0 ? 1e3 / s.clocks : 0;
  out.iter_ms = s.iter * k;
  out.pull_ms = s.pull * k;
  out.push_ms = s.push * k;
  // Batch gathering and parameter preparation count as compute.
  out.compute_ms = std::max(0.0, out.iter_ms - out.pull_ms - out.push_ms);
  return out;
}

// Makes the binary examples' data with the generator next to the bench in the
// runfiles (//deploy/data:gen_binary100) under a temporary root, and returns that
// root; "" when it cannot.
std::string GenerateBinaryData() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string root = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ps_bench_data");
  const std::string gen = "deploy/data/gen_binary100";
  std::error_code ec;
  if (!std::filesystem::exists(gen, ec)) return "";
  // Its report goes to stderr: stdout carries the JSON.
  const std::string cmd = absl::StrCat(gen, " --out_dir=", root, "/deploy/data/binary100 1>&2");
  if (std::system(cmd.c_str()) != 0) return "";
  return root;
}

void RunE2e(const Args& given, std::vector<Row>* rows) {
  Args a = given;
  std::vector<std::string> jobs = a.e2e_jobs;
  std::string generated;  // A data root made here, once.
  for (const std::string& path : a.e2e_optional_jobs) {
    absl::StatusOr<JobSpec> spec = ReadSpec(path);
    if (!spec.ok()) continue;
    auto present = [&] {
      std::error_code ec;
      for (absl::string_view root : absl::StrSplit(a.data_root, ':')) {
        if (std::filesystem::exists(absl::StrCat(root, "/", spec->data().train_path()), ec)) {
          return true;
        }
      }
      return false;
    };
    if (!present() && generated.empty()) {
      generated = GenerateBinaryData();
      if (!generated.empty()) a.data_root += ":" + generated;
    }
    if (present()) {
      jobs.push_back(path);
    } else {
      PS_LOG(INFO) << "e2e: skipping " << path << " (its data could not be generated)";
    }
  }
  for (const std::string& path : jobs) {
    absl::StatusOr<JobSpec> spec = ReadSpec(path);
    if (!spec.ok()) Fail("e2e", spec.status());
    const uint64_t clocks = a.e2e_clocks > 0 ? a.e2e_clocks : (a.quick ? 40 : 600);
    const std::string name = std::filesystem::path(path).stem().string();
    E2eResult one;
    for (uint32_t w : {1u, 2u}) {
      const E2eResult r = TrainFor(a, *spec, w, clocks, absl::StrCat("e2e-", w, "-", name));
      if (w == 1) one = r;
      // The pull time of 1 worker is pure transfer; what a pull of W workers takes
      // beyond it is waiting for the other ranks (SYNC) or for busy cores.
      const double pull = std::min(r.pull_ms, one.pull_ms);
      const double wait = std::max(0.0, r.pull_ms - one.pull_ms);
      const double comm = pull + r.push_ms + wait;
      Row row;
      row.Set("job", name)
          .Set("workers", w)
          .Set("shards", 2)
          .Set("batch", spec->batch_size())
          .Set("clocks", static_cast<double>(clocks))
          .Set("cpu_threads", r.cpu_threads)
          .Set("samples_per_s", r.samples_per_s)
          .Set("iter_ms", r.iter_ms)
          .Set("compute_ms", r.compute_ms)
          .Set("pull_ms", pull)
          .Set("push_ms", r.push_ms)
          .Set("wait_ms", wait)
          .Set("comm_share", r.iter_ms > 0 ? comm / r.iter_ms : 0)
          .Set("speedup", one.samples_per_s > 0 ? r.samples_per_s / one.samples_per_s : 0);
      PS_LOG(INFO) << "e2e: " << row.ToText();
      rows->push_back(std::move(row));
    }
  }
}

// ---- checkpoint -----------------------------------------------------------------

// The pushes of a SYNC job with a dense table of `floats` that checkpoints every few
// clocks, one worker pushing every clock: a small table beside it (`whole` false: the
// push that takes a snapshot then costs the snapshot alone), or the whole table, as
// dense training does. The push that completes a checkpoint's clock takes the
// snapshot; the push after it writes blocks the snapshot may still borrow (copying
// them first), while the checkpoint is written.
struct TriggerTimes {
  double trigger_ms = 0;  // The longest push that took a snapshot.
  double next_ms = 0;     // The longest push right after one.
  double other_ms = 0;    // The median of the others.
  uint64_t copies_on_write = 0;
};

TriggerTimes TriggeredCheckpointPushes(GrpcPsClient* client, uint64_t floats, bool adam,
                                       bool whole) {
  const uint32_t every = whole ? 5 : 10;
  constexpr int kCheckpoints = 3;
  const std::string job = "ckpt_sync";
  ShardJobConfig config;
  config.set_job_id(job);
  config.mutable_consistency()->set_mode(SYNC);
  config.set_num_workers(1);
  config.mutable_checkpoint()->set_interval_clocks(every);
  config.mutable_checkpoint()->set_keep(1);
  if (auto s = client->SetupJob(config, {Table("w", TableSpec::DENSE, floats, 0, adam),
                                         Table("s", TableSpec::DENSE, 256, 0)});
      !s.ok()) {
    Fail("checkpoint sync setup", s.status());
  }
  const uint64_t n = whole ? floats : 256;
  std::vector<float> grad(n, 1e-6f);
  DenseRef ref{whole ? "w" : "s", 0, n, grad.data()};
  TriggerTimes out;
  std::vector<double> others;
  auto wait_for_write = [&](uint64_t clock) {
    for (;;) {
      absl::StatusOr<std::vector<ShardJobStats>> st = client->GetStats(job, false);
      if (!st.ok()) Fail("sync stats", st.status());
      if ((*st)[0].last_checkpoint_clock >= clock) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  };
  for (uint64_t clock = 0; clock < every * kCheckpoints + 1; ++clock) {
    const auto t0 = Clock::now();
    if (auto s = client->Push(job, 0, clock, {&ref, 1}, {}); !s.ok()) Fail("sync push", s);
    const double ms = SecondsSince(t0) * 1e3;
    if ((clock + 1) % every == 0) {
      out.trigger_ms = std::max(out.trigger_ms, ms);
    } else if (clock > 0 && clock % every == 0) {
      out.next_ms = std::max(out.next_ms, ms);
      // The write ends before the next checkpoint, as a job of this size would space them.
      wait_for_write(clock);
    } else {
      others.push_back(ms);
    }
    PS_LOG(INFO) << "checkpoint: " << floats << " floats, " << (whole ? "whole" : "small")
                 << " push of clock " << clock << ": " << ms << " ms";
  }
  out.other_ms = Quantile(&others, 0.5);
  absl::StatusOr<std::vector<ShardJobStats>> st = client->GetStats(job, false);
  if (!st.ok()) Fail("sync stats", st.status());
  out.copies_on_write = (*st)[0].dense_copies_on_write;
  if (auto s = client->DropJob(job, true); !s.ok()) Fail("drop", s);
  return out;
}

void RunCheckpoint(const Args& a, std::vector<Row>* rows) {
  struct Case {
    uint64_t floats;
    bool adam;  // Else SGD: Adam's two slots triple the state.
  };
  const std::vector<Case> cases =
      a.quick ? std::vector<Case>{{uint64_t{1} << 20, false},
                                  {uint64_t{4} << 20, false},
                                  {uint64_t{1} << 20, true}}
              : std::vector<Case>{{uint64_t{64} << 20, false},
                                  {uint64_t{256} << 20, false},
                                  {uint64_t{32} << 20, true}};
  for (const auto [floats, adam] : cases) {
    const uint64_t state_floats = floats * (adam ? 3 : 1);
    const double mb = static_cast<double>(state_floats) * sizeof(float) / 1e6;
    // The shard's own checkpoint of a dense table of `floats`, while a worker pushes a
    // small update every millisecond: the longest push during the checkpoint is the
    // pause training sees. (Pushing back to back would take a whole core of this
    // 2-core box from the checkpoint writer, which the raw baseline does not share.)
    const int runs = state_floats > (64u << 20) ? 1 : 2;
    ShardCheckpoint cp;
    uint64_t pause_us = 0;
    double pause_share = 0;
    double stall_ms = 0, base_ms = 0;
    TriggerTimes trigger, whole;
    {
      std::unique_ptr<TestCluster> cluster = TestCluster::Start(1, BenchDir("checkpoint_shard"));
      std::vector<std::unique_ptr<GrpcPsClient>> clients = Clients(cluster->addresses(), 2);
      const std::string job = "ckpt";
      if (auto s = clients[0]->SetupJob(AsyncJob(job, 1),
                                        {Table("w", TableSpec::DENSE, floats, 0, adam)});
          !s.ok()) {
        Fail("checkpoint setup", s.status());
      }
      std::vector<float> small(256, 1e-3f);
      DenseRef ref{"w", 0, small.size(), small.data()};
      uint64_t clock = 0;
      std::vector<double> base;
      for (int i = 0; i < 200; ++i) {
        const auto t0 = Clock::now();
        if (auto s = clients[1]->Push(job, 0, clock++, {&ref, 1}, {}); !s.ok()) Fail("push", s);
        base.push_back(SecondsSince(t0) * 1e3);
      }
      base_ms = Quantile(&base, 0.99);
      std::atomic<bool> done{false};
      std::thread pusher([&] {
        while (!done.load()) {
          const auto t0 = Clock::now();
          if (auto s = clients[1]->Push(job, 0, clock++, {&ref, 1}, {}); !s.ok()) Fail("push", s);
          stall_ms = std::max(stall_ms, SecondsSince(t0) * 1e3);
          std::this_thread::sleep_until(t0 + std::chrono::milliseconds(1));
        }
      });
      // As many checkpoints as the raw baseline has runs of each kind: the fastest
      // write against the fastest raw one, and the longest pause of any (a first
      // checkpoint maps fresh buffers, later ones reuse them).
      for (int i = 0; i < runs; ++i) {
        absl::StatusOr<std::vector<ShardCheckpoint>> r = clients[0]->Checkpoint(job);
        if (!r.ok()) Fail("checkpoint", r.status());
        const ShardCheckpoint& c = (*r)[0];
        PS_LOG(INFO) << "checkpoint: " << floats << " floats, run " << i << ": write "
                     << c.write_us / 1e3 << " ms, pause " << c.pause_us / 1e3 << " ms";
        if (i == 0 || c.write_us < cp.write_us) cp = c;
        if (c.write_us > 0) {
          pause_share = std::max(pause_share, static_cast<double>(c.pause_us) / c.write_us);
        }
        pause_us = std::max(pause_us, c.pause_us);
      }
      done.store(true);
      pusher.join();
      if (auto s = clients[0]->DropJob(job, true); !s.ok()) Fail("drop", s);
      trigger = TriggeredCheckpointPushes(clients[0].get(), floats, adam, /*whole=*/false);
      whole = TriggeredCheckpointPushes(clients[0].get(), floats, adam, /*whole=*/true);
    }
    const CheckpointBenchResult raw =
        RunCheckpointBench(BenchDir("checkpoint_raw"), state_floats, runs);
    const double ours_mbps = cp.write_us > 0 ? static_cast<double>(cp.bytes) / cp.write_us : 0;
    Row row;
    row.Set("floats", static_cast<double>(floats))
        .Set("optimizer", adam ? "adam" : "sgd")
        .Set("mb", mb)
        .Set("ours_mbps", ours_mbps)
        .Set("store_mbps", raw.store_mb_per_s)
        .Set("raw_mbps", raw.raw_mb_per_s)
        .Set("ratio", raw.raw_mb_per_s > 0 ? ours_mbps / raw.raw_mb_per_s : 0)
        .Set("restore_s", raw.restore_s)
        .Set("write_ms", cp.write_us / 1e3)
        .Set("pause_ms", pause_us / 1e3)
        .Set("pause_share", pause_share)
        .Set("push_p99_ms", base_ms)
        .Set("push_stall_ms", stall_ms)
        .Set("trigger_push_ms", trigger.trigger_ms)
        .Set("other_push_ms", trigger.other_ms)
        .Set("whole_trigger_push_ms", whole.trigger_ms)
        .Set("whole_next_push_ms", whole.next_ms)
        .Set("whole_other_push_ms", whole.other_ms)
        .Set("whole_copies_on_write", static_cast<double>(whole.copies_on_write));
    PS_LOG(INFO) << "checkpoint: " << row.ToText();
    rows->push_back(std::move(row));
  }
}

int Main(int argc, char** argv) {
  SkipMutexOrderChecksInReleaseBuilds();
  Args a;
  if (!Parse(argc, argv, &a)) {
    std::fprintf(stderr,
                 "usage: ps_bench (--all | --mode=dense,sparse,latency,e2e,checkpoint) [--json] "
                 "[--quick] [--data_root=DIR] [--e2e_jobs=A.textproto,B.textproto] "
                 "[--e2e_clocks=N] [--chunk_kb=K] [--channels=C] [--dense_floats=N,..] "
                 "[--dense_shards=S,..] [--dense_clients=C,..] [--dense_gb=G] [--no_baseline]\n"
                 "                [--sparse_s=S] [--sparse_dims=D,..] [--sparse_shards=S,..]\n");
    return 2;
  }
  g_args = a;
  const auto start = Clock::now();
  std::map<std::string, std::vector<Row>> results;
  for (const char* mode : kModes) {
    if (a.modes.count(mode) == 0) continue;
    const auto t0 = Clock::now();
    std::vector<Row>& rows = results[mode];
    const std::string m = mode;
    if (m == "dense") RunDense(a, &rows);
    if (m == "sparse") RunSparse(a, &rows);
    if (m == "latency") RunLatency(a, &rows);
    if (m == "e2e") RunE2e(a, &rows);
    if (m == "checkpoint") RunCheckpoint(a, &rows);
    PS_LOG(INFO) << "ps_bench: " << mode << " took " << SecondsSince(t0) << " s";
  }
  PS_LOG(INFO) << "ps_bench: all took " << SecondsSince(start) << " s";
  std::string out;
  if (a.json) {
    out = "{";
    bool first_mode = true;
    for (const char* mode : kModes) {
      auto it = results.find(mode);
      if (it == results.end()) continue;
      out += absl::StrCat(first_mode ? "\n" : ",\n", "  \"", mode, "\": [");
      first_mode = false;
      for (size_t i = 0; i < it->second.size(); ++i) {
        out += absl::StrCat(i == 0 ? "\n" : ",\n", "    ", it->second[i].ToJson());
      }
      out += "\n  ]";
    }
    out += "\n}\n";
  } else {
    for (const char* mode : kModes) {
      auto it = results.find(mode);
      if (it == results.end()) continue;
      for (const Row& r : it->second) out += absl::StrCat(mode, ": ", r.ToText(), "\n");
    }
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace ps::bench

int main(int argc, char** argv) { return ps::bench::Main(argc, argv); }
