#include "worker/local_ps_client.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/status.h"
#include "common/sync.h"
#include "server/convert.h"

namespace ps {
namespace {

absl::Status OnShard(uint32_t shard, const absl::Status& status) {
  return Annotate(status, absl::StrCat("shard ", shard, " (local)"));
}

// A one-shot event (common/sync.h, which ThreadSanitizer sees, unlike Debian's
// absl::Notification). Thread-safe.
class Event {
 public:
  void Notify() {
    {
      MutexLock lock(&mu_);
      done_ = true;
    }
    cv_.SignalAll();
  }
  // False when `deadline` passed first.
  bool WaitUntil(absl::Time deadline) {
    MutexLock lock(&mu_);
    while (!done_) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      cv_.WaitWithTimeout(&mu_, left);
    }
    return true;
  }
  void Wait() {
    MutexLock lock(&mu_);
    while (!done_) cv_.Wait(&mu_);
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LocalPsClient>> LocalPsClient::Create(std::vector<ShardCore*> shards,
                                                                     Options options) {
  if (shards.empty()) return absl::InvalidArgumentError("shards: at least one shard is needed");
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards[i] == nullptr) return absl::InvalidArgumentError(absl::StrCat("shards[", i, "]: null"));
    if (shards[i]->shard_id() != i) {
      return absl::InvalidArgumentError(absl::StrCat("shards[", i, "]: has shard_id ",
                                                     shards[i]->shard_id()));
    }
  }
  if (options.chunk_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.chunk_bytes: must be >= 1024, got ", options.chunk_bytes));
  }
  return std::unique_ptr<LocalPsClient>(new LocalPsClient(std::move(shards), std::move(options)));
}

LocalPsClient::LocalPsClient(std::vector<ShardCore*> shards, Options options)
    : shards_(std::move(shards)), options_(std::move(options)) {}

absl::StatusOr<std::shared_ptr<ShardJob>> LocalPsClient::JobOn(uint32_t shard,
                                                              const std::string& job_id) {
  absl::StatusOr<std::shared_ptr<ShardJob>> job = shards_[shard]->FindJob(job_id);
  if (!job.ok()) return OnShard(shard, job.status());
  return job;
}

absl::StatusOr<uint64_t> LocalPsClient::SetupJob(const ShardJobConfig& config,
                                                 const std::vector<TableSpec>& tables) {
  ShardJobConfig cfg = config;
  if (cfg.num_shards() == 0) cfg.set_num_shards(num_shards());
  if (cfg.num_shards() != num_shards()) {
    return absl::InvalidArgumentError(absl::StrCat("config.num_shards: ", cfg.num_shards(),
                                                   " differs from the client's ", num_shards(),
                                                   " shards"));
  }
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route,
                      JobRoute::Create(cfg.job_id(), num_shards(), tables));
  uint64_t clock = 0;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    absl::StatusOr<JobConfig> job_config = JobConfigFromProto(cfg);
    if (!job_config.ok()) return OnShard(s, job_config.status());
    bool existed = false;
    if (absl::Status st = shards_[s]->CreateJob(*std::move(job_config), &existed); !st.ok()) {
      return OnShard(s, st);
    }
    PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, JobOn(s, cfg.job_id()));
    clock = std::max(clock, job->clock());
    for (const TableSpec& spec : tables) {
      absl::StatusOr<TableConfig> table = TableConfigFromProto(spec);
      if (!table.ok()) return OnShard(s, table.status());
      if (absl::Status st = job->CreateTable(*std::move(table)); !st.ok()) return OnShard(s, st);
    }
  }
  routes_.Put(std::move(route));
  return clock;
}

absl::Status LocalPsClient::AttachJob(const std::string& job_id) {
  std::vector<TableSpec> tables;
  std::vector<std::string> expected;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, JobOn(s, job_id));
    if (job->config().num_shards != num_shards()) {
      return absl::FailedPreconditionError(absl::StrCat("job '", job_id, "' is placed over ",
                                                        job->config().num_shards,
                                                        " shards; this client has ", num_shards()));
    }
    std::vector<std::string> names;
    for (const ShardJob::TableInfo& t : job->ListTables()) {
      names.push_back(t.config.name);
      if (s != 0) continue;
      TableSpec spec;
      if (!spec.ParseFromString(t.config.spec_blob)) {
        return OnShard(s, absl::DataLossError(
                              absl::StrCat("table '", t.config.name, "': unreadable spec")));
      }
      tables.push_back(std::move(spec));
    }
    std::sort(names.begin(), names.end());
    if (s == 0) {
      expected = std::move(names);
    } else if (names != expected) {
      return OnShard(s, absl::FailedPreconditionError(absl::StrCat(
                            "job '", job_id, "' has tables [", absl::StrJoin(names, ", "),
                            "], shard 0 has [", absl::StrJoin(expected, ", "), "]")));
    }
  }
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route,
                      JobRoute::Create(job_id, num_shards(), tables));
  routes_.Put(std::move(route));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const JobRoute>> LocalPsClient::RouteOf(const std::string& job_id) {
  std::shared_ptr<const JobRoute> route = routes_.Find(job_id);
  if (route != nullptr) return route;
  PS_RETURN_IF_ERROR(AttachJob(job_id));
  route = routes_.Find(job_id);
  if (route == nullptr) return absl::InternalError("route vanished after AttachJob");
  return route;
}

