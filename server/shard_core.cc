#include "server/shard_core.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/logging.h"
#include "common/status.h"

namespace ps {
namespace {

std::vector<CheckpointRecord> ToStoreRecords(std::vector<StateRecord> records) {
  std::vector<CheckpointRecord> out;
  out.reserve(records.size());
  for (StateRecord& r : records) out.push_back(CheckpointRecord{std::move(r.name), std::move(r.bytes)});
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShardCore>> ShardCore::Open(Options options) {
  CheckpointStore::Options store_options;
  store_options.dir = options.data_dir;
  PS_ASSIGN_OR_RETURN(std::unique_ptr<CheckpointStore> store,
                      CheckpointStore::Open(store_options));
  std::unique_ptr<ShardCore> core(new ShardCore(std::move(options), std::move(store)));
  PS_RETURN_IF_ERROR(core->LoadAll());
  return core;
}

ShardCore::ShardCore(Options options, std::unique_ptr<CheckpointStore> store)
    : options_(std::move(options)),
      store_(std::move(store)),
      budget_(options_.memory_budget_bytes) {
  writer_ = std::thread([this] { WriterLoop(); });
  timer_ = std::thread([this] { TimerLoop(); });
}

ShardCore::~ShardCore() {
  CloseAll();
  {
    MutexLock lock(&queue_mu_);
    stopping_ = true;
    queue_cv_.SignalAll();
  }
  writer_.join();
  timer_.join();
  MutexLock lock(&mu_);
  jobs_.clear();
}

std::shared_ptr<ShardJob> ShardCore::MakeJob(JobConfig config) {
  config.shard_id = options_.shard_id;
  return std::make_shared<ShardJob>(
      std::move(config), &budget_,
      [this](JobSnapshot snap) { EnqueueBorrowed(std::move(snap)); },
      options_.limits);
}

absl::Status ShardCore::LoadAll() {
  PS_ASSIGN_OR_RETURN(std::vector<std::string> job_ids, store_->ListJobs());
  for (const std::string& id : job_ids) {
    PS_ASSIGN_OR_RETURN(std::vector<uint64_t> clocks, store_->List(id));
    if (clocks.empty()) continue;
    PS_ASSIGN_OR_RETURN(std::vector<CheckpointRecord> records, store_->Load(id, clocks.back()));
    const CheckpointRecord* job_record = nullptr;
    for (const CheckpointRecord& r : records) {
      if (r.name == "job") job_record = &r;
    }
    if (job_record == nullptr) {
      return absl::DataLossError(absl::StrCat("checkpoint ", clocks.back(), " of job '", id,
                                              "' has no job record"));
    }
    PS_ASSIGN_OR_RETURN(JobConfig config, options_.decode_job(job_record->bytes));
    std::shared_ptr<ShardJob> job = MakeJob(std::move(config));
    PS_RETURN_IF_ERROR(RestoreFromStore(job.get(), clocks.back()));
    PS_LOG(INFO) << "shard " << options_.shard_id << " job " << id
                 << ": loaded checkpoint at clock " << clocks.back();
    MutexLock lock(&mu_);
    jobs_[id] = std::move(job);
    last_checkpoint_[id] = clocks.back();
  }
  return absl::OkStatus();
}

absl::Status ShardCore::RestoreFromStore(ShardJob* job, uint64_t clock) {
  PS_ASSIGN_OR_RETURN(std::vector<CheckpointRecord> records,
                      store_->Load(job->config().job_id, clock));
  std::vector<StateRecord> state;
  std::vector<TableConfig> tables;
  state.reserve(records.size());
  for (CheckpointRecord& r : records) {
    const absl::string_view name = r.name;
    if (name.size() > 11 && name.substr(0, 6) == "table/" &&
        name.substr(name.size() - 5) == "/spec") {
      PS_ASSIGN_OR_RETURN(TableConfig t, options_.decode_table(r.bytes));
      tables.push_back(std::move(t));
    }
    state.push_back(StateRecord{std::move(r.name), std::move(r.bytes)});
  }
  return job->Restore(state, tables);
}

absl::Status ShardCore::CreateJob(JobConfig config, bool* existed) {
  MutexLock lock(&mu_);
  auto it = jobs_.find(config.job_id);
  if (it != jobs_.end()) {
    ShardJob& job = *it->second;
    const std::string& held = job.config().config_blob;
    if (held != config.config_blob) {
      if (options_.same_job == nullptr || !options_.same_job(held, config.config_blob)) {
        return absl::FailedPreconditionError(absl::StrCat(
            "config: job '", config.job_id, "' exists on shard ", options_.shard_id,
            " with another config"));
      }
      // The same job, one side not knowing its last clock.
      const uint64_t total = job.AdoptTotalClocks(config.total_clocks, config.config_blob);
      if (config.total_clocks != 0 && total != config.total_clocks) {
        return absl::FailedPreconditionError(absl::StrCat(
            "config.total_clocks: job '", config.job_id, "' runs ", total, " clocks on shard ",
            options_.shard_id, ", not ", config.total_clocks));
      }
    }
    *existed = true;
    return absl::OkStatus();
  }
  *existed = false;
  const std::string id = config.job_id;
  jobs_[id] = MakeJob(std::move(config));
  return absl::OkStatus();
}

absl::Status ShardCore::DropJob(const std::string& job_id, bool delete_checkpoints) {
  std::shared_ptr<ShardJob> job;
  {
    MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) {
      return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "' on shard ",
                                              options_.shard_id));
    }
    job = std::move(it->second);
    jobs_.erase(it);
    last_async_snapshot_ms_.erase(job_id);
  }
  job->Close();
  if (delete_checkpoints) return store_->DeleteJob(job_id);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ShardJob>> ShardCore::FindJob(absl::string_view job_id) const {
  MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) {
    return absl::NotFoundError(absl::StrCat("job_id: no job '", job_id, "' on shard ",
                                            options_.shard_id));
  }
  return it->second;
}

