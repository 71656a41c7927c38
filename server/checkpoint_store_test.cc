#include "server/checkpoint_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/checkpoint_bench.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

constexpr char kCrashChildFlag[] = "--checkpoint_crash_child";
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
constexpr char kCrashJob[] = "crash";

// A fresh directory under the test's temporary folder.
std::string TestDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/ckpt_", name, "_", getpid());
  fs::remove_all(dir);
  return dir;
}

// Deterministic, incompressible bytes.
std::string Pattern(uint64_t seed, size_t n) {
  std::string out(n, '\0');
  uint64_t state = seed * 0x9e3779b97f4a7c15ULL + 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    std::memcpy(&out[i], &z, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(seed + i);
  return out;
}

CheckpointStore::Options StoreOptions(const std::string& dir,
                                      uint32_t chunk = CheckpointStore::kDefaultChunkBytes) {
  CheckpointStore::Options options;
  options.dir = dir;
  options.sync = false;  // durability is what the crash test checks, with sync on
  options.chunk_bytes = chunk;
  return options;
}

std::unique_ptr<CheckpointStore> MustOpen(const CheckpointStore::Options& options) {
  absl::StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// Compares without printing megabytes on failure.
bool SameRecords(const std::vector<CheckpointRecord>& a,
                 const std::vector<CheckpointRecord>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].bytes != b[i].bytes) return false;
  }
  return true;
}

uint64_t Payload(const std::vector<CheckpointRecord>& records) {
  uint64_t n = 0;
  for (const CheckpointRecord& r : records) n += r.bytes.size();
  return n;
}

std::vector<CheckpointRecord> SmallRecords(uint64_t seed) {
  return {{"a", Pattern(seed, 100)}, {"b", Pattern(seed + 1, 3000)}};
}

TEST(CheckpointChecksumTest, IsXxh64) {
  EXPECT_EQ(CheckpointChecksum(""), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(CheckpointChecksum("abc"), 0x44BC2CF5AD770999ULL);
  std::string seq(100, '\0');
  for (int i = 0; i < 100; ++i) seq[i] = static_cast<char>(i);
  EXPECT_EQ(CheckpointChecksum(seq), 0x6AC1E58032166597ULL);
}

TEST(CheckpointStoreTest, RoundTripOfBigSmallAndEmptyRecords) {
  auto store = MustOpen(StoreOptions(TestDir("roundtrip")));
  ASSERT_NE(store, nullptr);
  const std::vector<CheckpointRecord> records = {
      {"weights", Pattern(1, 100u << 20)},
      {"empty", ""},
      {"", ""},
      {"small", "xyz"},
      {std::string("bin\xff\x01 name", 10), Pattern(2, 5000)},
      {std::string(CheckpointStore::kMaxRecordNameBytes, 'n'),
       Pattern(3, CheckpointStore::kDefaultChunkBytes + 1)},
  };
  absl::StatusOr<uint64_t> written = store->Write("job-1", 7, records, 3);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(*written, Payload(records));

  absl::StatusOr<std::vector<CheckpointRecord>> loaded = store->Load("job-1", 7);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(SameRecords(*loaded, records));

  absl::StatusOr<std::vector<uint64_t>> clocks = store->List("job-1");
  ASSERT_TRUE(clocks.ok()) << clocks.status();
  EXPECT_THAT(*clocks, ElementsAre(7u));
  absl::StatusOr<std::vector<std::string>> jobs = store->ListJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, ElementsAre("job-1"));
}

TEST(CheckpointStoreTest, NoRecordsIsACheckpointToo) {
  auto store = MustOpen(StoreOptions(TestDir("norecords")));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Write("j", 3, {}, 1).ok());
  auto loaded = store->Load("j", 3);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->empty());
  EXPECT_THAT(*store->List("j"), ElementsAre(3u));
}