absl::StatusOr<Plan> LocalPsClient::PlanCall(const std::string& job_id,
                                             absl::Span<const DenseRef> dense,
                                             absl::Span<const SparseRef> sparse, Plan::Kind kind) {
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route, RouteOf(job_id));
  absl::StatusOr<Plan> plan = Plan::Build(*route, dense, sparse, options_.chunk_bytes, kind);
  if (plan.ok() || !absl::IsNotFound(plan.status())) return plan;
  // A table unknown to the cached route: learn the job's tables again, once.
  if (!AttachJob(job_id).ok()) return plan;
  route = routes_.Find(job_id);
  if (route == nullptr) return plan;
  return Plan::Build(*route, dense, sparse, options_.chunk_bytes, kind);
}

namespace {

// The slices of one part as the shard takes them; keys packed into `keys`.
std::vector<SliceArgs> SliceArgsOf(const PlanPart& part, absl::Span<const DenseRef> dense,
                                   absl::Span<const SparseRef> sparse,
                                   std::vector<std::string>* keys) {
  keys->assign(part.slices.size(), std::string());
  std::vector<SliceArgs> args;
  args.reserve(part.slices.size());
  for (size_t i = 0; i < part.slices.size(); ++i) {
    const PlanSlice& s = part.slices[i];
    SliceArgs a;
    a.table = SliceTable(s, dense, sparse);
    if (s.sparse) {
      AppendSliceKeys(s, sparse, &(*keys)[i]);
      a.keys = (*keys)[i];
    } else {
      a.begin = s.begin;
      a.count = s.count;
    }
    args.push_back(a);
  }
  return args;
}

}  // namespace

absl::Status LocalPsClient::PullPlanned(const std::string& job_id, uint32_t rank, uint64_t clock,
                                        bool no_wait, absl::Span<const DenseRef> dense,
                                        absl::Span<const SparseRef> sparse, uint64_t* min_clock) {
  PS_ASSIGN_OR_RETURN(
      Plan plan,
      PlanCall(job_id, dense, sparse, no_wait ? Plan::Kind::kRead : Plan::Kind::kPull));
  const absl::Time deadline = absl::Now() + options_.rpc_timeout;
  uint64_t lowest = std::numeric_limits<uint64_t>::max();
  bool any = false;
  for (uint32_t s = 0; s < plan.parts().size(); ++s) {
    if (plan.parts()[s].empty()) continue;
    PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, JobOn(s, job_id));
    for (const PlanPart& part : plan.parts()[s]) {
      std::vector<std::string> keys;
      const std::vector<SliceArgs> args = SliceArgsOf(part, dense, sparse, &keys);
      std::string values;
      uint64_t applied = 0;
      for (;;) {
        // Shared with the wake-up, which may run after this function returned.
        auto woke = std::make_shared<Event>();
        uint64_t ticket = 0;
        values.clear();
        absl::StatusOr<bool> ready = job->TryPull(
            rank, clock, args, no_wait, &values, &applied, [woke] { woke->Notify(); }, &ticket);
        if (!ready.ok()) return OnShard(s, ready.status());
        if (*ready) break;
        if (!woke->WaitUntil(deadline)) {
          if (job->CancelWait(ticket)) {
            return OnShard(s, absl::DeadlineExceededError(absl::StrCat(
                                  "pull of clock ", clock, " by rank ", rank, " waited ",
                                  absl::FormatDuration(options_.rpc_timeout),
                                  " for other workers")));
          }
          woke->Wait();  // The wake-up is running: try again.
        }
      }
      if (absl::Status st = ScatterValues(part, values, dense, sparse); !st.ok()) {
        return OnShard(s, st);
      }
      lowest = std::min(lowest, applied);
      any = true;
    }
  }
  if (min_clock != nullptr) *min_clock = any ? lowest : 0;
  return absl::OkStatus();
}

