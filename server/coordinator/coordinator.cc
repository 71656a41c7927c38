#include "server/coordinator/coordinator.h"

#include <sys/stat.h>

#include <algorithm>
#include <iterator>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/flags.h"
#include "common/job_spec.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/data_paths.h"

namespace ps {
namespace {

constexpr size_t kMaxPartialCheckpoints = 1024;
constexpr int kMaxHeldCheckpoints = 1000;  // JobCheckpoints.clocks' documented bound.
constexpr size_t kMaxDeviceBytes = 256;
constexpr size_t kMaxErrorBytes = 2048;  // Of a worker's error kept as the reason.

bool IsActive(JobState s) { return s == RUNNING || s == RECOVERING; }

std::string JobId(uint64_t seq) { return absl::StrFormat("job-%06d", seq); }

// The fields a watcher sees change.
struct WatchKey {
  JobState state;
  uint64_t clock, total_clocks, checkpoint;
  uint32_t epoch, recoveries;
  std::string eval;

  explicit WatchKey(const JobStatus& s)
      : state(s.state()),
        clock(s.clock()),
        total_clocks(s.total_clocks()),
        checkpoint(s.complete_checkpoint()),
        epoch(s.epoch()),
        recoveries(s.recoveries()),
        eval(s.eval().SerializeAsString()) {}
  bool operator==(const WatchKey& o) const {
    return state == o.state && clock == o.clock && total_clocks == o.total_clocks &&
           checkpoint == o.checkpoint && epoch == o.epoch && recoveries == o.recoveries &&
           eval == o.eval;
  }
};

}  // namespace

bool IsFinalState(JobState state) {
  return state == SUCCEEDED || state == FAILED || state == CANCELLED;
}

Coordinator::Coordinator(const CoordinatorOptions& options, std::unique_ptr<JobStore> store,
                         const Clock* clock)
    : options_(options), store_(std::move(store)), clock_(clock) {}

Coordinator::~Coordinator() = default;

absl::StatusOr<std::unique_ptr<Coordinator>> Coordinator::Create(
    const CoordinatorOptions& options, std::unique_ptr<JobStore> store, const Clock* clock) {
  if (options.num_shards < 1 || options.num_shards > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--num_shards: must be in [1, 4096], got ", options.num_shards));
  }
  if (options.heartbeat_interval_ms < 1) {
    return absl::InvalidArgumentError("--heartbeat_interval_ms: must be >= 1");
  }
  if (options.heartbeat_timeout_ms <= options.heartbeat_interval_ms) {
    return absl::InvalidArgumentError(
        "--heartbeat_timeout_ms: must be greater than --heartbeat_interval_ms");
  }
  for (const std::string& root : SplitDataRoots(options.data_root)) {
    struct stat st;
    if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--data_root: \"", root, "\" is not a directory"));
    }
  }
  if (store == nullptr || clock == nullptr) {
    return absl::InvalidArgumentError("coordinator: store and clock are required");
  }
  PS_ASSIGN_OR_RETURN(StoredState state, store->Load());
  std::unique_ptr<Coordinator> c(new Coordinator(options, std::move(store), clock));
  Commit commit;
  {
    MutexLock lock(&c->mu_);
    PS_RETURN_IF_ERROR(c->LoadLocked(std::move(state)));
    commit.ticket = c->next_ticket_++;
    commit.update.boots = c->boot_;
    commit.sync = true;
  }
  PS_RETURN_IF_ERROR(c->WriteCommit(std::move(commit)));
  return c;
}

