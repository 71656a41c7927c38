// The coordinator's core: job registry, membership, scheduling, checkpoint catalog and
// recovery. No gRPC types; proto messages serve as plain data. The gRPC service
// (service.h) is glue around this class.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/coordinator.pb.h"
#include "server/coordinator/clock.h"
#include "server/coordinator/job_store.h"
#include "server/coordinator/state.pb.h"
#include "common/sync.h"

namespace ps {

struct CoordinatorOptions {
  uint32_t num_shards = 1;                // Shards every job uses, 1 .. 4096.
  int64_t heartbeat_interval_ms = 1000;   // Told to daemons at Register, >= 1.
  int64_t heartbeat_timeout_ms = 5000;    // Silence after which a member is dead.
  std::string data_root = ".";            // Job data paths are confined to it.
  // Dead workers are forgotten (dropped from GetCluster) after this long; 0 means
  // 20 heartbeat timeouts.
  int64_t forget_dead_after_ms = 0;
};

// Job lifecycle and cluster state (DESIGN.md, "Control plane", "Checkpoints and
// recovery"):
//
//  * SubmitJob validates and persists a PENDING job. A PENDING job starts (RUNNING)
//    when all num_shards shards are registered and healthy and num_workers idle,
//    healthy, fitting workers exist; they get ranks 0..W-1 in registration order and
//    learn it from their heartbeat responses. Several jobs run on disjoint workers.
//  * A shard registering with a new incarnation (a restart), or the death of a
//    worker of a RUNNING job (heartbeat timeout), puts the job into RECOVERING:
//    generation+1, every shard gets a restore order for the latest complete
//    checkpoint (0: reset to the initial state), and workers get no assignment until
//    every shard applied it and every rank has a live worker (idle workers replace
//    dead ones); then the job is RUNNING again at the restore clock (recoveries+1).
//    ASYNC jobs are not rolled back: shards keep their state (a restarted shard has
//    loaded its own latest snapshot, each internally consistent) and each rank
//    resumes at its last reported clock, its data position; clocks a shard already
//    has are acknowledged as duplicates, clocks it lost are skipped.
//  * Recovery figures: JobStatus.clocks_redone and last_recovery_ms.
//  * After a restart of the coordinator itself, RUNNING jobs keep running: workers
//    re-register claiming (job, rank, generation) and get their ranks back; ranks not
//    claimed within heartbeat_timeout_ms count as lost workers.
//
// Thread-safety: every method is thread-safe. State changes are persisted in the
// JobStore before the mutating call returns (state transitions and the checkpoint
// catalog with synced writes; progress numbers unsynced, which survives a crash of the
// process). No lock is held across store I/O.
class Coordinator {
 public:
  // Loads the registry from `store` (owned) and records one more boot in it. `clock`
  // is not owned and must outlive the coordinator. INVALID_ARGUMENT on bad options;
  // the store's error when it cannot be read or written.
  static absl::StatusOr<std::unique_ptr<Coordinator>> Create(
      const CoordinatorOptions& options, std::unique_ptr<JobStore> store,
      const Clock* clock);

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;
  ~Coordinator();

  // --- Client-facing. ---

  // Validates `spec` (ValidateJobSpec, then the data files under data_root) and adds
  // a PENDING job; returns its id ("job-000001"). INVALID_ARGUMENT naming the field;
  // INTERNAL when the store cannot persist the job (it is then not added).
  absl::StatusOr<std::string> SubmitJob(const JobSpec& spec);

  // NOT_FOUND for an unknown id.
  absl::StatusOr<JobStatus> GetJob(absl::string_view job_id) const;

  // Every job, oldest first.
  std::vector<JobStatus> ListJobs() const;

  // PENDING/RUNNING/RECOVERING -> CANCELLED: its workers are released (their
  // heartbeats stop listing the assignment, their reports get cancel) and shards get
  // a drop order. Returns the new status. FAILED_PRECONDITION for a finished job,
  // NOT_FOUND for an unknown one.
  absl::StatusOr<JobStatus> CancelJob(absl::string_view job_id);

  // Every member (shards by id, then workers by registration) and num_shards.
  GetClusterResponse GetCluster() const;

  // --- Daemon-facing. ---

  // Adds a member (role, address, shard_id, incarnation, device; workers may claim
  // job_id/rank/generation, see the class comment). A shard_id already registered is
  // replaced; with another incarnation than the last one known that is a restart and
  // starts a recovery of every RUNNING/RECOVERING job. INVALID_ARGUMENT for a bad
  // role, shard_id or address.
  absl::StatusOr<RegisterResponse> Register(const Member& member);

  // Marks the member alive, applies the orders a shard acknowledges, and returns the
  // worker's current assignment or the shard's pending orders. NOT_FOUND for an
  // unknown member_id or another incarnation (the daemon registers again).
  absl::StatusOr<HeartbeatResponse> Heartbeat(const HeartbeatRequest& request);

  // Records a worker's progress; returns true when the worker should stop (the job
  // ended or was cancelled, or the report's generation is stale). A report with an
  // error fails the job; the last rank to report finished makes it SUCCEEDED.
  // NOT_FOUND for an unknown job, INVALID_ARGUMENT for a rank out of range.
  absl::StatusOr<bool> ReportProgress(const ProgressReport& report);

  // Adds a shard's checkpoint to the catalog (see CheckpointReport). NOT_FOUND for
  // an unknown job, INVALID_ARGUMENT for a shard_id out of range.
  absl::Status ReportCheckpoint(const CheckpointReport& report);

