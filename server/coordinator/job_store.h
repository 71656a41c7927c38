// Durable storage of the coordinator's registry: jobs (status, generation, checkpoint
// catalog, pending shard orders), the last incarnation of every shard and the job id
// counter.
#ifndef PS_SERVER_COORDINATOR_JOB_STORE_H_
#define PS_SERVER_COORDINATOR_JOB_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/coordinator/state.pb.h"

namespace ps {

// Everything a store holds.
struct StoredState {
  uint64_t next_job_seq = 1;     // The numeric part of the next job id.
  uint64_t boots = 0;            // How often a coordinator started on this store.
  std::vector<JobRecord> jobs;   // Ascending seq.
  std::vector<ShardRecord> shards;
};

// A set of puts applied atomically by JobStore::Write.
struct StoreUpdate {
  std::vector<JobRecord> jobs;      // Keyed by status.job_id; replaces the old record.
  std::vector<ShardRecord> shards;  // Keyed by shard_id.
  std::optional<uint64_t> next_job_seq;
  std::optional<uint64_t> boots;

  bool empty() const {
    return jobs.empty() && shards.empty() && !next_job_seq && !boots;
  }
};

// The registry's persistence. Implementations are thread-safe; the caller orders
// writes of the same key (the coordinator serialises its writes).
class JobStore {
 public:
  virtual ~JobStore() = default;

  // Reads every record. DATA_LOSS when a record does not parse.
  virtual absl::StatusOr<StoredState> Load() = 0;

  // Applies `update` atomically (one RocksDB WriteBatch). With `sync` the write is
  // durable (fsync'ed) before this returns; without it, it survives a crash of the
  // process but maybe not of the machine. INTERNAL on an I/O error.
  virtual absl::Status Write(const StoreUpdate& update, bool sync) = 0;
};

// Opens (creating when missing) the RocksDB database in directory `dir`. Fails with
// the RocksDB message when the directory is unusable or locked by another process.
absl::StatusOr<std::unique_ptr<JobStore>> OpenRocksJobStore(const std::string& dir);

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_JOB_STORE_H_