absl::Status LocalPsClient::Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                                 absl::Span<const DenseRef> dense,
                                 absl::Span<const SparseRef> sparse) {
  return PullPlanned(job_id, rank, clock, /*no_wait=*/false, dense, sparse, nullptr);
}

absl::StatusOr<uint64_t> LocalPsClient::Read(const std::string& job_id,
                                              absl::Span<const DenseRef> dense,
                                              absl::Span<const SparseRef> sparse) {
  uint64_t clock = 0;
  PS_RETURN_IF_ERROR(PullPlanned(job_id, 0, 0, /*no_wait=*/true, dense, sparse, &clock));
  return clock;
}

absl::Status LocalPsClient::Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                                 absl::Span<const DenseRef> dense,
                                 absl::Span<const SparseRef> sparse) {
  PS_ASSIGN_OR_RETURN(Plan plan, PlanCall(job_id, dense, sparse, Plan::Kind::kPush));
  for (uint32_t s = 0; s < plan.parts().size(); ++s) {
    PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, JobOn(s, job_id));
    const std::vector<PlanPart>& parts = plan.parts()[s];
    for (uint32_t p = 0; p < parts.size(); ++p) {
      std::vector<std::string> keys;
      std::string values;
      GatherValues(parts[p], dense, sparse, &values);
      PushArgs args;
      args.rank = rank;
      args.clock = clock;
      args.part = p;
      args.num_parts = static_cast<uint32_t>(parts.size());
      args.slices = SliceArgsOf(parts[p], dense, sparse, &keys);
      args.values = PackedFloats(values);
      absl::StatusOr<PushResult> result = job->Push(args);
      if (!result.ok()) return OnShard(s, result.status());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ShardJobStats>> LocalPsClient::GetStats(const std::string& job_id,
                                                                   bool with_digest) {
  std::vector<ShardJobStats> out;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, JobOn(s, job_id));
    const JobCounters c = job->Counters(with_digest);
    ShardJobStats st;
    st.shard = s;
    st.clock = c.clock;
    st.worker_clocks = c.worker_clocks;
    st.pushes_applied = c.pushes_applied;
    st.pushes_duplicate = c.pushes_duplicate;
    st.dense_elements = c.dense_elements;
    st.sparse_rows = c.sparse_rows;
    st.memory_bytes = c.memory_bytes;
    st.dense_copies_on_write = c.dense_copies_on_write;
    st.state_digest = c.digest;
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<std::vector<ShardCheckpoint>> LocalPsClient::Checkpoint(const std::string& job_id) {
  struct Done {
    Event event;
    absl::StatusOr<CheckpointInfo> info;
  };
  std::vector<std::shared_ptr<Done>> done;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto d = std::make_shared<Done>();
    absl::Status queued =
        shards_[s]->Checkpoint(job_id, [d](absl::StatusOr<CheckpointInfo> info) {
          d->info = std::move(info);
          d->event.Notify();
        });
    if (!queued.ok()) return OnShard(s, queued);
    done.push_back(std::move(d));
  }
  const absl::Time deadline = absl::Now() + options_.rpc_timeout;
  std::vector<ShardCheckpoint> out;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    if (!done[s]->event.WaitUntil(deadline)) {
      return OnShard(s, absl::DeadlineExceededError("checkpoint write did not finish in time"));
    }
    const absl::StatusOr<CheckpointInfo>& info = done[s]->info;
    if (!info.ok()) return OnShard(s, info.status());
    out.push_back(ShardCheckpoint{s, info->clock, info->bytes, info->pause_us, info->write_us});
  }
  return out;
}

absl::Status LocalPsClient::Restore(const std::string& job_id, uint64_t clock) {
  for (uint32_t s = 0; s < num_shards(); ++s) {
    if (absl::Status st = shards_[s]->Restore(job_id, clock); !st.ok()) return OnShard(s, st);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::vector<uint64_t>>> LocalPsClient::ListCheckpoints(
    const std::string& job_id) {
  std::vector<std::vector<uint64_t>> out;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    absl::StatusOr<std::vector<uint64_t>> clocks = shards_[s]->ListCheckpoints(job_id);
    if (!clocks.ok()) return OnShard(s, clocks.status());
    out.push_back(*std::move(clocks));
  }
  return out;
}

absl::Status LocalPsClient::DropJob(const std::string& job_id, bool delete_checkpoints) {
  routes_.Erase(job_id);
  for (uint32_t s = 0; s < num_shards(); ++s) {
    if (absl::Status st = shards_[s]->DropJob(job_id, delete_checkpoints); !st.ok()) {
      return OnShard(s, st);
    }
  }
  return absl::OkStatus();
}

}  // namespace ps