absl::Status Coordinator::LoadLocked(StoredState state) {
  boot_ = state.boots + 1;
  next_job_seq_ = std::max<uint64_t>(state.next_job_seq, 1);
  shard_member_.assign(options_.num_shards, "");
  shard_records_.assign(options_.num_shards, ShardRecord());
  for (ShardRecord& rec : state.shards) {
    if (rec.shard_id() >= options_.num_shards) {
      PS_LOG(WARNING) << "stored shard " << rec.shard_id() << " is beyond --num_shards "
                      << options_.num_shards << "; ignored";
      continue;
    }
    shard_records_[rec.shard_id()] = std::move(rec);
  }
  const int64_t now = clock_->NowMs();
  for (JobRecord& rec : state.jobs) {
    auto job = std::make_unique<JobEntry>();
    job->rec = std::move(rec);
    const JobStatus& st = job->rec.status();
    job->ranks.resize(st.spec().num_workers());
    for (RankSlot& r : job->ranks) {
      // Workers need a moment to notice the restart and reconnect (their channels
      // retry at least every second): a heartbeat interval and a second of grace on
      // top of the timeout before an unclaimed rank counts as lost.
      r.unfilled_since_ms = now + options_.heartbeat_interval_ms + 1000;
      r.clock = st.clock();
      r.epoch = st.epoch();
    }
    next_job_seq_ = std::max(next_job_seq_, job->rec.seq() + 1);
    jobs_by_id_[st.job_id()] = job.get();
    jobs_[job->rec.seq()] = std::move(job);
  }
  PS_LOG(INFO) << "coordinator boot " << boot_ << ": loaded " << jobs_.size()
               << " jobs, next id " << JobId(next_job_seq_);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------
// Persistence and notification.

Coordinator::JobEntry* Coordinator::FindJobLocked(absl::string_view job_id) {
  auto it = jobs_by_id_.find(job_id);
  return it == jobs_by_id_.end() ? nullptr : it->second;
}

void Coordinator::MarkJobLocked(const JobEntry& job, bool sync, bool notify, Changes* ch) {
  ch->jobs.insert(job.rec.status().job_id());
  ch->sync |= sync;
  if (notify) ch->notify.insert(job.rec.status().job_id());
}

Coordinator::Commit Coordinator::PrepareCommitLocked(Changes* ch) {
  Commit commit;
  for (const std::string& id : ch->jobs) {
    if (const JobEntry* job = FindJobLocked(id)) commit.update.jobs.push_back(job->rec);
  }
  commit.update.shards = std::move(ch->shards);
  if (ch->next_job_seq) commit.update.next_job_seq = next_job_seq_;
  commit.sync = ch->sync;
  commit.notify.assign(ch->notify.begin(), ch->notify.end());
  if (!commit.update.empty()) commit.ticket = next_ticket_++;
  *ch = Changes();
  return commit;
}

absl::Status Coordinator::WriteCommit(Commit commit) {
  absl::Status status;
  if (commit.ticket != 0) {
    MutexLock lock(&write_mu_);
    while (written_ticket_ + 1 != commit.ticket) written_cv_.Wait(&write_mu_);
    status = store_->Write(commit.update, commit.sync);
    written_ticket_ = commit.ticket;
    written_cv_.SignalAll();
    if (!status.ok()) PS_LOG(ERROR) << "coordinator store write failed: " << status;
  }
  Notify(commit.notify);
  return status;
}

void Coordinator::Notify(const std::vector<std::string>& job_ids) {
  if (job_ids.empty()) return;
  MutexLock lock(&watch_mu_);
  for (const std::string& id : job_ids) {
    auto it = watchers_.find(id);
    if (it == watchers_.end()) continue;
    for (auto& [watch_id, fn] : it->second) fn();
  }
}

uint64_t Coordinator::Watch(const std::string& job_id, std::function<void()> on_change) {
  MutexLock lock(&watch_mu_);
  const uint64_t id = next_watch_id_++;
  watchers_[job_id][id] = std::move(on_change);
  watch_jobs_[id] = job_id;
  return id;
}

void Coordinator::Unwatch(uint64_t watch_id) {
  MutexLock lock(&watch_mu_);
  auto it = watch_jobs_.find(watch_id);
  if (it == watch_jobs_.end()) return;
  auto w = watchers_.find(it->second);
  if (w != watchers_.end()) {
    w->second.erase(watch_id);
    if (w->second.empty()) watchers_.erase(w);
  }
  watch_jobs_.erase(it);
}

// ---------------------------------------------------------------------------------
// Client-facing calls.

absl::StatusOr<std::string> Coordinator::SubmitJob(const JobSpec& spec) {
  PS_RETURN_IF_ERROR(ValidateJobSpec(spec));
  PS_RETURN_IF_ERROR(CheckDataFiles(spec.data(), options_.data_root));
  Changes ch;
  Commit commit;
  std::string id;
  {
    MutexLock lock(&mu_);
    const uint64_t seq = next_job_seq_++;
    id = JobId(seq);
    auto job = std::make_unique<JobEntry>();
    job->rec.set_seq(seq);
    JobStatus* st = job->rec.mutable_status();
    st->set_job_id(id);
    *st->mutable_spec() = spec;
    st->set_state(PENDING);
    st->set_reason("submitted");
    st->set_submit_time_ms(clock_->NowMs());
    job->ranks.resize(spec.num_workers());
    jobs_by_id_[id] = job.get();
    JobEntry* raw = job.get();
    jobs_[seq] = std::move(job);
    MarkJobLocked(*raw, /*sync=*/true, /*notify=*/false, &ch);
    ch.next_job_seq = true;
    commit = PrepareCommitLocked(&ch);
  }
  absl::Status written = WriteCommit(std::move(commit));
  {
    MutexLock lock(&mu_);
    JobEntry* job = FindJobLocked(id);
    if (!written.ok()) {
      // Not durable: forget it unless something already acted on it.
      if (job != nullptr && job->rec.status().state() == PENDING) {
        jobs_.erase(job->rec.seq());
        jobs_by_id_.erase(id);
      }
      return absl::InternalError(absl::StrCat("cannot persist the job: ", written.message()));
    }
    PS_LOG(INFO) << "job " << id << " submitted: \"" << spec.name() << "\", "
                 << spec.num_workers() << " workers";
    ScheduleLocked(&ch);
    commit = PrepareCommitLocked(&ch);
  }
  // The job is durable; a failure to persist its start is logged and retried by the
  // next change of the job.
  WriteCommit(std::move(commit)).IgnoreError();
  return id;
}

absl::StatusOr<JobStatus> Coordinator::GetJob(absl::string_view job_id) const {
  ReaderMutexLock lock(&mu_);
  auto it = jobs_by_id_.find(job_id);
  if (it == jobs_by_id_.end()) {
    return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
  }
  return it->second->rec.status();
}

std::vector<JobStatus> Coordinator::ListJobs() const {
  ReaderMutexLock lock(&mu_);
  std::vector<JobStatus> out;
  out.reserve(jobs_.size());
  for (const auto& [seq, job] : jobs_) out.push_back(job->rec.status());
  return out;
}

absl::StatusOr<JobStatus> Coordinator::CancelJob(absl::string_view job_id) {
  Changes ch;
  Commit commit;
  JobStatus result;
  {
    MutexLock lock(&mu_);
    JobEntry* job = FindJobLocked(job_id);
    if (job == nullptr) {
      return absl::NotFoundError(absl::StrCat("job \"", job_id, "\" not found"));
    }
    const JobState state = job->rec.status().state();
    if (IsFinalState(state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "job ", job_id, " already ended: ", JobState_Name(state)));
    }
    FinishJobLocked(job, CANCELLED, absl::StrCat("cancelled by the user while ",
                                                 JobState_Name(state)),
                    &ch);
    result = job->rec.status();
    ScheduleLocked(&ch);  // Its workers are idle now.
    commit = PrepareCommitLocked(&ch);
  }
  PS_RETURN_IF_ERROR(WriteCommit(std::move(commit)));
  return result;
}

