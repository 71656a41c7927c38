// Durable per-job checkpoints of one shard, in one RocksDB directory.
//
// The shard's core turns its state into a list of named records; the store knows
// nothing about tables. A checkpoint is identified by (job, clock) and is written and
// deleted as a unit: a crash at any point leaves either the previous set of checkpoints
// or the new one, never a partial checkpoint.
//
// Each checkpoint is one SST file ingested atomically into the database (not through
// the memtable and WAL): its bytes are written to disk once, a multi-GB checkpoint
// needs no in-memory copy, and readers see all of it or none. Keys, under
// K = "c/" job '\0' clock(be64): K (manifest), K record(be32) chunk(be32) (chunks of a
// few MiB), K ff*8 (seal: per-record checksums). See checkpoint_store.cc for the
// measurements behind this.
#ifndef PS_SERVER_CHECKPOINT_STORE_H_
#define PS_SERVER_CHECKPOINT_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rocksdb {
class DB;
struct Options;
}  // namespace rocksdb

namespace ps {

// One named blob of a checkpoint. `name`: any bytes except '\0', at most 256 bytes
// (may be empty, need not be unique). `bytes`: any size, empty included.
struct CheckpointRecord {
  std::string name;
  std::string bytes;
};

// XXH64 (seed 0) of `bytes`: the checksum stored for each record at Write and verified
// by Load.
uint64_t CheckpointChecksum(absl::string_view bytes);

// A durable store of checkpoints for many jobs in one directory.
//
// Thread-safe. Writes and deletes of one job are serialised (a per-job mutex held for
// the whole call: a job's checkpoints are sequential by nature); different jobs write
// in parallel. Reads take no lock and see one consistent state of the database.
// One instance per directory: RocksDB holds a LOCK file, so a second Open of the same
// directory (in this or another process) fails with FAILED_PRECONDITION.
//
// Errors: INVALID_ARGUMENT for bad job ids, record names or options; NOT_FOUND for a
// missing checkpoint; DATA_LOSS when stored bytes fail their checksum or a chunk is
// missing; UNAVAILABLE for I/O errors (retry may help); RESOURCE_EXHAUSTED when the
// disk is full.
class CheckpointStore final {
 public:
  // Bytes per stored value: records are split into chunks of this size.
  static constexpr uint32_t kDefaultChunkBytes = 4u << 20;
  static constexpr uint32_t kMinChunkBytes = 1u << 10;
  static constexpr uint32_t kMaxChunkBytes = 64u << 20;
  // Job ids are [A-Za-z0-9_.-]{1,64}.
  static constexpr size_t kMaxJobIdBytes = 64;
  static constexpr size_t kMaxRecordNameBytes = 256;

  struct Options {
    // The RocksDB directory; created (with its parents) when missing.
    std::string dir;
    // fsync the WAL writes (pruning, DeleteJob). Checkpoint data is always fsynced: it
    // reaches the database by SST ingestion, which syncs the files, the directory and
    // the MANIFEST. Tests may set false.
    bool sync = true;
    // Chunk size, in [kMinChunkBytes, kMaxChunkBytes]. A store can read checkpoints
    // written with any chunk size (each manifest records its own).
    uint32_t chunk_bytes = kDefaultChunkBytes;
  };

  // Opens (creating if needed) the store in `options.dir`, and removes staging files
  // that a crashed Write left behind. INVALID_ARGUMENT for bad options,
  // FAILED_PRECONDITION when the directory is in use, UNAVAILABLE/DATA_LOSS when the
  // database cannot be opened.
  static absl::StatusOr<std::unique_ptr<CheckpointStore>> Open(const Options& options);

  ~CheckpointStore();
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;

  // Writes every record of (job, clock) atomically and durably, replacing an existing
  // checkpoint of the same (job, clock), then deletes the job's checkpoints beyond the
  // newest `keep` by clock (so a clock older than those is pruned at once), except
  // those at or above `keep_from` when given: the job's latest complete checkpoint as
  // this shard last heard it, which a recovery may roll every shard back to, and every
  // newer one, since what is complete by now may be newer than what it heard. Returns
  // the payload bytes written (the sum of the records' sizes). `records` is only read.
  // INVALID_ARGUMENT for a bad job id, a bad record name or keep == 0. When the
  // checkpoint was committed but pruning failed, returns the pruning error; writing
  // the same checkpoint again is safe.
  absl::StatusOr<uint64_t> Write(absl::string_view job, uint64_t clock,
                                 const std::vector<CheckpointRecord>& records,
                                 uint32_t keep,
                                 std::optional<uint64_t> keep_from = std::nullopt);

