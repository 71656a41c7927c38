// One job on one shard: its tables, the consistency gate and the exactly-once record.
//
// Consistency (DESIGN.md):
//   SYNC     a push of (rank, clock) is buffered; when every rank's pushes of the
//            shard's clock c have arrived they are summed in rank order (then part,
//            then slice order), divided by the number of workers and applied as one
//            optimizer step; c advances. A pull of clock c proceeds once c clocks are
//            applied. The result does not depend on arrival order.
//   BOUNDED  pushes apply on arrival; a pull of clock c proceeds once every rank's
//            clocks < c - staleness are applied.
//   ASYNC    pushes apply on arrival; pulls never wait.
// Exactly once: each part of each (rank, clock) is applied (or buffered) at most once; a
// repeated part is acknowledged as a duplicate. The record is part of every checkpoint.
//
// Waiting is event-driven: TryPull registers a callback instead of blocking, and the
// push that satisfies the condition runs it (outside the lock). No thread waits.
//
// Thread-safe. Callbacks (wake-ups, snapshots) run on the calling thread of Push or
// Restore after the job's lock is released.
#ifndef PS_SERVER_SHARD_JOB_H_
#define PS_SERVER_SHARD_JOB_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/packing.h"
#include "common/sync.h"
#include "server/table.h"

namespace ps {

enum class ConsistencyMode { kSync, kBounded, kAsync };

struct JobConfig {
  std::string job_id;
  uint64_t seed = 0;
  ConsistencyMode mode = ConsistencyMode::kSync;
  uint32_t staleness = 0;
  uint32_t num_workers = 1;
  uint32_t num_shards = 1;
  uint32_t shard_id = 0;               // This shard.
  uint32_t checkpoint_every_clocks = 0;  // SYNC/BOUNDED; 0 = none.
  uint32_t checkpoint_every_seconds = 0;  // ASYNC; 0 = none.
  uint32_t checkpoint_keep = 3;
  // Whether the job is checkpointed at all (common/job_spec.h TakesCheckpoints).
  bool takes_checkpoints = false;
  // The job's last clock (ShardJobConfig.total_clocks); 0 = unknown. With checkpoints
  // on, a snapshot is also taken when the checkpoint clock reaches it.
  uint64_t total_clocks = 0;
  bool zero_nonfinite = false;  // Else a NaN/Inf gradient rejects the push.
  // The serialized config as the service layer received it (opaque here).
  std::string config_blob;
};

// Memory accounting shared by all jobs of a shard. Thread-safe.
class MemoryBudget {
 public:
  explicit MemoryBudget(uint64_t limit_bytes) : limit_(limit_bytes) {}  // 0 = unlimited.
  bool TryReserve(uint64_t bytes);
  void Release(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }
  // Takes `bytes` even past the limit (for state that must not fail half-way).
  void Force(uint64_t bytes) { used_.fetch_add(bytes, std::memory_order_relaxed); }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }
  uint64_t limit() const { return limit_; }

 private:
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
};

// Limits of one shard against oversized or abusive requests (ps_server flags).
struct ShardLimits {
  uint64_t max_keys_per_call = uint64_t{1} << 22;  // Sparse keys over all slices of a call.
  uint32_t max_tables_per_job = 1024;
  uint64_t max_sparse_rows_per_table = uint64_t{1} << 28;  // Rows held on this shard.
};

// A piece of a pull or push as it came off the wire; views into the request.
struct SliceArgs {
  absl::string_view table;
  uint64_t begin = 0;  // Dense.
  uint64_t count = 0;  // Dense.
  absl::string_view keys;  // Sparse: packed uint64.
};

struct PushArgs {
  uint32_t rank = 0;
  uint64_t clock = 0;
  uint32_t part = 0;
  uint32_t num_parts = 1;
  std::vector<SliceArgs> slices;
  PackedFloats values;  // The slices' values (float32 or bfloat16), in one or more pieces.
  // Keeps the pieces of `values` alive when set: a SYNC shard then holds the part until
  // the clock's last push instead of copying it. Unset: the part is copied.
  std::shared_ptr<const void> values_owner;
};

struct PushResult {
  bool duplicate = false;
  uint64_t clock = 0;  // Clocks applied after the push.
};

// A named blob of a checkpoint (the store writes them in one atomic batch).
struct StateRecord {
  std::string name;
  std::string bytes;
};

// Dense weights and slots a snapshot borrowed rather than copied: (index of the record,
// the lent ranges of its bytes).
using SnapshotLoans = std::vector<std::pair<size_t, std::vector<LentBytes>>>;