GetClusterResponse Coordinator::GetCluster() const {
  ReaderMutexLock lock(&mu_);
  GetClusterResponse out;
  out.set_num_shards(options_.num_shards);
  std::vector<const MemberEntry*> list;
  list.reserve(members_.size());
  for (const auto& [id, m] : members_) list.push_back(&m);
  std::sort(list.begin(), list.end(), [](const MemberEntry* a, const MemberEntry* b) {
    if (a->m.role() != b->m.role()) return a->m.role() < b->m.role();
    if (a->m.role() == SHARD && a->m.shard_id() != b->m.shard_id()) {
      return a->m.shard_id() < b->m.shard_id();
    }
    return a->seq < b->seq;
  });
  for (const MemberEntry* m : list) *out.add_members() = m->m;
  return out;
}

// ---------------------------------------------------------------------------------
// Daemon-facing calls.

absl::StatusOr<RegisterResponse> Coordinator::Register(const Member& member) {
  if (member.role() == SHARD) {
    if (member.shard_id() >= options_.num_shards) {
      return absl::InvalidArgumentError(
          absl::StrCat("member.shard_id: must be < --num_shards (", options_.num_shards,
                       "), got ", member.shard_id()));
    }
    PS_RETURN_IF_ERROR(ParseHostPort(member.address(), "member.address").status());
  } else if (member.role() != WORKER) {
    return absl::InvalidArgumentError("member.role: must be SHARD or WORKER");
  }
  if (member.device().size() > kMaxDeviceBytes || member.address().size() > kMaxDeviceBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("member.device, member.address: at most ", kMaxDeviceBytes, " bytes"));
  }
  Changes ch;
  Commit commit;
  RegisterResponse response;
  {
    MutexLock lock(&mu_);
    const int64_t now = clock_->NowMs();
    const uint64_t seq = next_member_seq_++;
    MemberEntry entry;
    entry.seq = seq;
    entry.m.set_role(member.role());
    entry.m.set_incarnation(member.incarnation());
    entry.m.set_member_id(absl::StrCat(member.role() == SHARD ? "shard-" : "worker-", boot_,
                                       ".", seq));
    entry.m.set_healthy(true);
    entry.m.set_last_heartbeat_ms(now);
    entry.m.set_load(member.load());
    const std::string id = entry.m.member_id();

    if (member.role() == SHARD) {
      const uint32_t s = member.shard_id();
      entry.m.set_shard_id(s);
      entry.m.set_address(member.address());
      if (!shard_member_[s].empty()) members_.erase(shard_member_[s]);
      shard_member_[s] = id;
      ShardRecord& rec = shard_records_[s];
      const bool known = !rec.address().empty();
      const bool restarted = known && rec.incarnation() != member.incarnation();
      if (!known || restarted || rec.address() != member.address()) {
        rec.set_shard_id(s);
        rec.set_incarnation(member.incarnation());
        rec.set_address(member.address());
        ch.shards.push_back(rec);
        ch.sync = true;
      }
      members_[id] = std::move(entry);
      PS_LOG(INFO) << "shard " << s << " registered as " << id << " at " << member.address()
                   << (restarted ? " (restarted)" : "");
      if (restarted) {
        for (auto& [jseq, job] : jobs_) {
          if (!IsActive(job->rec.status().state())) continue;
          StartRecoveryLocked(job.get(), absl::StrCat("shard ", s, " restarted"), &ch);
        }
      }
    } else {
      entry.m.set_device(member.device());
      MemberEntry& w = members_[id] = std::move(entry);
      // A worker that kept running through a coordinator restart claims its rank back.
      if (!member.job_id().empty()) {
        JobEntry* job = FindJobLocked(member.job_id());
        if (job != nullptr && job->rec.status().state() == RUNNING &&
            job->rec.generation() == member.generation() &&
            member.rank() < job->ranks.size() &&
            job->ranks[member.rank()].member_id.empty()) {
          AssignRankLocked(job, member.rank(), &w);
          PS_LOG(INFO) << "worker " << id << " resumes " << member.job_id() << " rank "
                       << member.rank() << " generation " << member.generation();
        } else {
          PS_LOG(INFO) << "worker " << id << " claimed " << member.job_id() << " rank "
                       << member.rank() << " generation " << member.generation()
                       << ": no longer valid, it is idle";
        }
      }
      PS_LOG(INFO) << "worker registered as " << id << " (" << member.device() << ")";
    }
    ScheduleLocked(&ch);
    commit = PrepareCommitLocked(&ch);
    response.set_member_id(id);
    response.set_heartbeat_interval_ms(
        static_cast<uint32_t>(std::min<int64_t>(options_.heartbeat_interval_ms, UINT32_MAX)));
  }
  PS_RETURN_IF_ERROR(WriteCommit(std::move(commit)));
  return response;
}