std::vector<std::shared_ptr<ShardJob>> ShardCore::Jobs() const {
  MutexLock lock(&mu_);
  std::vector<std::shared_ptr<ShardJob>> out;
  for (const auto& [id, job] : jobs_) out.push_back(job);
  return out;
}

absl::Status ShardCore::Checkpoint(const std::string& job_id,
                                   std::function<void(absl::StatusOr<CheckpointInfo>)> done) {
  PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, FindJob(job_id));
  Enqueue(WriteTask{job->Snapshot(), std::move(done)});
  return absl::OkStatus();
}

absl::Status ShardCore::Restore(const std::string& job_id, uint64_t clock) {
  PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, FindJob(job_id));
  PS_ASSIGN_OR_RETURN(std::vector<uint64_t> clocks, store_->List(job_id));
  const bool have = std::find(clocks.begin(), clocks.end(), clock) != clocks.end();
  if (!have) {
    if (clock == 0) {
      job->Reset();
      return store_->DeleteNewer(job_id, 0);
    }
    return absl::NotFoundError(absl::StrCat(
        "clock: shard ", options_.shard_id, " has no checkpoint of job '", job_id,
        "' at clock ", clock, "; it holds ",
        clocks.empty() ? std::string("none") : absl::StrJoin(clocks, ", ")));
  }
  PS_RETURN_IF_ERROR(RestoreFromStore(job.get(), clock));
  return store_->DeleteNewer(job_id, clock);
}

void ShardCore::ProtectCheckpoint(const std::string& job_id, uint64_t clock) {
  MutexLock lock(&mu_);
  protected_[job_id] = clock;
}

uint64_t ShardCore::LastCheckpointClock(const std::string& job_id) const {
  MutexLock lock(&mu_);
  auto it = last_checkpoint_.find(job_id);
  return it == last_checkpoint_.end() ? 0 : it->second;
}

absl::StatusOr<std::vector<uint64_t>> ShardCore::ListCheckpoints(const std::string& job_id) {
  return store_->List(job_id);
}

void ShardCore::Enqueue(WriteTask task) {
  MutexLock lock(&queue_mu_);
  queue_.push_back(std::move(task));
  queue_cv_.SignalAll();
}

void ShardCore::EnqueueBorrowed(JobSnapshot snap) {
  {
    MutexLock lock(&queue_mu_);
    if (queue_.empty() && writing_ == 0) {
      // The writer is idle and starts on it at once: it copies the borrowed state, and
      // the push that took the snapshot returns now.
      queue_.push_back(WriteTask{std::move(snap), nullptr});
      queue_cv_.SignalAll();
      return;
    }
  }
  // The writer is busy: copy now, so that the blocks are not lent (and copied by every
  // push that writes them) for as long as the writes before this one take.
  ShardJob::FillBorrowed(&snap);
  Enqueue(WriteTask{std::move(snap), nullptr});
}

