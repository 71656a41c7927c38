// Throughput of CheckpointStore against the fastest plain synced RocksDB write of the
// same bytes, for the project's benchmark.
#ifndef PS_SERVER_CHECKPOINT_BENCH_H_
#define PS_SERVER_CHECKPOINT_BENCH_H_

#include <cstdint>
#include <string>

namespace ps {

struct CheckpointBenchResult {
  // Payload MB (1e6 bytes) per second of CheckpointStore::Write of one record.
  double store_mb_per_s = 0;
  // The same bytes as one synced RocksDB WriteBatch (4 MiB values) into a plain
  // database in the same process: the faster of the WAL (sync=true) and the
  // disableWAL + Flush variants.
  double raw_mb_per_s = 0;
  // Seconds of CheckpointStore::Load of that record (checksums verified).
  double restore_s = 0;
};

// Writes `floats` pseudo-random float32 values (as one record) under `dir` (created;
// its subfolders "store" and "raw" are removed before and after). Each timing is the
// best of `runs` runs (at least 1). Details go to the log (INFO). On any error (logged)
// the fields of the failed step stay 0. Not thread-safe against another bench on the
// same `dir`; needs about 3x the bytes in memory.
CheckpointBenchResult RunCheckpointBench(const std::string& dir, uint64_t floats, int runs = 2);

}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_BENCH_H_