absl::StatusOr<HeartbeatResponse> Coordinator::Heartbeat(const HeartbeatRequest& request) {
  Changes ch;
  Commit commit;
  HeartbeatResponse response;
  {
    MutexLock lock(&mu_);
    auto it = members_.find(request.member_id());
    if (it == members_.end() || it->second.m.incarnation() != request.incarnation()) {
      return absl::NotFoundError(absl::StrCat("unknown member_id \"", request.member_id(),
                                              "\" (or another incarnation): register again"));
    }
    MemberEntry& m = it->second;
    m.m.set_last_heartbeat_ms(clock_->NowMs());
    m.m.set_load(request.load());
    if (!m.m.healthy()) {
      m.m.set_healthy(true);
      m.dead_since_ms = 0;
      PS_LOG(INFO) << "member " << m.m.member_id() << " is back";
    }
    if (m.m.role() == SHARD) {
      for (const ShardOrder& done : request.applied_orders()) {
        JobEntry* job = FindJobLocked(done.job_id());
        if (job == nullptr) continue;
        const ShardOrder& order = job->rec.order();
        if (order.job_id().empty() || order.generation() != done.generation() ||
            order.drop() != done.drop()) {
          continue;
        }
        auto* pending = job->rec.mutable_order_pending_shards();
        auto pos = std::find(pending->begin(), pending->end(), m.m.shard_id());
        if (pos == pending->end()) continue;
        pending->erase(pos);
        PS_LOG(INFO) << "shard " << m.m.shard_id() << " applied "
                     << (order.drop() ? "drop" : "restore") << " of " << done.job_id()
                     << " generation " << order.generation() << "; " << pending->size()
                     << " shards to go";
        if (pending->empty() && order.drop()) job->rec.clear_order();
        MarkJobLocked(*job, /*sync=*/true, /*notify=*/false, &ch);
      }
    }
    if (m.m.role() == SHARD) {
      for (const ShardOrder& refused : request.refused_orders()) {
        RollBackFurtherLocked(m.m.shard_id(), refused, request, &ch);
      }
      for (const JobCheckpoints& held : request.checkpoints()) {
        JobEntry* job = FindJobLocked(held.job_id());
        if (job == nullptr || !IsActive(job->rec.status().state()) ||
            held.clocks_size() > kMaxHeldCheckpoints) {
          continue;
        }
        // A shard that has not applied the job's restore order lists the history
        // being rolled back.
        const auto& pending = job->rec.order_pending_shards();
        if (!job->rec.order().drop() &&
            std::find(pending.begin(), pending.end(), m.m.shard_id()) != pending.end()) {
          continue;
        }
        SetHeldCheckpointsLocked(
            job, m.m.shard_id(), std::vector<uint64_t>(held.clocks().begin(), held.clocks().end()),
            &ch);
      }
    }
    ScheduleLocked(&ch);  // Does not add or remove members: `m` stays valid.
    if (m.m.role() == WORKER && !m.m.job_id().empty()) {
      JobEntry* job = FindJobLocked(m.m.job_id());
      if (job != nullptr && job->rec.status().state() == RUNNING) {
        WorkerAssignment* a = response.add_assignments();
        a->set_job_id(job->rec.status().job_id());
        *a->mutable_spec() = job->rec.status().spec();
        a->set_rank(m.m.rank());
        for (std::string& addr : ShardAddressesLocked()) a->add_shard_addresses(addr);
        // SYNC/BOUNDED: every rank at the clock rolled back to; ASYNC: each rank at
        // its own data position (no rollback).
        a->set_resume_clock(job->rec.status().spec().consistency().mode() == ASYNC
                                ? job->ranks[m.m.rank()].clock
                                : job->rec.resume_clock());
        a->set_generation(job->rec.generation());
      }
    } else if (m.m.role() == SHARD) {
      for (const auto& [jseq, job] : jobs_) {
        const JobStatus& st = job->rec.status();
        if (IsActive(st.state()) && st.complete_checkpoint() > 0) {
          JobCheckpoints* complete = response.add_complete_checkpoints();
          complete->set_job_id(st.job_id());
          complete->add_clocks(st.complete_checkpoint());
        }
        const auto& pending = job->rec.order_pending_shards();
        if (std::find(pending.begin(), pending.end(), m.m.shard_id()) != pending.end()) {
          *response.add_orders() = job->rec.order();
        }
      }
    }
    commit = PrepareCommitLocked(&ch);
  }
  PS_RETURN_IF_ERROR(WriteCommit(std::move(commit)));
  return response;
}