struct JobSnapshot {
  std::string job_id;
  uint64_t clock = 0;
  uint32_t keep = 3;
  // SYNC and BOUNDED jobs are rolled back to their complete checkpoint after a fault;
  // ASYNC jobs are not (each shard keeps its own latest).
  bool rolls_back = true;
  // Time the job's lock was held to snapshot the state (dense weights and slots are
  // borrowed then, and copied after it: fill_us).
  uint64_t pause_us = 0;
  // Time spent after the lock copying the dense state the snapshot borrowed (part of
  // the checkpoint's write, not of its pause).
  uint64_t fill_us = 0;
  std::vector<StateRecord> records;
  // The dense state not yet in `records`: borrowed (the job's pushes copy a block before
  // they write it) until ShardJob::FillBorrowed copies it there. Only a snapshot handed
  // to the sink has it; the sink fills it, now or on the thread that writes it.
  SnapshotLoans borrowed;
};

struct JobCounters {
  uint64_t clock = 0;
  std::vector<uint64_t> worker_clocks;
  uint64_t pushes_applied = 0;
  uint64_t pushes_duplicate = 0;
  uint64_t dense_elements = 0;
  uint64_t sparse_rows = 0;
  uint64_t memory_bytes = 0;
  uint64_t dense_copies_on_write = 0;  // Writes to lent dense blocks, which copied them.
  uint64_t digest = 0;  // Set when asked for.
};

class ShardJob {
 public:
  // Called with each clock-aligned snapshot taken by a push (after the lock is released),
  // its dense state still borrowed: the sink calls FillBorrowed, so the push need not
  // wait for the copy (20-100 ms for 64M-256M floats here).
  using SnapshotSink = std::function<void(JobSnapshot)>;

  // `budget` is not owned and must outlive the job.
  ShardJob(JobConfig config, MemoryBudget* budget, SnapshotSink sink,
           ShardLimits limits = ShardLimits());
  ~ShardJob();
  ShardJob(const ShardJob&) = delete;
  ShardJob& operator=(const ShardJob&) = delete;

  const JobConfig& config() const { return config_; }

  // The job's last clock: config().total_clocks, or what AdoptTotalClocks set; 0 =
  // unknown.
  uint64_t total_clocks() const;
  // Sets the last clock of a job whose config did not say it (restored from the
  // checkpoint of a build that had no ShardJobConfig.total_clocks, and now set up by a
  // worker that sends it), unless it is known already; returns the one in effect.
  // `config_blob`, the offered config that says it, is what checkpoints record from
  // then on, so a shard restarted from one knows the last clock.
  uint64_t AdoptTotalClocks(uint64_t total, std::string config_blob);

  // Creates a table (the local part of a dense table by common/partition.h). OK and a
  // no-op when an equal table exists; FAILED_PRECONDITION when a different one does;
  // RESOURCE_EXHAUSTED past the memory budget.
  absl::Status CreateTable(TableConfig config);
  absl::Status DropTable(absl::string_view name);
  // Configs of every table, by name, with (local_begin, local_count).
  struct TableInfo {
    TableConfig config;
    uint64_t local_begin = 0;
    uint64_t local_count = 0;
  };
  std::vector<TableInfo> ListTables() const;

  // Reads the slices into `out` (float32 bytes in slice order) when the consistency
  // model lets a pull of (rank, clock) proceed, and returns true. With `lent`, dense
  // slices are lent there instead of copied (server/dense_values.h), each with its
  // place in `out`: the values are `out` with every lent range inserted at its `at`. Otherwise, when
  // `wake` is set, registers it, stores a ticket for CancelWait in `*ticket` and
  // returns false; `wake` then runs once when the pull may proceed (call TryPull again).
  // `no_wait` reads now, without creating sparse rows. Validation errors come first:
  // INVALID_ARGUMENT/NOT_FOUND/OUT_OF_RANGE naming the field; RESOURCE_EXHAUSTED when
  // new sparse rows would exceed the budget. Errors name the slices as `field`.
  absl::StatusOr<bool> TryPull(uint32_t rank, uint64_t clock, absl::Span<const SliceArgs> slices,
                               bool no_wait, std::string* out, uint64_t* applied_clock,
                               std::function<void()> wake, uint64_t* ticket,
                               std::vector<LentBytes>* lent = nullptr,
                               absl::string_view field = "slices");
  // Forgets a registered wake-up. True when it was still registered (it will not run).
  bool CancelWait(uint64_t ticket);
  // The validation of TryPull and Push alone (tables, kinds, ranges, keys), errors
  // naming the slices as `field`: for a call that must refuse bad slices before it
  // changes anything (PushPull's pull half).
  absl::Status CheckSlices(absl::Span<const SliceArgs> slices, absl::string_view field) const;

  // Applies or buffers one push part; see the class comment. Nothing is applied when
  // an error is returned.
  absl::StatusOr<PushResult> Push(const PushArgs& args);