void ShardCore::WriterLoop() {
  for (;;) {
    WriteTask task;
    {
      MutexLock lock(&queue_mu_);
      while (!stopping_ && queue_.empty()) queue_cv_.Wait(&queue_mu_);
      if (queue_.empty()) return;  // Stopping with nothing left to write.
      task = std::move(queue_.front());
      queue_.pop_front();
      ++writing_;
    }
    CheckpointInfo info;
    info.job_id = task.snapshot.job_id;
    info.clock = task.snapshot.clock;
    info.pause_us = task.snapshot.pause_us;
    std::optional<uint64_t> keep_from;
    if (options_.coordinated && task.snapshot.rolls_back) {
      MutexLock lock(&mu_);
      auto it = protected_.find(info.job_id);
      keep_from = it != protected_.end() ? it->second : 0;
    }
    // A snapshot a push took while the writer was idle still borrows its dense state.
    ShardJob::FillBorrowed(&task.snapshot);
    const auto start = std::chrono::steady_clock::now();
    std::vector<CheckpointRecord> records = ToStoreRecords(std::move(task.snapshot.records));
    absl::StatusOr<uint64_t> bytes = store_->Write(task.snapshot.job_id, task.snapshot.clock,
                                                   records, task.snapshot.keep, keep_from);
    // The write: copying the dense state the snapshot borrowed (ShardJob::Snapshot), then
    // the store's.
    info.write_us = task.snapshot.fill_us +
                    static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - start)
                                              .count());
    absl::StatusOr<CheckpointInfo> result = info;
    if (!bytes.ok()) result = bytes.status();
    if (bytes.ok()) {
      info.bytes = *bytes;
      result = info;
      {
        MutexLock lock(&mu_);
        uint64_t& last = last_checkpoint_[info.job_id];
        last = std::max(last, info.clock);
      }
      if (options_.on_checkpoint) options_.on_checkpoint(info);
    } else {
      PS_LOG(ERROR) << "shard " << options_.shard_id << " job " << info.job_id
                    << ": checkpoint at clock " << info.clock << " failed: " << bytes.status();
    }
    if (task.done) task.done(std::move(result));
    // The written buffers serve the job's next snapshot (ShardJob::Recycle).
    if (absl::StatusOr<std::shared_ptr<ShardJob>> job = FindJob(info.job_id); job.ok()) {
      std::vector<StateRecord> back;
      back.reserve(records.size());
      for (CheckpointRecord& r : records) {
        back.push_back(StateRecord{std::move(r.name), std::move(r.bytes)});
      }
      (*job)->Recycle(std::move(back));
    }
    MutexLock lock(&queue_mu_);
    --writing_;
    queue_cv_.SignalAll();
  }
}

void ShardCore::Drain() {
  MutexLock lock(&queue_mu_);
  while (!queue_.empty() || writing_ != 0) queue_cv_.Wait(&queue_mu_);
}

void ShardCore::CheckpointDueAsyncJobs() {
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  std::vector<std::shared_ptr<ShardJob>> due;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) {
      const JobConfig& c = job->config();
      if (c.mode != ConsistencyMode::kAsync || c.checkpoint_every_seconds == 0) continue;
      int64_t& last = last_async_snapshot_ms_[id];
      if (last == 0) last = now_ms;  // The timer starts when the job is first seen.
      if (now_ms - last >= int64_t{c.checkpoint_every_seconds} * 1000) {
        last = now_ms;
        due.push_back(job);
      }
    }
  }
  for (const auto& job : due) Enqueue(WriteTask{job->Snapshot(), nullptr});
}

void ShardCore::TimerLoop() {
  for (;;) {
    {
      MutexLock lock(&queue_mu_);
      // Wakes once a second, or at once when stopping.
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      while (!stopping_ && std::chrono::steady_clock::now() < until) {
        queue_cv_.WaitWithTimeout(&queue_mu_, absl::Seconds(1));
      }
      if (stopping_) return;
    }
    CheckpointDueAsyncJobs();
  }
}

void ShardCore::CloseAll() {
  for (const auto& job : Jobs()) job->Close();
}

}  // namespace ps