absl::StatusOr<bool> Coordinator::ReportProgress(const ProgressReport& report) {
  Changes ch;
  Commit commit;
  bool cancel = false;
  {
    MutexLock lock(&mu_);
    JobEntry* job = FindJobLocked(report.job_id());
    if (job == nullptr) {
      return absl::NotFoundError(absl::StrCat("job \"", report.job_id(), "\" not found"));
    }
    JobStatus* st = job->rec.mutable_status();
    if (report.rank() >= job->ranks.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rank: must be < num_workers (", job->ranks.size(), "), got ", report.rank()));
    }
    if (IsFinalState(st->state()) || report.generation() != job->rec.generation() ||
        st->state() != RUNNING) {
      // Finished, cancelled, or superseded by a recovery: the worker stops.
      return true;
    }
    const WatchKey before(*st);
    RankSlot& r = job->ranks[report.rank()];
    if (report.clock() >= r.clock || !r.reported) {
      r.clock = report.clock();
      r.epoch = report.epoch();
      r.loss = report.loss();
      r.samples_per_s = report.samples_per_s();
    }
    r.reported = true;
    r.finished |= report.finished();
    if (report.total_clocks() > st->total_clocks()) st->set_total_clocks(report.total_clocks());
    if (report.has_eval()) *st->mutable_eval() = report.eval();
    RecomputeProgressLocked(job);
    bool sync = false;
    if (!report.error().empty()) {
      FinishJobLocked(job, FAILED,
                      absl::StrCat("rank ", report.rank(), ": ",
                                   absl::string_view(report.error()).substr(0, kMaxErrorBytes)),
                      &ch);
      cancel = true;
      sync = true;
    } else if (std::all_of(job->ranks.begin(), job->ranks.end(),
                           [](const RankSlot& s) { return s.finished; })) {
      std::string reason = absl::StrCat("all ", job->ranks.size(), " workers finished ",
                                        st->clock(), " clocks");
      const JobSpec& spec = st->spec();
      if (st->has_eval()) {
        absl::StrAppend(&reason, absl::StrFormat("; accuracy %.4f", st->eval().accuracy()));
        if (spec.target_accuracy() > 0) {
          absl::StrAppend(&reason, st->eval().accuracy() >= spec.target_accuracy()
                                       ? " (target " : " (below the target ",
                          absl::StrFormat("%.4f", spec.target_accuracy()), ")");
        }
      }
      FinishJobLocked(job, SUCCEEDED, reason, &ch);
      sync = true;
    }
    MarkJobLocked(*job, sync, !(WatchKey(*st) == before), &ch);
    if (sync) ScheduleLocked(&ch);
    commit = PrepareCommitLocked(&ch);
  }
  PS_RETURN_IF_ERROR(WriteCommit(std::move(commit)));
  return cancel;
}

absl::Status Coordinator::ReportCheckpoint(const CheckpointReport& report) {
  Changes ch;
  Commit commit;
  {
    MutexLock lock(&mu_);
    JobEntry* job = FindJobLocked(report.job_id());
    if (job == nullptr) {
      return absl::NotFoundError(absl::StrCat("job \"", report.job_id(), "\" not found"));
    }
    if (report.shard_id() >= options_.num_shards) {
      return absl::InvalidArgumentError(
          absl::StrCat("shard_id: must be < --num_shards (", options_.num_shards, "), got ",
                       report.shard_id()));
    }
    const JobStatus& st = job->rec.status();
    if (IsFinalState(st.state()) || report.clock() <= st.complete_checkpoint()) {
      return absl::OkStatus();
    }
    const auto& pending = job->rec.order_pending_shards();
    if (!job->rec.order().drop() &&
        std::find(pending.begin(), pending.end(), report.shard_id()) != pending.end()) {
      PS_LOG(INFO) << "ignoring checkpoint of " << report.job_id() << " at clock "
                   << report.clock() << " from shard " << report.shard_id()
                   << ": it has not applied the restore order yet";
      return absl::OkStatus();
    }
    const uint64_t before = st.complete_checkpoint();
    AddCheckpointVoteLocked(job, report.shard_id(), report.clock());
    MarkJobLocked(*job, /*sync=*/true, job->rec.status().complete_checkpoint() != before, &ch);
    commit = PrepareCommitLocked(&ch);
  }
  return WriteCommit(std::move(commit));
}

void Coordinator::Tick() {
  Changes ch;
  Commit commit;
  {
    MutexLock lock(&mu_);
    const int64_t now = clock_->NowMs();
    const int64_t forget_after = options_.forget_dead_after_ms > 0
                                     ? options_.forget_dead_after_ms
                                     : 20 * options_.heartbeat_timeout_ms;
    std::vector<std::string> forget;
    for (auto& [id, m] : members_) {
      if (m.m.healthy()) {
        if (now - m.m.last_heartbeat_ms() <= options_.heartbeat_timeout_ms) continue;
        m.m.set_healthy(false);
        m.dead_since_ms = now;
        PS_LOG(WARNING) << "member " << id << " missed heartbeats for "
                        << now - m.m.last_heartbeat_ms() << " ms";
        if (m.m.role() == WORKER) {
          LoseWorkerLocked(&m, absl::StrCat("worker ", id, " (rank ", m.m.rank(),
                                            ") missed heartbeats"),
                           &ch);
        }
      } else if (m.m.role() == WORKER && now - m.dead_since_ms > forget_after) {
        forget.push_back(id);
      }
    }
    for (const std::string& id : forget) members_.erase(id);
    // Ranks nobody claimed since the coordinator restarted.
    for (auto& [seq, job] : jobs_) {
      if (job->rec.status().state() != RUNNING) continue;
      for (size_t r = 0; r < job->ranks.size(); ++r) {
        if (job->ranks[r].member_id.empty() &&
            now - job->ranks[r].unfilled_since_ms > options_.heartbeat_timeout_ms) {
          StartRecoveryLocked(job.get(), absl::StrCat("no worker claimed rank ", r), &ch);
          break;
        }
      }
    }
    ScheduleLocked(&ch);
    commit = PrepareCommitLocked(&ch);
  }
  // Logged inside; the next change of the job writes it again.
  WriteCommit(std::move(commit)).IgnoreError();
}