  // Copies the state; the caller writes it. Clock: SYNC the applied clock, else the
  // slowest rank's clock. The buffers the copy goes into are prepared (mapped) before
  // the lock is taken; under the lock dense tables (weights and optimizer slots) are
  // only borrowed (their blocks lent, copy on write) and copied after it, so the lock
  // is held for the rest alone (sparse tables, the job's own state).
  JobSnapshot Snapshot();
  // Copies the dense state `snap` borrowed into its records and gives the loans back;
  // adds the time to snap->fill_us. Nothing to do when it borrows nothing. Any thread,
  // without the job's lock.
  static void FillBorrowed(JobSnapshot* snap);
  // Gives back the records of a snapshot once written: the next snapshot copies the
  // tables into these buffers, whose memory is already mapped. The job keeps at most
  // one set (the size of its tables' state) between checkpoints.
  void Recycle(std::vector<StateRecord> records);
  // Replaces the state with a snapshot's records (tables must exist with equal
  // configs; missing ones are created from `table_configs`). Buffered SYNC pushes are
  // dropped. DATA_LOSS when the records are malformed (state unchanged).
  absl::Status Restore(const std::vector<StateRecord>& records,
                       const std::vector<TableConfig>& table_configs);
  // Back to the initial state: tables re-initialised, clocks 0, record empty.
  void Reset();

  JobCounters Counters(bool with_digest) const;
  uint64_t clock() const;

  // Releases every waiting pull (shutdown): their wake-ups run and TryPull is then
  // answered UNAVAILABLE.
  void Close();

 private:
  struct Parsed;  // A validated slice.
  // Keys of one table that have no row yet.
  struct SyncNewKeys {
    const Table* table;
    absl::flat_hash_set<uint64_t> keys;
  };
  struct Part {
    std::vector<Parsed> slices;
    PackedFloats values;
    std::shared_ptr<const void> owner;  // Of values' pieces, or null when `copy` is.
    std::string copy;
  };
  struct PendingClock {
    uint32_t num_parts = 0;
    uint32_t received = 0;
    std::vector<bool> have;
    std::vector<std::unique_ptr<Part>> parts;  // SYNC only: the buffered gradients.
  };
  struct RankState {
    uint64_t done_below = 0;  // Every part of every clock < this was received.
    std::map<uint64_t, PendingClock> pending;
  };
  struct Waiter {
    uint32_t rank;
    uint64_t clock;
    std::function<void()> wake;
  };

  // SYNC: the keys of sparse slice `p` (its rows found) without a row that no part
  // held for the current clock has, and that `fresh` (this push's, per table) lacks;
  // adds them to `fresh` and returns how many.
  uint64_t CountNewToTheClockLocked(const Parsed& p, std::vector<SyncNewKeys>* fresh) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Errors name the slices as `field` ("slices[2].table"). With no `out` the slices are
  // only checked (sparse keys are counted, not copied), and `floats` is not counted.
  absl::Status ParseSlices(absl::Span<const SliceArgs> slices, std::vector<Parsed>* out,
                           uint64_t* floats, absl::string_view field = "slices") const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool PullReadyLocked(uint64_t clock) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint64_t MinWorkerClockLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint64_t SnapshotClockLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void ApplyPartLocked(const std::vector<Parsed>& slices, const PackedFloats& values)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplySyncStepLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::function<void()>> TakeReadyWaitersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The snapshot, with the dense weights and slots lent into snap.borrowed rather than
  // copied.
  JobSnapshot SnapshotLocked() ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CreateTableLocked(TableConfig config) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // RESOURCE_EXHAUSTED naming the slice when the missing rows of `parsed` (`missing[i]`
  // distinct keys of slice i, Table::CountMissing) would put a sparse table past
  // limits_.max_sparse_rows_per_table.
  absl::Status CheckRowLimitLocked(const std::vector<Parsed>& parsed,
                                   absl::Span<const uint64_t> missing,
                                   absl::string_view field) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  uint64_t MemoryLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Makes the reservation equal the tables' memory (after drops, resets, restores).
  void SettleMemoryLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const JobConfig config_;
  MemoryBudget* const budget_;  // Not owned.
  const SnapshotSink sink_;
  const ShardLimits limits_;

  // Buffers for the next snapshot's table states, by record name. Taken while `mu_`
  // may be held: never acquire `mu_` while holding `spare_mu_`.
  Mutex spare_mu_;
  std::map<std::string, std::string, std::less<>> spare_ ABSL_GUARDED_BY(spare_mu_);

  mutable Mutex mu_;
  std::map<std::string, std::unique_ptr<Table>, std::less<>> tables_ ABSL_GUARDED_BY(mu_);
  std::vector<RankState> ranks_ ABSL_GUARDED_BY(mu_);
  // config_.total_clocks and config_.config_blob until AdoptTotalClocks.
  uint64_t total_clocks_ ABSL_GUARDED_BY(mu_);
  std::string record_blob_ ABSL_GUARDED_BY(mu_);
  uint64_t applied_clock_ ABSL_GUARDED_BY(mu_) = 0;  // SYNC: clocks applied.
  uint64_t last_snapshot_clock_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pushes_applied_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pushes_duplicate_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;  // Bytes taken from budget_.
  // SYNC: the keys without a row that the parts held for the current clock will create
  // at its step, per table (each once, however many parts hold it); their rows' bytes
  // stay reserved from budget_ until then (SettleMemoryLocked).
  std::vector<SyncNewKeys> sync_new_keys_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_JOB_H_
