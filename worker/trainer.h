// The training loop of one worker rank: pull (with clock) -> forward/backward -> push
// (with clock), for SYNC, BOUNDED and ASYNC jobs alike (the shards implement the
// consistency model; the loop is the same). Rank 0 also evaluates on the test set
// every spec.eval.every_clocks and at the end.
//
// Clock c is step c % S of epoch c / S, where S = steps per epoch of the rank's data
// shard (worker/data/shard.h): every rank runs the same clocks. After the last clock
// rank 0 pulls clock `total_clocks` (in SYNC this waits for every rank's last push) and
// evaluates the final model.
#ifndef PS_WORKER_TRAINER_H_
#define PS_WORKER_TRAINER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "proto/job.pb.h"
#include "worker/compute/factory.h"
#include "worker/ps_client.h"

namespace ps {

struct TrainerOptions {
  std::string job_id;
  JobSpec spec;
  uint32_t rank = 0;
  uint64_t resume_clock = 0;  // Start at this clock (0: from the start).
  std::string data_root;      // Relative data paths resolve under it.
  compute::DeviceChoice device = compute::DeviceChoice::kAuto;
  // Progress is reported at most this often (and always at evaluations and the end).
  double report_every_s = 0.5;
  // Checked before every clock; when it reads true the loop ends with CANCELLED.
  // Not owned; may be null.
  const std::atomic<bool>* stop = nullptr;
  // How long a pull, push or job set-up that keeps failing with a transient error
  // (IsTransientPsError) is repeated, from the same clock, before the loop gives up
  // with that error. 0 = give up at once. Managed workers set it: while a shard
  // restarts, the coordinator rolls the job back and supersedes this run, which then
  // ends through `stop` instead of failing the job.
  double transient_retry_s = 0;
  // How long the rank that pushed a shard's last clock waits for the shards' own
  // checkpoint of it before it asks every shard for one (a write failed).
  double final_checkpoint_wait_s = 300;
};

// Errors a retry of the same call can outlive: the shard is unreachable or restarting
// (UNAVAILABLE, DEADLINE_EXCEEDED, ABORTED), it was restarted and does not know the
// job yet (NOT_FOUND), or it was rolled back to another clock (FAILED_PRECONDITION).
bool IsTransientPsError(const absl::Status& status);

// What the loop tells its owner. Times are seconds spent in this reporting period, per
// clock on average.
struct TrainerProgress {
  uint64_t clock = 0;  // Clocks done by this rank.
  uint64_t total_clocks = 0;
  uint32_t epoch = 0;
  double loss = 0;     // Mean training loss over the period.
  double samples_per_s = 0;
  // compute: batch gathering, parameter preparation and gradients. push: the push of
  // the clock together with the pull of the next one, which it carries (PushPull).
  // pull: pulls on their own (the first clock of a run).
  double compute_s = 0, pull_s = 0, push_s = 0;
  bool has_eval = false;
  int64_t eval_examples = 0;
  double eval_loss = 0, eval_accuracy = 0, eval_auc = 0;
  bool finished = false;
};

// Receives progress; returns false to stop the loop (the job was cancelled or
// superseded). Called on the training thread.
using ProgressCallback = std::function<bool(const TrainerProgress&)>;

// Runs the job's clocks for this rank. `ps` is not owned. Returns OK when every clock
// ran (or the callback stopped the loop: CANCELLED), else the first error: bad spec or
// data (INVALID_ARGUMENT, NOT_FOUND), shards unreachable after retries (UNAVAILABLE).
// With checkpoints on (spec.checkpoint), the rank that pushed a shard's last clock
// reports itself finished only once every shard holds a checkpoint of it, so the
// finished model is on disk before the job can end.
absl::Status Train(const TrainerOptions& options, PsClient* ps, const ProgressCallback& progress);

// The shard-side configuration of a job (consistency, workers, checkpoints, seed, the
// clocks it runs).
ShardJobConfig ShardConfigForJob(const std::string& job_id, const JobSpec& spec,
                                 uint32_t num_shards, uint64_t total_clocks);

}  // namespace ps

#endif  // PS_WORKER_TRAINER_H_