// ---------------------------------------------------------------------------------
// Scheduling and recovery.

bool Coordinator::ShardsReadyLocked() const {
  for (const std::string& id : shard_member_) {
    if (id.empty()) return false;
    auto it = members_.find(id);
    if (it == members_.end() || !it->second.m.healthy()) return false;
  }
  return true;
}

bool Coordinator::WorkerFits(const MemberEntry& w, const JobSpec& spec) const {
  if (spec.device() != DEVICE_GPU) return true;
  return !w.m.device().empty() && w.m.device() != "cpu";
}

std::vector<Coordinator::MemberEntry*> Coordinator::IdleWorkersLocked() {
  std::vector<MemberEntry*> idle;
  for (auto& [id, m] : members_) {
    if (m.m.role() == WORKER && m.m.healthy() && m.m.job_id().empty()) idle.push_back(&m);
  }
  std::sort(idle.begin(), idle.end(),
            [](const MemberEntry* a, const MemberEntry* b) { return a->seq < b->seq; });
  return idle;
}

void Coordinator::AssignRankLocked(JobEntry* job, uint32_t rank, MemberEntry* worker) {
  job->ranks[rank].member_id = worker->m.member_id();
  job->ranks[rank].unfilled_since_ms = 0;
  worker->m.set_job_id(job->rec.status().job_id());
  worker->m.set_rank(rank);
}

void Coordinator::ReleaseWorkersLocked(JobEntry* job) {
  for (RankSlot& r : job->ranks) {
    if (r.member_id.empty()) continue;
    auto it = members_.find(r.member_id);
    if (it != members_.end() && it->second.m.job_id() == job->rec.status().job_id()) {
      it->second.m.clear_job_id();
      it->second.m.clear_rank();
    }
    r.member_id.clear();
  }
}

std::vector<std::string> Coordinator::ShardAddressesLocked() const {
  std::vector<std::string> out;
  out.reserve(shard_records_.size());
  for (const ShardRecord& rec : shard_records_) out.push_back(rec.address());
  return out;
}

void Coordinator::ScheduleLocked(Changes* ch) {
  std::vector<MemberEntry*> idle = IdleWorkersLocked();
  const bool shards_ready = ShardsReadyLocked();
  auto take = [&](const JobSpec& spec) -> MemberEntry* {
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      if (WorkerFits(**it, spec)) {
        MemberEntry* w = *it;
        idle.erase(it);
        return w;
      }
    }
    return nullptr;
  };
  auto count_fitting = [&](const JobSpec& spec) {
    size_t n = 0;
    for (MemberEntry* w : idle) n += WorkerFits(*w, spec) ? 1 : 0;
    return n;
  };
  // Recovering jobs first: they get replacement workers before new jobs start.
  for (auto& [seq, job] : jobs_) {
    JobStatus* st = job->rec.mutable_status();
    if (st->state() != RECOVERING) continue;
    for (uint32_t r = 0; r < job->ranks.size(); ++r) {
      if (!job->ranks[r].member_id.empty()) continue;
      MemberEntry* w = take(st->spec());
      if (w == nullptr) break;
      AssignRankLocked(job.get(), r, w);
      MarkJobLocked(*job, false, false, ch);
    }
    const bool all_filled = std::all_of(job->ranks.begin(), job->ranks.end(),
                                        [](const RankSlot& s) { return !s.member_id.empty(); });
    if (job->rec.order_pending_shards_size() == 0 && all_filled) {
      st->set_state(RUNNING);
      st->set_recoveries(st->recoveries() + 1);
      if (job->recovery_started_ms > 0) {
        st->set_last_recovery_ms(clock_->NowMs() - job->recovery_started_ms);
        job->recovery_started_ms = 0;
      }
      st->set_reason(absl::StrCat(
          "recovered (generation ", job->rec.generation(), ") ",
          st->spec().consistency().mode() == ASYNC
              ? std::string("without rollback: each rank resumed at its data position")
          : job->rec.resume_clock() == 0
              ? std::string("from the initial state")
              : absl::StrCat("from checkpoint at clock ", job->rec.resume_clock())));
      job->rec.clear_order();
      PS_LOG(INFO) << "job " << st->job_id() << ": " << st->reason() << " in "
                   << st->last_recovery_ms() << " ms; " << st->clocks_redone()
                   << " clocks redone in all";
      MarkJobLocked(*job, true, true, ch);
    }
  }
  for (auto& [seq, job] : jobs_) {
    JobStatus* st = job->rec.mutable_status();
    if (st->state() != PENDING) continue;
    const JobSpec& spec = st->spec();
    const size_t fitting = count_fitting(spec);
    if (!shards_ready || fitting < spec.num_workers()) {
      std::string why =
          shards_ready
              ? absl::StrCat("waiting for ", spec.num_workers(), " idle ",
                             spec.device() == DEVICE_GPU ? "GPU " : "", "workers (", fitting,
                             " available)")
              : absl::StrCat("waiting for all ", options_.num_shards,
                             " shards to be registered and healthy");
      if (st->reason() != why) {
        st->set_reason(std::move(why));
        MarkJobLocked(*job, false, false, ch);
      }
      continue;
    }
    for (uint32_t r = 0; r < spec.num_workers(); ++r) {
      AssignRankLocked(job.get(), r, take(spec));
    }
    st->set_state(RUNNING);
    st->set_start_time_ms(clock_->NowMs());
    st->set_reason(absl::StrCat("running on ", spec.num_workers(), " workers and ",
                                options_.num_shards, " shards"));
    PS_LOG(INFO) << "job " << st->job_id() << " started: " << st->reason();
    MarkJobLocked(*job, true, true, ch);
  }
}