TEST(CheckpointStoreTest, SplitsRecordsIntoChunks) {
  constexpr uint32_t kChunk = 1024;
  auto store = MustOpen(StoreOptions(TestDir("chunks"), kChunk));
  ASSERT_NE(store, nullptr);
  std::vector<CheckpointRecord> records;
  uint64_t chunks = 0;
  for (size_t size : {0, 1, 1023, 1024, 1025, 10000}) {
    records.push_back({absl::StrCat("r", size), Pattern(size, size)});
    chunks += (size + kChunk - 1) / kChunk;
  }
  ASSERT_TRUE(store->Write("j", 1, records, 1).ok());
  auto loaded = store->Load("j", 1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(SameRecords(*loaded, records));
  EXPECT_EQ(*store->CountKeysForTest("j", 1), chunks + 2);  // + manifest and seal
}

TEST(CheckpointStoreTest, ListIsAscendingAndKeepPrunesTheOldest) {
  auto store = MustOpen(StoreOptions(TestDir("keep"), 1024));
  ASSERT_NE(store, nullptr);
  for (uint64_t clock : std::vector<uint64_t>{5, 1, 3, 10, 7, 1ull << 40}) {
    ASSERT_TRUE(store->Write("j", clock, SmallRecords(clock), 100).ok());
  }
  EXPECT_THAT(*store->List("j"), ElementsAre(1u, 3u, 5u, 7u, 10u, 1ull << 40));

  ASSERT_TRUE(store->Write("j", 11, SmallRecords(11), 3).ok());
  EXPECT_THAT(*store->List("j"), ElementsAre(10u, 11u, 1ull << 40));
  for (uint64_t gone : {1, 3, 5, 7}) {
    EXPECT_EQ(store->Load("j", gone).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(*store->CountKeysForTest("j", gone), 0u) << gone;  // chunks pruned too
  }
  for (uint64_t kept : {10ull, 11ull, 1ull << 40}) {
    auto loaded = store->Load("j", kept);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    EXPECT_TRUE(SameRecords(*loaded, SmallRecords(kept)));
  }

  // A clock older than the newest `keep` is pruned at once.
  ASSERT_TRUE(store->Write("j", 2, SmallRecords(2), 3).ok());
  EXPECT_THAT(*store->List("j"), ElementsAre(10u, 11u, 1ull << 40));

  ASSERT_TRUE(store->Write("j", 12, SmallRecords(12), 1).ok());
  EXPECT_THAT(*store->List("j"), ElementsAre(1ull << 40));
}

TEST(CheckpointStoreTest, WritingTheSameClockReplacesIt) {
  constexpr uint32_t kChunk = 1024;
  auto store = MustOpen(StoreOptions(TestDir("replace"), kChunk));
  ASSERT_NE(store, nullptr);
  const std::vector<CheckpointRecord> before = {
      {"x", Pattern(1, 20 * kChunk)}, {"y", Pattern(2, 5 * kChunk)}, {"z", "z"}};
  const std::vector<CheckpointRecord> after = {{"only", Pattern(3, 2 * kChunk + 5)}};
  ASSERT_TRUE(store->Write("j", 4, before, 2).ok());
  ASSERT_TRUE(store->Write("j", 5, SmallRecords(5), 2).ok());
  EXPECT_EQ(*store->CountKeysForTest("j", 4), 20u + 5u + 1u + 2u);

  ASSERT_TRUE(store->Write("j", 4, after, 2).ok());
  auto loaded = store->Load("j", 4);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(SameRecords(*loaded, after));
  EXPECT_EQ(*store->CountKeysForTest("j", 4), 3u + 2u);  // no stale chunks left
  EXPECT_THAT(*store->List("j"), ElementsAre(4u, 5u));
  auto other = store->Load("j", 5);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_TRUE(SameRecords(*other, SmallRecords(5)));

  // And back to a bigger one.
  ASSERT_TRUE(store->Write("j", 4, before, 2).ok());
  loaded = store->Load("j", 4);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(SameRecords(*loaded, before));
}

// A shard's history of one job, at random: checkpoints every 20 clocks pruned to the
// newest `keep` and those from the complete one on, rollbacks (DeleteNewer) and the
// re-writes that follow them, stale writes of a rolled-back clock, and restarts. After
// every step List equals a model of what must be there, and the newest loads intact.
TEST(CheckpointStoreTest, RandomHistoryMatchesTheModel) {
  const std::string dir = TestDir("history");
  auto store = MustOpen(StoreOptions(dir, 1024));
  ASSERT_NE(store, nullptr);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> model;  // ascending
  constexpr uint32_t kKeep = 3;
  std::optional<uint64_t> keep_from;  // None: a shard without a coordinator.
  uint64_t next = 20;
  auto write = [&](uint64_t clock) {
    const absl::StatusOr<uint64_t> w =
        store->Write("j", clock, SmallRecords(clock), kKeep, keep_from);
    ASSERT_TRUE(w.ok()) << w.status();
    if (!std::binary_search(model.begin(), model.end(), clock)) {
      model.insert(std::upper_bound(model.begin(), model.end(), clock), clock);
    }
    if (model.size() <= kKeep) return;
    const uint64_t first_kept = model[model.size() - kKeep];
    std::vector<uint64_t> kept;
    for (uint64_t c : model) {
      if (c >= first_kept || (keep_from.has_value() && c >= *keep_from)) kept.push_back(c);
    }
    model.swap(kept);
  };
  for (int step = 0; step < 300; ++step) {
    const int op = static_cast<int>(rng() % 10);
    if (op < 6 || model.empty()) {
      ASSERT_NO_FATAL_FAILURE(write(next));
      next += 20;
    } else if (op == 6) {
      // The coordinator saw a checkpoint complete (or the shard runs alone).
      if (rng() % 4 == 0) {
        keep_from.reset();
      } else {
        keep_from = model[rng() % model.size()];
      }
    } else if (op == 7) {
      // Rollback to a held clock, then training goes on from there.
      const uint64_t to = model[rng() % model.size()];
      ASSERT_TRUE(store->DeleteNewer("j", to).ok());
      model.erase(std::upper_bound(model.begin(), model.end(), to), model.end());
      if (keep_from.has_value() && *keep_from > to) keep_from = to;
      next = to + 20;
    } else if (op == 8) {
      // A snapshot of the abandoned history written after the rollback.
      ASSERT_NO_FATAL_FAILURE(write(next));
    } else {
      store.reset();
      store = MustOpen(StoreOptions(dir, 1024));
      ASSERT_NE(store, nullptr);
    }
    const absl::StatusOr<std::vector<uint64_t>> listed = store->List("j");
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(*listed, model) << "step " << step;
    const absl::StatusOr<std::vector<CheckpointRecord>> newest = store->Load("j", model.back());
    ASSERT_TRUE(newest.ok()) << "step " << step << ": " << newest.status();
    ASSERT_TRUE(SameRecords(*newest, SmallRecords(model.back()))) << "step " << step;
  }
}

TEST(CheckpointStoreTest, JobsAreIndependent) {
  auto store = MustOpen(StoreOptions(TestDir("jobs"), 1024));
  ASSERT_NE(store, nullptr);
  // "a" is a prefix of the others: its ranges must not reach into theirs.
  const std::vector<std::string> names = {"b-1", "a", "a.b", "a_", "A"};
  for (size_t i = 0; i < names.size(); ++i) {
    for (uint64_t clock = 1; clock <= 3; ++clock) {
      ASSERT_TRUE(store->Write(names[i], clock, SmallRecords(10 * i + clock), 5).ok());
    }
  }
  ASSERT_TRUE(store->Write("a", 4, SmallRecords(99), 1).ok());
  EXPECT_THAT(*store->List("a"), ElementsAre(4u));
  EXPECT_THAT(*store->ListJobs(), ElementsAre("A", "a", "a.b", "a_", "b-1"));

  ASSERT_TRUE(store->DeleteJob("a").ok());
  ASSERT_TRUE(store->DeleteJob("never-written").ok());
  EXPECT_TRUE(store->List("a")->empty());
  EXPECT_EQ(store->Load("a", 4).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*store->CountKeysForTest("a", 4), 0u);
  EXPECT_THAT(*store->ListJobs(), ElementsAre("A", "a.b", "a_", "b-1"));
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "a") continue;
    EXPECT_THAT(*store->List(names[i]), ElementsAre(1u, 2u, 3u)) << names[i];
    for (uint64_t clock = 1; clock <= 3; ++clock) {
      auto loaded = store->Load(names[i], clock);
      ASSERT_TRUE(loaded.ok()) << loaded.status();
      EXPECT_TRUE(SameRecords(*loaded, SmallRecords(10 * i + clock))) << names[i];
    }
  }

  // A deleted job can be written again.
  ASSERT_TRUE(store->Write("a", 2, SmallRecords(7), 1).ok());
  auto loaded = store->Load("a", 2);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(SameRecords(*loaded, SmallRecords(7)));
}

