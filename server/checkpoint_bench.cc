#include "server/checkpoint_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "server/checkpoint_store.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

constexpr size_t kRawChunkBytes = CheckpointStore::kDefaultChunkBytes;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Incompressible, weight-like floats in (-1, 1) from a SplitMix64 stream.
std::string MakeFloats(uint64_t n) {
  std::string bytes(n * sizeof(float), '\0');
  uint64_t state = 0x5eed;
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const float f = static_cast<float>(static_cast<int32_t>(z >> 32)) / 2147483648.0f;
    std::memcpy(&bytes[i * sizeof(float)], &f, sizeof(float));
  }
  return bytes;
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// One synced WriteBatch of `bytes` in 4 MiB values; returns seconds or -1 on error.
double RawWrite(rocksdb::DB* db, const std::string& bytes, int run, bool wal) {
  const auto start = std::chrono::steady_clock::now();
  rocksdb::WriteBatch batch(bytes.size() + bytes.size() / kRawChunkBytes * 64 + 1024);
  for (size_t off = 0, i = 0; off < bytes.size(); off += kRawChunkBytes, ++i) {
    const std::string key = absl::StrCat("raw/", run, "/", 1000000000 + i);
    const size_t len = std::min(kRawChunkBytes, bytes.size() - off);
    if (!batch.Put(key, rocksdb::Slice(bytes.data() + off, len)).ok()) return -1;
  }
  rocksdb::WriteOptions write;
  if (wal) {
    write.sync = true;
  } else {
    write.disableWAL = true;
  }
  rocksdb::Status s = db->Write(write, &batch);
  if (s.ok() && !wal) s = db->Flush(rocksdb::FlushOptions());  // waits; syncs the SST
  if (!s.ok()) {
    PS_LOG(ERROR) << "checkpoint bench: raw write: " << s.ToString();
    return -1;
  }
  return Seconds(start);
}

double BestRawSeconds(const std::string& dir, const std::string& bytes, int runs) {
  // Tuned for one big sequential write: no compression, a memtable that takes the
  // whole batch without a stall.
  rocksdb::Options options;
  options.create_if_missing = true;
  options.compression = rocksdb::kNoCompression;
  options.write_buffer_size = std::max<size_t>(64 << 20, bytes.size() + (64 << 20));
  options.max_write_buffer_number = 3;
  double best = std::numeric_limits<double>::infinity();
  for (bool wal : {true, false}) {
    RemoveAll(dir);
    rocksdb::DB* raw = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
    if (!s.ok()) {
      PS_LOG(ERROR) << "checkpoint bench: open raw db: " << s.ToString();
      return 0;
    }
    std::unique_ptr<rocksdb::DB> db(raw);
    for (int run = 0; run < runs; ++run) {
      const double t = RawWrite(db.get(), bytes, run, wal);
      if (t < 0) return 0;
      PS_LOG(INFO) << "checkpoint bench: raw WriteBatch " << (wal ? "WAL sync" : "noWAL+Flush")
                   << " run " << run << ": " << t << " s";
      best = std::min(best, t);
    }
    s = db->Close();
    if (!s.ok()) PS_LOG(WARNING) << "checkpoint bench: close raw db: " << s.ToString();
  }
  RemoveAll(dir);
  return best;
}

}  // namespace

CheckpointBenchResult RunCheckpointBench(const std::string& dir, uint64_t floats, int runs) {
  runs = std::max(runs, 1);
  CheckpointBenchResult result;
  const std::string store_dir = dir + "/store";
  const std::string raw_dir = dir + "/raw";
  RemoveAll(store_dir);
  RemoveAll(raw_dir);
  std::vector<CheckpointRecord> records(1);
  records[0].name = "weights";
  records[0].bytes = MakeFloats(floats);
  const double mb = static_cast<double>(records[0].bytes.size()) / 1e6;

  {
    CheckpointStore::Options options;
    options.dir = store_dir;
    absl::StatusOr<std::unique_ptr<CheckpointStore>> store = CheckpointStore::Open(options);
    if (!store.ok()) {
      PS_LOG(ERROR) << "checkpoint bench: " << store.status();
      return result;
    }
    double best_write = std::numeric_limits<double>::infinity();
    double best_load = std::numeric_limits<double>::infinity();
    for (int run = 0; run < runs; ++run) {
      const uint64_t clock = run + 1;
      auto start = std::chrono::steady_clock::now();
      absl::StatusOr<uint64_t> written = (*store)->Write("bench", clock, records, 1);
      const double write_s = Seconds(start);
      if (!written.ok()) {
        PS_LOG(ERROR) << "checkpoint bench: write: " << written.status();
        return result;
      }
      start = std::chrono::steady_clock::now();
      absl::StatusOr<std::vector<CheckpointRecord>> loaded = (*store)->Load("bench", clock);
      const double load_s = Seconds(start);
      if (!loaded.ok() || loaded->size() != 1 || (*loaded)[0].bytes != records[0].bytes) {
        PS_LOG(ERROR) << "checkpoint bench: load: "
                      << (loaded.ok() ? absl::InternalError("wrong bytes") : loaded.status());
        return result;
      }
      PS_LOG(INFO) << "checkpoint bench: store run " << run << ": write " << write_s
                   << " s, load " << load_s << " s";
      best_write = std::min(best_write, write_s);
      best_load = std::min(best_load, load_s);
    }
    result.store_mb_per_s = mb / best_write;
    result.restore_s = best_load;
  }
  RemoveAll(store_dir);

  const double raw_s = BestRawSeconds(raw_dir, records[0].bytes, runs);
  if (raw_s > 0) result.raw_mb_per_s = mb / raw_s;
  PS_LOG(INFO) << "checkpoint bench: " << mb << " MB: store " << result.store_mb_per_s
               << " MB/s, raw " << result.raw_mb_per_s << " MB/s, restore "
               << result.restore_s << " s";
  return result;
}

}  // namespace ps