  // Detects members whose heartbeats timed out (recovering their jobs), forgets long
  // dead workers, and schedules. Call periodically (the server does, a few times per
  // heartbeat interval); tests call it after advancing a FakeClock.
  void Tick();

  // --- Change notification (WatchJob). ---

  // Calls `on_change` after every change of the job's state, clock, epoch, eval,
  // total_clocks or complete checkpoint, from the thread that made the change, with
  // no lock of the coordinator held except the watcher list's: `on_change` must be
  // quick and must not call Watch/Unwatch. Returns an id for Unwatch.
  uint64_t Watch(const std::string& job_id, std::function<void()> on_change);

  // Removes a watcher. After it returns, its callback is not running and never runs
  // again. Unknown ids are ignored.
  void Unwatch(uint64_t watch_id);

  const CoordinatorOptions& options() const { return options_; }

 private:
  struct RankSlot {
    std::string member_id;       // "" = no worker.
    int64_t unfilled_since_ms = 0;
    bool reported = false;       // Reported in the current generation.
    uint64_t clock = 0;
    uint32_t epoch = 0;
    double loss = 0;
    double samples_per_s = 0;
    bool finished = false;
  };
  struct JobEntry {
    JobRecord rec;
    std::vector<RankSlot> ranks;
    int64_t recovery_started_ms = 0;  // Of the recovery in progress (not persisted).
    // Checkpoint clocks each shard last said it holds (heartbeats; not persisted).
    std::vector<std::vector<uint64_t>> held;
    std::vector<bool> held_known;
  };
  struct MemberEntry {
    Member m;            // healthy, job_id, rank, last_heartbeat_ms kept current.
    uint64_t seq = 0;    // Registration order.
    int64_t dead_since_ms = 0;
  };
  // What one call changed: records to persist, watchers to notify.
  struct Changes {
    absl::flat_hash_set<std::string> jobs;
    absl::flat_hash_set<std::string> notify;
    std::vector<ShardRecord> shards;
    bool next_job_seq = false;
    bool sync = false;
  };
  // A snapshot of changes to write, in ticket order.
  struct Commit {
    uint64_t ticket = 0;
    StoreUpdate update;
    bool sync = false;
    std::vector<std::string> notify;
  };

  Coordinator(const CoordinatorOptions& options, std::unique_ptr<JobStore> store,
              const Clock* clock);
  absl::Status LoadLocked(StoredState state) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobEntry* FindJobLocked(absl::string_view job_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkJobLocked(const JobEntry& job, bool sync, bool notify, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ShardsReadyLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool WorkerFits(const MemberEntry& w, const JobSpec& spec) const;
  std::vector<MemberEntry*> IdleWorkersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AssignRankLocked(JobEntry* job, uint32_t rank, MemberEntry* worker)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReleaseWorkersLocked(JobEntry* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleLocked(Changes* ch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartRecoveryLocked(JobEntry* job, const std::string& why, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A shard refused the job's restore order (it lacks or cannot read the checkpoint):
  // roll back to the newest older clock the shard lists in `request`.
  void RollBackFurtherLocked(uint32_t shard_id, const ShardOrder& refused,
                             const HeartbeatRequest& request, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartAsyncRecoveryLocked(JobEntry* job, const std::string& why, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishJobLocked(JobEntry* job, JobState state, const std::string& reason,
                       Changes* ch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoseWorkerLocked(MemberEntry* worker, const std::string& why, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecomputeProgressLocked(JobEntry* job) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddCheckpointVoteLocked(JobEntry* job, uint32_t shard_id, uint64_t clock)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Records the checkpoints a shard holds of a job and raises the job's complete
  // checkpoint to the newest clock every shard holds.
  void SetHeldCheckpointsLocked(JobEntry* job, uint32_t shard_id,
                                const std::vector<uint64_t>& clocks, Changes* ch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<std::string> ShardAddressesLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Snapshots `ch` under mu_; WriteCommit writes it (after mu_ is released) in the
  // order the snapshots were taken, then notifies watchers.
  Commit PrepareCommitLocked(Changes* ch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status WriteCommit(Commit commit) ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  void Notify(const std::vector<std::string>& job_ids) ABSL_LOCKS_EXCLUDED(watch_mu_);

  // Constant after construction.
  const CoordinatorOptions options_;
  const std::unique_ptr<JobStore> store_;
  const Clock* const clock_;  // Not owned.

  mutable Mutex mu_;
  uint64_t boot_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_job_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_member_seq_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_ticket_ ABSL_GUARDED_BY(mu_) = 1;
  // Jobs by seq (submission order) and an index by id.
  absl::btree_map<uint64_t, std::unique_ptr<JobEntry>> jobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, JobEntry*> jobs_by_id_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, MemberEntry> members_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> shard_member_ ABSL_GUARDED_BY(mu_);  // By shard id.
  std::vector<ShardRecord> shard_records_ ABSL_GUARDED_BY(mu_);  // By shard id.

  // Orders store writes by ticket.
  Mutex write_mu_ ABSL_ACQUIRED_AFTER(mu_);
  CondVar written_cv_;  // Signalled when written_ticket_ grows.
  uint64_t written_ticket_ ABSL_GUARDED_BY(write_mu_) = 0;

  Mutex watch_mu_;
  uint64_t next_watch_id_ ABSL_GUARDED_BY(watch_mu_) = 1;
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, std::function<void()>>>
      watchers_ ABSL_GUARDED_BY(watch_mu_);
  absl::flat_hash_map<uint64_t, std::string> watch_jobs_ ABSL_GUARDED_BY(watch_mu_);
};

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsFinalState(JobState state);

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_H_