TEST(CheckpointStoreTest, RejectsBadArguments) {
  CheckpointStore::Options bad;
  EXPECT_EQ(CheckpointStore::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = StoreOptions(TestDir("badchunk"), 100);
  EXPECT_EQ(CheckpointStore::Open(bad).status().code(), absl::StatusCode::kInvalidArgument);

  auto store = MustOpen(StoreOptions(TestDir("badargs")));
  ASSERT_NE(store, nullptr);
  for (const std::string& job : {std::string(), std::string(65, 'j'), std::string("a/b"),
                                 std::string("a\0b", 3), std::string("\xc3\xbc")}) {
    EXPECT_EQ(store->Write(job, 1, {}, 1).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store->List(job).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store->Load(job, 1).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(store->DeleteJob(job).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(store->Write(std::string(64, 'j'), 1, {}, 1).ok());
  EXPECT_EQ(store->Write("j", 1, {{std::string(257, 'n'), "x"}}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Write("j", 1, {{std::string("a\0b", 3), "x"}}, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Write("j", 1, SmallRecords(1), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store->List("j")->empty());
}

TEST(CheckpointStoreTest, ReopenKeepsEverythingAndTheDirIsLocked) {
  const std::string dir = TestDir("reopen");
  {
    auto store = MustOpen(StoreOptions(dir, 4096));
    ASSERT_NE(store, nullptr);
    // One process, one store per directory.
    EXPECT_EQ(CheckpointStore::Open(StoreOptions(dir)).status().code(),
              absl::StatusCode::kFailedPrecondition);
    for (uint64_t clock = 1; clock <= 4; ++clock) {
      ASSERT_TRUE(store->Write("x", clock, SmallRecords(clock), 2).ok());
      ASSERT_TRUE(store->Write("y", clock, {{"big", Pattern(clock, 50000)}}, 10).ok());
    }
    ASSERT_TRUE(store->Write("z", 1, SmallRecords(1), 1).ok());
    ASSERT_TRUE(store->DeleteJob("z").ok());
  }
  // Reopen with another chunk size: each manifest records its own.
  auto store = MustOpen(StoreOptions(dir));
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(*store->ListJobs(), ElementsAre("x", "y"));
  EXPECT_THAT(*store->List("x"), ElementsAre(3u, 4u));
  EXPECT_THAT(*store->List("y"), ElementsAre(1u, 2u, 3u, 4u));
  for (uint64_t clock = 1; clock <= 4; ++clock) {
    auto y = store->Load("y", clock);
    ASSERT_TRUE(y.ok()) << y.status();
    EXPECT_TRUE(SameRecords(*y, {{"big", Pattern(clock, 50000)}}));
  }
  auto x = store->Load("x", 4);
  ASSERT_TRUE(x.ok()) << x.status();
  EXPECT_TRUE(SameRecords(*x, SmallRecords(4)));
}

TEST(CheckpointStoreTest, CorruptOrMissingChunkIsDataLoss) {
  constexpr uint32_t kChunk = 1024;
  auto store = MustOpen(StoreOptions(TestDir("corrupt"), kChunk));
  ASSERT_NE(store, nullptr);
  const std::vector<CheckpointRecord> records = {{"a", Pattern(1, 10 * kChunk)},
                                                 {"b", Pattern(2, 3 * kChunk)}};
  ASSERT_TRUE(store->Write("j", 1, records, 5).ok());
  ASSERT_TRUE(store->Write("j", 2, records, 5).ok());
  ASSERT_TRUE(store->Write("j", 3, records, 5).ok());

  ASSERT_TRUE(store->CorruptChunkForTest("j", 1, 0, 7).ok());
  absl::Status s = store->Load("j", 1).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("checksum"), absl::string_view::npos) << s;

  ASSERT_TRUE(store->DeleteChunkForTest("j", 2, 1, 1).ok());
  s = store->Load("j", 2).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_NE(s.message().find("missing chunk 1"), absl::string_view::npos) << s;

  ASSERT_TRUE(store->DeleteChunkForTest("j", 3, 1, 2).ok());  // the very last chunk
  EXPECT_EQ(store->Load("j", 3).status().code(), absl::StatusCode::kDataLoss);
}

TEST(CheckpointStoreTest, CorruptFileOnDiskIsDataLoss) {
  const std::string dir = TestDir("corruptfile");
  const std::vector<CheckpointRecord> big = {{"w", Pattern(5, 8u << 20)}};
  {
    auto store = MustOpen(StoreOptions(dir));
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Write("j", 1, SmallRecords(1), 5).ok());
    ASSERT_TRUE(store->Write("j", 2, big, 5).ok());
  }
  // The biggest table file holds checkpoint 2's chunks: flip bytes in its middle.
  fs::path victim;
  uintmax_t victim_size = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".sst" && e.file_size() > victim_size) {
      victim = e.path();
      victim_size = e.file_size();
    }
  }
  ASSERT_GT(victim_size, 8u << 20);
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.is_open());
    f.seekp(static_cast<std::streamoff>(victim_size / 2));
    f.write("\xde\xad\xbe\xef", 4);
  }
  auto store = MustOpen(StoreOptions(dir));
  ASSERT_NE(store, nullptr);
  const absl::Status s = store->Load("j", 2).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  auto small = store->Load("j", 1);
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_TRUE(SameRecords(*small, SmallRecords(1)));
}

TEST(CheckpointStoreTest, ConcurrentWritersAndReaders) {
  auto store = MustOpen(StoreOptions(TestDir("concurrent"), 1024));
  ASSERT_NE(store, nullptr);
  constexpr int kJobs = 4;
  constexpr uint64_t kClocks = 6;
  std::mutex mu;  // not absl::Mutex: see checkpoint_store.h
  std::vector<std::string> errors;
  auto fail = [&](const std::string& what) {
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(what);
  };
  std::atomic<bool> writers_done{false};
  std::vector<std::thread> threads;
  // Two writers per job race on the same clocks.
  for (int w = 0; w < 2 * kJobs; ++w) {
    threads.emplace_back([&, w] {
      const std::string job = absl::StrCat("job", w / 2);
      for (uint64_t clock = 1; clock <= kClocks; ++clock) {
        absl::StatusOr<uint64_t> s = store->Write(job, clock, SmallRecords(clock), 2);
        if (!s.ok()) fail(absl::StrCat("write: ", s.status().ToString()));
      }
    });
  }
  threads.emplace_back([&] {
    while (!writers_done) {
      for (int j = 0; j < kJobs; ++j) {
        const std::string job = absl::StrCat("job", j);
        auto clocks = store->List(job);
        if (!clocks.ok()) fail(absl::StrCat("list: ", clocks.status().ToString()));
        if (!clocks.ok() || clocks->empty()) continue;
        auto loaded = store->Load(job, clocks->back());
        // A concurrent prune may remove it between List and Load; never partial.
        if (loaded.ok() ? !SameRecords(*loaded, SmallRecords(clocks->back()))
                        : loaded.status().code() != absl::StatusCode::kNotFound) {
          fail(absl::StrCat("load ", clocks->back(), ": ",
                            loaded.ok() ? "wrong records" : loaded.status().ToString()));
        }
      }
      auto jobs = store->ListJobs();
      if (!jobs.ok()) fail(absl::StrCat("list jobs: ", jobs.status().ToString()));
    }
  });
  for (int w = 0; w < 2 * kJobs; ++w) threads[w].join();
  writers_done = true;
  threads.back().join();
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  for (int j = 0; j < kJobs; ++j) {
    EXPECT_THAT(*store->List(absl::StrCat("job", j)), ElementsAre(kClocks - 1, kClocks));
  }
}

// ---- crash test: a child process writes a checkpoint and is SIGKILLed mid-write ----

std::vector<CheckpointRecord> CrashRecords(uint64_t seed, size_t big_bytes) {
  return {{"meta", Pattern(seed, 1000)},
          {"big", Pattern(seed + 1, big_bytes)},
          {"empty", ""},
          {"tail", Pattern(seed + 2, 12345)}};
}

// Child mode of this binary (exec'ed by the test, so the child is a fresh
// single-threaded process): dir clock keep big_bytes seed fd. Writes 'S' to fd right
// before Write and 'D' after it returned OK.
int RunCrashChild(int argc, char** argv) {
  if (argc != 8) return 2;
  const std::string dir = argv[2];
  const uint64_t clock = std::strtoull(argv[3], nullptr, 10);
  const uint32_t keep = static_cast<uint32_t>(std::strtoul(argv[4], nullptr, 10));
  const size_t big_bytes = std::strtoull(argv[5], nullptr, 10);
  const uint64_t seed = std::strtoull(argv[6], nullptr, 10);
  const int fd = std::atoi(argv[7]);
  CheckpointStore::Options options;
  options.dir = dir;
  options.sync = true;
  auto store = CheckpointStore::Open(options);
  if (!store.ok()) {
    std::cerr << "crash child: " << store.status() << "\n";
    return 3;
  }
  const std::vector<CheckpointRecord> records = CrashRecords(seed, big_bytes);
  if (::write(fd, "S", 1) != 1) return 4;
  const auto written = (*store)->Write(kCrashJob, clock, records, keep);
  if (!written.ok()) {
    std::cerr << "crash child: " << written.status() << "\n";
    return 5;
  }
  if (::write(fd, "D", 1) != 1) return 6;
  store->reset();
  return 0;
}

struct ChildRun {
  bool started = false;   // reached Write
  bool finished = false;  // Write returned OK before the kill
  double write_s = 0;     // from 'S' to 'D' (when finished)
  int wait_status = 0;
};

// Runs the child; kills it `kill_after_s` after it began Write (never when < 0).
ChildRun RunChild(const std::string& dir, uint64_t clock, uint32_t keep, size_t big_bytes,
                  uint64_t seed, double kill_after_s) {
  ChildRun run;
  int fds[2];
  if (::pipe(fds) != 0) return run;
  ::fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  // Everything the child needs is built before fork: after it, only exec.
  std::vector<std::string> args = {"/proc/self/exe",
                                   kCrashChildFlag,
                                   dir,
                                   std::to_string(clock),
                                   std::to_string(keep),
                                   std::to_string(big_bytes),
                                   std::to_string(seed),
                                   std::to_string(fds[1])};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return run;
  }
  char c = 0;
  run.started = ::read(fds[0], &c, 1) == 1 && c == 'S';
  const auto start = std::chrono::steady_clock::now();
  if (run.started && kill_after_s >= 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(kill_after_s));
    ::kill(pid, SIGKILL);
  }
  if (run.started && ::read(fds[0], &c, 1) == 1 && c == 'D') {
    run.finished = true;
    run.write_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  ::close(fds[0]);
  ::waitpid(pid, &run.wait_status, 0);
  return run;
}