  // Durably deletes the job's checkpoints at clocks above `clock` (after a rollback to
  // it they belong to an abandoned history). OK when there are none.
  absl::Status DeleteNewer(absl::string_view job, uint64_t clock);

  // Clocks of the job's committed checkpoints, ascending; empty when the job has none.
  // Reads manifests only (seeking from one to the next, never through chunks): a
  // manifest is committed in the same file as its chunks, so it implies they are all
  // present; on-disk corruption of chunks is reported by Load.
  // A manifest that fails its own checksum is skipped (and logged).
  absl::StatusOr<std::vector<uint64_t>> List(absl::string_view job);

  // The records of (job, clock) in written order, each verified against the checksum
  // recorded at Write. NOT_FOUND if absent; DATA_LOSS on a checksum mismatch, a
  // missing or mis-sized chunk, or a corrupt manifest.
  absl::StatusOr<std::vector<CheckpointRecord>> Load(absl::string_view job,
                                                     uint64_t clock);

  // Jobs with at least one checkpoint, in byte order.
  absl::StatusOr<std::vector<std::string>> ListJobs();

  // Deletes every checkpoint of `job` durably; OK when it has none.
  absl::Status DeleteJob(absl::string_view job);

  // Test hooks: rewrite chunk `chunk` of record `record` with one byte flipped, delete
  // it, or count the raw keys (manifest + chunks + seal) stored for (job, clock).
  absl::Status CorruptChunkForTest(absl::string_view job, uint64_t clock,
                                   uint32_t record, uint32_t chunk);
  absl::Status DeleteChunkForTest(absl::string_view job, uint64_t clock,
                                  uint32_t record, uint32_t chunk);
  absl::StatusOr<uint64_t> CountKeysForTest(absl::string_view job, uint64_t clock);

 private:
  CheckpointStore(const Options& options, std::unique_ptr<rocksdb::Options> db_options,
                  std::unique_ptr<rocksdb::DB> db);

  // Returns the mutex that serialises writes of `job` (created on first use).
  std::mutex* JobMutex(absl::string_view job);
  // Whether any key lies in [begin, end).
  absl::StatusOr<bool> HasKeysInRange(const std::string& begin, const std::string& end);
  // Deletes the job's checkpoints beyond the newest `keep` and below `keep_from`.
  // Caller holds JobMutex(job).
  absl::Status Prune(absl::string_view job, uint32_t keep, std::optional<uint64_t> keep_from);
  // Durably deletes the keys in [begin, end), then drops the SST files that lie
  // entirely inside, so the space comes back without waiting for compaction.
  absl::Status DeleteRange(const std::string& begin, const std::string& end);

  // Constant after construction.
  const Options options_;
  const std::string staging_dir_;
  const std::unique_ptr<rocksdb::Options> db_options_;  // also used by SstFileWriter
  const std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> next_staging_id_{0};

  // Serialises the store's (tiny) WAL writes, so RocksDB never forms a write group in
  // which one thread copies another's batch: that hand-off is ordered by atomics in
  // uninstrumented RocksDB, invisible to ThreadSanitizer.
  std::mutex wal_mu_;

  // std::mutex, not absl::Mutex: Debian's prebuilt abseil is not instrumented, so
  // ThreadSanitizer cannot see absl::Mutex and reports false races; it does see
  // pthread mutexes.
  std::mutex jobs_mu_;
  // Guarded by jobs_mu_. Never erased: one small mutex per job id ever written; the
  // pointed-to mutexes never move.
  absl::flat_hash_map<std::string, std::unique_ptr<std::mutex>> job_mu_;
};

}  // namespace ps

#endif  // PS_SERVER_CHECKPOINT_STORE_H_
