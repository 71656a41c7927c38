// What psctl prints: job status as text and as stable JSON, the job and cluster
// tables, the progress line and the exit codes. Pure functions of their inputs.
#ifndef PS_CLIENT_FORMAT_H_
#define PS_CLIENT_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "proto/coordinator.pb.h"

namespace ps {

// psctl's exit codes.
enum ExitCode : int {
  kExitOk = 0,         // Success; for submit --wait and watch: the job SUCCEEDED.
  kExitUsage = 1,      // Bad command line, unreadable spec file.
  kExitRpc = 2,        // The coordinator (or a shard) could not be reached or refused.
  kExitFailed = 3,     // The job FAILED.
  kExitCancelled = 4,  // The job was CANCELLED.
  kExitBadSpec = 5,    // The spec does not parse or the coordinator rejected it.
  kExitNotFound = 6,   // No such job.
};

// kExitNotFound for NOT_FOUND, kExitRpc for every other error, kExitOk for OK.
int ExitCodeForStatus(const absl::Status& status);
// kExitFailed, kExitCancelled, or kExitOk (SUCCEEDED and non-final states).
int ExitCodeForState(JobState state);

// "1h02m03s", "4m05s", "42s"; "-" for negative durations.
std::string FormatDuration(int64_t ms);

// The job as one JSON object on one line, keys in this fixed order (snake_case):
//   job_id (string), name (string), state (string: PENDING, RUNNING, RECOVERING,
//   SUCCEEDED, FAILED, CANCELLED), reason (string), num_workers, epochs, epoch,
//   clock, total_clocks (0 = unknown), loss, samples_per_s,
//   eval (null, or {examples, loss, accuracy, auc}), target_accuracy,
//   complete_checkpoint (0 = none), recoveries, submit_time_ms, start_time_ms,
//   end_time_ms (Unix ms, 0 = not yet), clocks_redone (by rollbacks),
//   last_recovery_ms (the last recovery's duration).
// Numbers are JSON numbers; a NaN or infinite double is null. New keys may be added
// at the end; existing ones keep their meaning.
std::string JobStatusJson(const JobStatus& status);

// A cluster member as one JSON object on one line, keys in this order: role ("shard"
// or "worker"), member_id, shard_id, address, healthy (bool), job_id, rank, device,
// load, last_heartbeat_ms.
std::string MemberJson(const Member& member);

// Multi-line human description of the job; `now_ms` dates the durations.
std::string JobStatusText(const JobStatus& status, int64_t now_ms);

// One row per job: ID, STATE, NAME, CLOCK, LOSS, ACCURACY, WORKERS, AGE.
std::string JobsTable(const std::vector<JobStatus>& jobs, int64_t now_ms);

// One row per member: ROLE, ID, ADDRESS, HEALTH, JOB/RANK, DEVICE, LOAD, LAST BEAT;
// then missing shard ids, if any.
std::string ClusterTable(const GetClusterResponse& cluster, int64_t now_ms);

// Tracks the speed of a watched job for its ETA. Not thread-safe.
class ProgressMeter {
 public:
  // Records a status seen at `now_ms`.
  void Update(const JobStatus& status, int64_t now_ms);
  // The progress line: bar, state, epoch, clock/total, loss, accuracy, samples/s, ETA
  // ("ETA ?" until the speed is known). No newline.
  std::string Line(const JobStatus& status) const;

 private:
  int64_t first_ms_ = -1, last_ms_ = -1;
  uint64_t first_clock_ = 0, last_clock_ = 0;
};

// The closing summary: state, reason, final accuracy (and the target), duration,
// recoveries. Ends with a newline.
std::string JobSummary(const JobStatus& status);

}  // namespace ps

#endif  // PS_CLIENT_FORMAT_H_