TEST(CheckpointStoreCrashTest, KillMidWriteLeavesTheOldOrTheNewCheckpoint) {
  constexpr size_t kPrevBytes = 8u << 20;
  // Sanitized builds run ~10x slower; a smaller checkpoint still spans many chunks.
  constexpr size_t kNewBytes = kSanitized ? 48u << 20 : 200u << 20;
  constexpr uint64_t kPrevSeed = 100;
  constexpr uint64_t kNewSeed = 200;
  const std::vector<CheckpointRecord> prev = CrashRecords(kPrevSeed, kPrevBytes);
  const std::vector<CheckpointRecord> next = CrashRecords(kNewSeed, kNewBytes);

  // Round 0 lets the child finish, to learn how long its Write takes here; the other
  // rounds kill it at a random point of that span (some after it, which must show the
  // new checkpoint complete). Modes: a new clock (keep 3), a new clock that prunes the
  // previous one (keep 1), and a replacement of the previous clock.
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::cout << "crash test seed " << seed << "\n";
  constexpr int kRounds = 7;
  double write_s = 0;
  int absent = 0, complete = 0;
  for (int round = 0; round < kRounds; ++round) {
    const int mode = round % 3;
    const uint64_t clock = mode == 2 ? 1 : 2;
    const uint32_t keep = mode == 1 ? 1 : 3;
    const std::string dir = TestDir(absl::StrCat("crash", round));
    {
      CheckpointStore::Options options;
      options.dir = dir;
      auto store = MustOpen(options);
      ASSERT_NE(store, nullptr);
      ASSERT_TRUE(store->Write(kCrashJob, 1, prev, 3).ok());
    }
    const double delay =
        round == 0 ? -1 : std::uniform_real_distribution<double>(0, 1.3 * write_s)(rng);
    const ChildRun run = RunChild(dir, clock, keep, kNewBytes, kNewSeed, delay);
    ASSERT_TRUE(run.started) << "child did not start, wait status " << run.wait_status;
    if (round == 0) {
      ASSERT_TRUE(run.finished && WIFEXITED(run.wait_status) &&
                  WEXITSTATUS(run.wait_status) == 0)
          << "wait status " << run.wait_status;
      write_s = run.write_s;
      std::cout << "child Write of " << (kNewBytes >> 20) << " MiB took " << write_s
                << " s\n";
    }
    SCOPED_TRACE(absl::StrCat("round ", round, " mode ", mode, " kill after ", delay,
                              " s, finished ", run.finished));

    CheckpointStore::Options options;
    options.dir = dir;
    auto store = MustOpen(options);
    ASSERT_NE(store, nullptr);
    auto clocks = store->List(kCrashJob);
    ASSERT_TRUE(clocks.ok()) << clocks.status();
    auto old_ckpt = store->Load(kCrashJob, 1);
    ASSERT_TRUE(old_ckpt.ok() || old_ckpt.status().code() == absl::StatusCode::kNotFound)
        << old_ckpt.status();
    const bool old_is_prev = old_ckpt.ok() && SameRecords(*old_ckpt, prev);
    bool new_complete = false;
    if (mode == 2) {
      // Clock 1 holds exactly the old or exactly the new records.
      ASSERT_TRUE(old_ckpt.ok()) << old_ckpt.status();
      new_complete = SameRecords(*old_ckpt, next);
      EXPECT_TRUE(old_is_prev || new_complete);
      EXPECT_THAT(*clocks, ElementsAre(1u));
    } else {
      auto new_ckpt = store->Load(kCrashJob, 2);
      if (new_ckpt.ok()) {
        EXPECT_TRUE(SameRecords(*new_ckpt, next)) << "partial new checkpoint";
        new_complete = true;
      } else {
        EXPECT_EQ(new_ckpt.status().code(), absl::StatusCode::kNotFound) << new_ckpt.status();
      }
      if (mode == 0 || !new_complete) {
        EXPECT_TRUE(old_is_prev) << "previous checkpoint lost";
      }
      if (mode == 1 && run.finished) {
        EXPECT_FALSE(old_ckpt.ok()) << "not pruned";
      }
      std::vector<uint64_t> expected;
      if (old_ckpt.ok()) expected.push_back(1);
      if (new_complete) expected.push_back(2);
      EXPECT_EQ(*clocks, expected);
    }
    if (run.finished) {
      EXPECT_TRUE(new_complete) << "acknowledged checkpoint lost";
    }
    (new_complete ? complete : absent)++;
    EXPECT_TRUE(fs::is_empty(dir + "/staging")) << "staging files left behind";
    store.reset();
    fs::remove_all(dir);
  }
  std::cout << "crash rounds: new checkpoint complete " << complete << ", absent " << absent
            << "\n";
}

TEST(CheckpointBenchTest, Smoke) {
  const std::string dir = TestDir("bench");
  const CheckpointBenchResult r = RunCheckpointBench(dir, 1u << 20);
  EXPECT_GT(r.store_mb_per_s, 0);
  EXPECT_GT(r.raw_mb_per_s, 0);
  EXPECT_GT(r.restore_s, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ps

#if defined(__SANITIZE_THREAD__)
// Debian's librocksdb is not instrumented: ThreadSanitizer sees its intercepted calls
// (memcmp, delete) but not the atomics that order them, and reports races inside
// RocksDB that are not there. Only reports with a RocksDB frame are dropped (not
// called_from_lib, which would also hide RocksDB's frees and so invent races on
// reused memory).
extern "C" const char* __tsan_default_suppressions() {
  return "race:librocksdb.so\n";
}
#endif

// The crash test re-executes this binary as the child that gets killed.
int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], ps::kCrashChildFlag) == 0) {
    return ps::RunCrashChild(argc, argv);
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