void Coordinator::StartRecoveryLocked(JobEntry* job, const std::string& why, Changes* ch) {
  JobRecord& rec = job->rec;
  JobStatus* st = rec.mutable_status();
  if (st->spec().consistency().mode() == ASYNC) {
    StartAsyncRecoveryLocked(job, why, ch);
    return;
  }
  const uint64_t restore = st->complete_checkpoint();
  uint64_t furthest = st->clock();
  for (const RankSlot& r : job->ranks) furthest = std::max(furthest, r.clock);
  if (furthest > restore) st->set_clocks_redone(st->clocks_redone() + (furthest - restore));
  // A recovery that restarts a recovery keeps the first one's start.
  if (st->state() != RECOVERING || job->recovery_started_ms == 0) {
    job->recovery_started_ms = clock_->NowMs();
  }
  rec.set_generation(rec.generation() + 1);
  rec.set_resume_clock(restore);
  rec.clear_partial_checkpoints();  // Above the restore clock: rolled back.
  job->held_known.assign(job->held_known.size(), false);  // Lists of that history too.
  ShardOrder* order = rec.mutable_order();
  order->Clear();
  order->set_job_id(st->job_id());
  order->set_restore_clock(restore);
  order->set_generation(rec.generation());
  rec.clear_order_pending_shards();
  for (uint32_t s = 0; s < options_.num_shards; ++s) rec.add_order_pending_shards(s);
  for (RankSlot& r : job->ranks) {
    r.reported = false;
    r.finished = false;
    r.clock = restore;
    r.samples_per_s = 0;
  }
  st->set_state(RECOVERING);
  st->set_clock(restore);
  st->set_samples_per_s(0);
  st->set_reason(absl::StrCat(why, "; rolling back to ",
                              restore == 0 ? std::string("the initial state")
                                           : absl::StrCat("checkpoint at clock ", restore),
                              " (generation ", rec.generation(), ")"));
  PS_LOG(WARNING) << "job " << st->job_id() << " recovering: " << st->reason();
  MarkJobLocked(*job, true, true, ch);
}

void Coordinator::RollBackFurtherLocked(uint32_t shard_id, const ShardOrder& refused,
                                        const HeartbeatRequest& request, Changes* ch) {
  JobEntry* job = FindJobLocked(refused.job_id());
  if (job == nullptr || job->rec.status().state() != RECOVERING) return;
  const ShardOrder& order = job->rec.order();
  const auto& pending = job->rec.order_pending_shards();
  if (order.drop() || order.generation() != refused.generation() || order.restore_clock() == 0 ||
      std::find(pending.begin(), pending.end(), shard_id) == pending.end()) {
    return;  // Stale, or nothing further back to go.
  }
  // The newest clock below the refused one that this shard holds; a shard that lacks
  // it refuses in turn, so the rollback goes down until every shard has the clock.
  const uint64_t from = order.restore_clock();
  uint64_t to = 0;
  for (const JobCheckpoints& held : request.checkpoints()) {
    if (held.job_id() != refused.job_id()) continue;
    for (uint64_t c : held.clocks()) {
      if (c < from) to = std::max(to, c);
    }
  }
  const std::string why = absl::StrCat("shard ", shard_id, " cannot load its checkpoint at clock ",
                                       from, to == 0 ? " and holds none older" : "");
  PS_LOG(ERROR) << "job " << refused.job_id() << ": " << why;
  job->rec.mutable_status()->set_complete_checkpoint(to);
  StartRecoveryLocked(job, why, ch);
}

void Coordinator::StartAsyncRecoveryLocked(JobEntry* job, const std::string& why, Changes* ch) {
  JobRecord& rec = job->rec;
  JobStatus* st = rec.mutable_status();
  if (st->state() != RECOVERING || job->recovery_started_ms == 0) {
    job->recovery_started_ms = clock_->NowMs();
  }
  rec.set_generation(rec.generation() + 1);
  rec.clear_order();
  rec.clear_order_pending_shards();
  for (RankSlot& r : job->ranks) {
    r.clock = std::max(r.clock, st->clock());
    r.finished = false;
    r.samples_per_s = 0;
  }
  st->set_state(RECOVERING);
  st->set_samples_per_s(0);
  st->set_reason(absl::StrCat(why, "; ASYNC: no rollback, every rank resumes at its data "
                              "position (generation ", rec.generation(), ")"));
  PS_LOG(WARNING) << "job " << st->job_id() << " recovering: " << st->reason();
  MarkJobLocked(*job, true, true, ch);
}

void Coordinator::FinishJobLocked(JobEntry* job, JobState state, const std::string& reason,
                                  Changes* ch) {
  JobRecord& rec = job->rec;
  JobStatus* st = rec.mutable_status();
  const bool ran = st->start_time_ms() != 0;
  st->set_state(state);
  st->set_reason(reason);
  st->set_end_time_ms(clock_->NowMs());
  ReleaseWorkersLocked(job);
  rec.clear_order();
  rec.clear_order_pending_shards();
  rec.clear_partial_checkpoints();
  // Failed and cancelled jobs free their shard memory; succeeded ones keep it for
  // `psctl export`.
  if (ran && state != SUCCEEDED) {
    ShardOrder* order = rec.mutable_order();
    order->set_job_id(st->job_id());
    order->set_generation(rec.generation());
    order->set_drop(true);
    for (uint32_t s = 0; s < options_.num_shards; ++s) rec.add_order_pending_shards(s);
  }
  PS_LOG(INFO) << "job " << st->job_id() << " " << JobState_Name(state) << ": " << reason;
  MarkJobLocked(*job, true, true, ch);
}

