// Everything one shard holds: its jobs, the memory budget and the checkpoint pipeline.
//
// Checkpoints: a job's snapshot is copied under the job's lock (the training pause) and
// handed to one background writer thread, which writes it to the CheckpointStore as one
// atomic synced batch and prunes old ones. Clock-aligned snapshots come from pushes
// (SYNC/BOUNDED); ASYNC jobs are snapshotted by a timer; Checkpoint() asks for one now.
//
// Thread-safe. No gRPC or protobuf types: job and table configs arrive decoded, and the
// opaque blobs they carry are decoded on restart by the functions in Options.
#ifndef PS_SERVER_SHARD_CORE_H_
#define PS_SERVER_SHARD_CORE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/sync.h"
#include "server/checkpoint_store.h"
#include "server/shard_job.h"

namespace ps {

struct CheckpointInfo {
  std::string job_id;
  uint64_t clock = 0;
  uint64_t bytes = 0;
  uint64_t pause_us = 0;
  uint64_t write_us = 0;
};

class ShardCore {
 public:
  struct Options {
    uint32_t shard_id = 0;
    uint64_t memory_budget_bytes = 0;  // 0 = unlimited.
    ShardLimits limits;                // Per call, per job and per table.
    std::string data_dir;              // RocksDB directory of the checkpoints.
    // A coordinator may roll SYNC and BOUNDED jobs back to their complete
    // checkpoints: pruning keeps every checkpoint from the complete one on
    // (ProtectCheckpoint). Otherwise, and for ASYNC jobs (which are not rolled back
    // and rarely have a complete checkpoint), a job keeps its newest
    // `checkpoint_keep`.
    bool coordinated = false;
    // Decode the opaque config blobs stored with checkpoints (restart and restore).
    std::function<absl::StatusOr<JobConfig>(const std::string& blob)> decode_job;
    std::function<absl::StatusOr<TableConfig>(const std::string& blob)> decode_table;
    // Whether the config blob of a job held here and an offered one set up the same
    // job (convert.h SameJobConfig); unset: when they are equal bytes.
    std::function<bool(const std::string& held, const std::string& offered)> same_job;
    // Called on the writer thread after each durable checkpoint.
    std::function<void(const CheckpointInfo&)> on_checkpoint;
  };

  // Opens the store and loads the latest checkpoint of every job in it.
  static absl::StatusOr<std::unique_ptr<ShardCore>> Open(Options options);
  ~ShardCore();  // Closes jobs and drains the writer.
  ShardCore(const ShardCore&) = delete;
  ShardCore& operator=(const ShardCore&) = delete;

  uint32_t shard_id() const { return options_.shard_id; }
  const MemoryBudget& budget() const { return budget_; }

  // Creates the job; `*existed` when it was there with the same config (Options::
  // same_job; a different one is FAILED_PRECONDITION). A job held without its last
  // clock takes the offered one (ShardJob::AdoptTotalClocks); another last clock than
  // the one it has is FAILED_PRECONDITION naming config.total_clocks.
  absl::Status CreateJob(JobConfig config, bool* existed);
  absl::Status DropJob(const std::string& job_id, bool delete_checkpoints);
  // NOT_FOUND naming job_id when absent.
  absl::StatusOr<std::shared_ptr<ShardJob>> FindJob(absl::string_view job_id) const;
  std::vector<std::shared_ptr<ShardJob>> Jobs() const;

  // Snapshots the job now and calls `done` once the write is durable (or failed), on the
  // writer thread.
  absl::Status Checkpoint(const std::string& job_id,
                          std::function<void(absl::StatusOr<CheckpointInfo>)> done);
  // Replaces the job's state by its checkpoint at `clock`; clock 0 with no such
  // checkpoint resets the job to its initial state. The job's checkpoints above
  // `clock` are deleted: they belong to the history rolled back.
  absl::Status Restore(const std::string& job_id, uint64_t clock);
  // The job's latest complete checkpoint (every shard has it), as the coordinator
  // says. Pruning keeps it and every newer one whatever `keep` says: by the time this
  // shard hears of it, a newer one may be complete, and a shard that ran ahead of
  // another's writes must not prune what the other has not written yet. Until the
  // first word, a coordinated shard prunes nothing.
  void ProtectCheckpoint(const std::string& job_id, uint64_t clock);
  absl::StatusOr<std::vector<uint64_t>> ListCheckpoints(const std::string& job_id);
  // Clock of the job's latest durable checkpoint written or loaded by this process; 0
  // when none.
  uint64_t LastCheckpointClock(const std::string& job_id) const;

  // Snapshots ASYNC jobs whose timer is due (called by the timer thread; public for tests).
  void CheckpointDueAsyncJobs();

  // Releases waiting pulls and refuses new work (shutdown).
  void CloseAll();
  // Waits until every queued checkpoint is written.
  void Drain();

 private:
  struct WriteTask {
    JobSnapshot snapshot;
    std::function<void(absl::StatusOr<CheckpointInfo>)> done;
  };

  ShardCore(Options options, std::unique_ptr<CheckpointStore> store);
  absl::Status LoadAll();
  absl::Status RestoreFromStore(ShardJob* job, uint64_t clock);
  std::shared_ptr<ShardJob> MakeJob(JobConfig config);
  void Enqueue(WriteTask task);
  // A snapshot a push took, its dense state borrowed (ShardJob::SnapshotSink): to the
  // writer as it is when the writer is idle, else copied first.
  void EnqueueBorrowed(JobSnapshot snap);
  void WriterLoop();
  void TimerLoop();

  // Constant after construction.
  const Options options_;
  const std::unique_ptr<CheckpointStore> store_;
  MemoryBudget budget_;

  mutable Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<ShardJob>> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, int64_t> last_async_snapshot_ms_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> last_checkpoint_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, uint64_t> protected_ ABSL_GUARDED_BY(mu_);

  Mutex queue_mu_;
  CondVar queue_cv_;  // Signalled on every change of the queue, writing_ or stopping_.
  std::deque<WriteTask> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  int writing_ ABSL_GUARDED_BY(queue_mu_) = 0;
  std::thread writer_;
  std::thread timer_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_CORE_H_