void Coordinator::LoseWorkerLocked(MemberEntry* worker, const std::string& why, Changes* ch) {
  if (worker->m.job_id().empty()) return;
  JobEntry* job = FindJobLocked(worker->m.job_id());
  const uint32_t rank = worker->m.rank();
  worker->m.clear_job_id();
  worker->m.clear_rank();
  if (job == nullptr || rank >= job->ranks.size() ||
      job->ranks[rank].member_id != worker->m.member_id()) {
    return;
  }
  job->ranks[rank].member_id.clear();
  job->ranks[rank].unfilled_since_ms = clock_->NowMs();
  MarkJobLocked(*job, false, false, ch);
  if (job->rec.status().state() == RUNNING) StartRecoveryLocked(job, why, ch);
}

void Coordinator::RecomputeProgressLocked(JobEntry* job) {
  JobStatus* st = job->rec.mutable_status();
  uint64_t clock = UINT64_MAX;
  uint32_t epoch = UINT32_MAX;
  double loss = 0, sps = 0;
  int reported = 0;
  for (const RankSlot& r : job->ranks) {
    clock = std::min(clock, r.clock);
    epoch = std::min(epoch, r.epoch);
    if (!r.reported) continue;
    ++reported;
    loss += r.loss;
    sps += r.samples_per_s;
  }
  if (job->ranks.empty()) return;
  st->set_clock(clock);
  st->set_epoch(epoch);
  if (reported > 0) {
    st->set_loss(loss / reported);
    st->set_samples_per_s(sps);
  }
}

void Coordinator::SetHeldCheckpointsLocked(JobEntry* job, uint32_t shard_id,
                                           const std::vector<uint64_t>& clocks, Changes* ch) {
  if (shard_id >= options_.num_shards) return;
  job->held.resize(options_.num_shards);
  job->held_known.resize(options_.num_shards, false);
  job->held[shard_id] = clocks;
  std::sort(job->held[shard_id].begin(), job->held[shard_id].end());
  job->held_known[shard_id] = true;
  if (!std::all_of(job->held_known.begin(), job->held_known.end(), [](bool b) { return b; })) {
    return;
  }
  // The newest clock in every shard's list.
  std::vector<uint64_t> common = job->held[0];
  for (uint32_t s = 1; s < options_.num_shards && !common.empty(); ++s) {
    std::vector<uint64_t> both;
    std::set_intersection(common.begin(), common.end(), job->held[s].begin(), job->held[s].end(),
                          std::back_inserter(both));
    common.swap(both);
  }
  JobStatus* st = job->rec.mutable_status();
  if (common.empty() || common.back() <= st->complete_checkpoint()) return;
  st->set_complete_checkpoint(common.back());
  st->set_complete_checkpoint_time_ms(clock_->NowMs());
  auto* partial = job->rec.mutable_partial_checkpoints();
  google::protobuf::RepeatedPtrField<CheckpointVotes> keep;
  for (const CheckpointVotes& v : *partial) {
    if (v.clock() > common.back()) *keep.Add() = v;
  }
  partial->Swap(&keep);
  PS_LOG(INFO) << "job " << st->job_id() << ": checkpoint at clock " << common.back()
               << " is complete (every shard holds it)";
  MarkJobLocked(*job, /*sync=*/true, /*notify=*/true, ch);
}

void Coordinator::AddCheckpointVoteLocked(JobEntry* job, uint32_t shard_id, uint64_t clock) {
  JobRecord& rec = job->rec;
  auto* partial = rec.mutable_partial_checkpoints();
  auto it = std::find_if(partial->begin(), partial->end(),
                         [&](const CheckpointVotes& v) { return v.clock() == clock; });
  CheckpointVotes* votes;
  if (it == partial->end()) {
    votes = partial->Add();
    votes->set_clock(clock);
  } else {
    votes = &*it;
  }
  auto* ids = votes->mutable_shard_ids();
  if (std::find(ids->begin(), ids->end(), shard_id) == ids->end()) {
    ids->Add(shard_id);
    std::sort(ids->begin(), ids->end());
  }
  if (static_cast<uint32_t>(ids->size()) >= options_.num_shards) {
    rec.mutable_status()->set_complete_checkpoint(clock);
    rec.mutable_status()->set_complete_checkpoint_time_ms(clock_->NowMs());
    // Everything at or below the new complete clock is settled.
    google::protobuf::RepeatedPtrField<CheckpointVotes> keep;
    for (const CheckpointVotes& v : *partial) {
      if (v.clock() > clock) *keep.Add() = v;
    }
    partial->Swap(&keep);
    PS_LOG(INFO) << "job " << rec.status().job_id() << ": checkpoint at clock " << clock
                 << " is complete";
  }
  std::sort(partial->begin(), partial->end(),
            [](const CheckpointVotes& a, const CheckpointVotes& b) {
              return a.clock() < b.clock();
            });
  while (static_cast<size_t>(partial->size()) > kMaxPartialCheckpoints) {
    partial->erase(partial->begin());
  }
}

}  // namespace ps
