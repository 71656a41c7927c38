#include "server/shard_service.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/sync.h"
#include "common/job_spec.h"
#include "server/convert.h"

namespace ps {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<SliceArgs> SlicesOf(const google::protobuf::RepeatedPtrField<Slice>& slices) {
  std::vector<SliceArgs> out;
  out.reserve(slices.size());
  for (const Slice& s : slices) out.push_back(SliceArgs{s.table(), s.begin(), s.count(), s.keys()});
  return out;
}

// Finishes a unary call at once with `status`, reporting it to the observer.
grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& status,
                               const CallObserver& observer, const char* method,
                               Clock::time_point start, size_t in, size_t out) {
  if (observer) observer(method, static_cast<int>(status.code()), in, out, SecondsSince(start));
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(status));
  return r;
}

// A pull that may have to wait for other workers' pushes. It owns itself and is
// deleted by gRPC's OnDone. Exactly one of three paths finishes it: the first attempt,
// the job's wake-up (which runs another attempt), or a cancellation that removed the
// registered wake-up before it ran.
class PullReactor final : public grpc::ServerUnaryReactor {
 public:
  PullReactor(ShardCore* core, grpc::CallbackServerContext* ctx, const PullRequest* req,
              PullResponse* resp, const CallObserver* observer)
      : core_(core), ctx_(ctx), req_(req), resp_(resp), observer_(observer), start_(Clock::now()) {}

  void Start() {
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req_->job_id());
    if (!job.ok()) return FinishWith(job.status());
    job_ = *std::move(job);
    slices_ = SlicesOf(req_->slices());
    Attempt();
  }

  void OnCancel() override {
    cancelled_.store(true);
    const uint64_t ticket = ticket_.load();
    if (ticket != 0 && job_->CancelWait(ticket)) FinishCancelled();
  }

  void OnDone() override { delete this; }

 private:
  void Attempt() {
    std::string* out = resp_->mutable_values();
    out->clear();
    uint64_t applied = 0, ticket = 0;
    absl::StatusOr<bool> ready =
        job_->TryPull(req_->rank(), req_->clock(), slices_, req_->no_wait(), out, &applied,
                      [this] { Attempt(); }, &ticket);
    if (!ready.ok()) return FinishWith(ready.status());
    if (*ready) {
      resp_->set_clock(applied);
      return FinishWith(absl::OkStatus());
    }
    // Registered: from here the wake-up or a cancellation finishes the call.
    ticket_.store(ticket);
    if (cancelled_.load() && job_->CancelWait(ticket)) FinishCancelled();
  }

  void FinishCancelled() {
    FinishWith(absl::DeadlineExceededError(absl::StrCat(
        "pull of clock ", req_->clock(), " by rank ", req_->rank(),
        " was cancelled or reached its deadline while waiting for other workers")));
  }

  void FinishWith(const absl::Status& status) {
    if (*observer_) {
      (*observer_)("Pull", static_cast<int>(status.code()), req_->ByteSizeLong(),
                   resp_->values().size(), SecondsSince(start_));
    }
    Finish(ToGrpcStatus(status));
  }

  ShardCore* const core_;
  grpc::CallbackServerContext* const ctx_;
  const PullRequest* const req_;
  PullResponse* const resp_;
  const CallObserver* const observer_;
  const Clock::time_point start_;
  std::shared_ptr<ShardJob> job_;
  std::vector<SliceArgs> slices_;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<bool> cancelled_{false};
};

}  // namespace

// Request/response pairs kept for reuse, at most kMaxFree of them, and none whose
// messages grew past kMaxBytes (a rare huge call does not pin its memory). Thread-safe.
template <typename Req, typename Resp>
class ShardServiceImpl::MessagePool final : public grpc::MessageAllocator<Req, Resp> {
 public:
  static constexpr size_t kMaxFree = 32;
  static constexpr size_t kMaxBytes = size_t{32} << 20;

  ~MessagePool() override {
    MutexLock lock(&mu_);
    for (Holder* h : free_) delete h;
  }

  grpc::MessageHolder<Req, Resp>* AllocateMessages() override {
    {
      MutexLock lock(&mu_);
      if (!free_.empty()) {
        Holder* h = free_.back();
        free_.pop_back();
        return h;
      }
    }
    return new Holder(this);
  }

 private:
  class Holder final : public grpc::MessageHolder<Req, Resp> {
   public:
    explicit Holder(MessagePool* pool) : pool_(pool) {
      this->set_request(&request_);
      this->set_response(&response_);
    }
    void Release() override { pool_->Put(this); }

    Req request_;
    Resp response_;

   private:
    MessagePool* const pool_;  // Not owned.
  };

  void Put(Holder* h) {
    if (h->request_.SpaceUsedLong() + h->response_.SpaceUsedLong() > kMaxBytes) {
      delete h;
      return;
    }
    h->request_.Clear();
    h->response_.Clear();
    {
      MutexLock lock(&mu_);
      if (free_.size() < kMaxFree) {
        free_.push_back(h);
        return;
      }
    }
    delete h;
  }

  Mutex mu_;
  std::vector<Holder*> free_ ABSL_GUARDED_BY(mu_);
};

ShardServiceImpl::ShardServiceImpl(ShardCore* core, CallObserver observer)
    : core_(core),
      observer_(std::move(observer)),
      pull_messages_(std::make_unique<MessagePool<PullRequest, PullResponse>>()),
      push_messages_(std::make_unique<MessagePool<PushRequest, PushResponse>>()) {
  SetMessageAllocatorFor_Pull(pull_messages_.get());
  SetMessageAllocatorFor_Push(push_messages_.get());
}

ShardServiceImpl::~ShardServiceImpl() = default;

grpc::ServerUnaryReactor* ShardServiceImpl::CreateJob(grpc::CallbackServerContext* ctx,
                                                      const CreateJobRequest* req,
                                                      CreateJobResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<JobConfig> config = JobConfigFromProto(req->config());
    if (!config.ok()) return config.status();
    bool existed = false;
    const std::string id = config->job_id;
    if (absl::Status s = core_->CreateJob(*std::move(config), &existed); !s.ok()) return s;
    resp->set_existed(existed);
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(id);
    if (job.ok()) resp->set_clock((*job)->clock());
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "CreateJob", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::DropJob(grpc::CallbackServerContext* ctx,
                                                    const DropJobRequest* req, DropJobResponse*) {
  const auto start = Clock::now();
  return Done(ctx, core_->DropJob(req->job_id(), req->delete_checkpoints()), observer_, "DropJob",
              start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::CreateTable(grpc::CallbackServerContext* ctx,
                                                        const CreateTableRequest* req,
                                                        CreateTableResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req->job_id());
    if (!job.ok()) return job.status();
    absl::StatusOr<TableConfig> table = TableConfigFromProto(req->table());
    if (!table.ok()) return table.status();
    const std::string name = table->name;
    if (absl::Status s = (*job)->CreateTable(*std::move(table)); !s.ok()) return s;
    for (const ShardJob::TableInfo& t : (*job)->ListTables()) {
      if (t.config.name == name) resp->set_local_elements(t.local_count);
    }
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "CreateTable", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::DropTable(grpc::CallbackServerContext* ctx,
                                                      const DropTableRequest* req,
                                                      DropTableResponse*) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req->job_id());
    if (!job.ok()) return job.status();
    return (*job)->DropTable(req->table());
  }();
  return Done(ctx, status, observer_, "DropTable", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::Pull(grpc::CallbackServerContext* ctx,
                                                 const PullRequest* req, PullResponse* resp) {
  auto* reactor = new PullReactor(core_, ctx, req, resp, &observer_);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* ShardServiceImpl::Push(grpc::CallbackServerContext* ctx,
                                                 const PushRequest* req, PushResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req->job_id());
    if (!job.ok()) return job.status();
    PushArgs args;
    args.rank = req->rank();
    args.clock = req->clock();
    args.part = req->part();
    args.num_parts = req->num_parts();
    args.slices = SlicesOf(req->slices());
    args.values = req->values();
    absl::StatusOr<PushResult> r = (*job)->Push(args);
    if (!r.ok()) return r.status();
    resp->set_duplicate(r->duplicate);
    resp->set_clock(r->clock);
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "Push", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::Checkpoint(grpc::CallbackServerContext* ctx,
                                                       const CheckpointRequest* req,
                                                       CheckpointResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Status queued = core_->Checkpoint(
      req->job_id(), [reactor, resp](absl::StatusOr<CheckpointInfo> info) {
        if (info.ok()) {
          resp->set_clock(info->clock);
          resp->set_bytes(info->bytes);
          resp->set_pause_us(info->pause_us);
          resp->set_write_us(info->write_us);
        }
        reactor->Finish(ToGrpcStatus(info.status()));
      });
  if (!queued.ok()) reactor->Finish(ToGrpcStatus(queued));
  return reactor;
}

grpc::ServerUnaryReactor* ShardServiceImpl::Restore(grpc::CallbackServerContext* ctx,
                                                    const RestoreRequest* req,
                                                    RestoreResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = core_->Restore(req->job_id(), req->clock());
  if (status.ok()) resp->set_clock(req->clock());
  return Done(ctx, status, observer_, "Restore", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::ListCheckpoints(grpc::CallbackServerContext* ctx,
                                                            const ListCheckpointsRequest* req,
                                                            ListCheckpointsResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::vector<uint64_t>> clocks = core_->ListCheckpoints(req->job_id());
    if (!clocks.ok()) return clocks.status();
    for (uint64_t c : *clocks) resp->add_clocks(c);
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "ListCheckpoints", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::ListTables(grpc::CallbackServerContext* ctx,
                                                       const ListTablesRequest* req,
                                                       ListTablesResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req->job_id());
    if (!job.ok()) return job.status();
    if (!resp->mutable_config()->ParseFromString((*job)->config().config_blob)) {
      return absl::InternalError("config: the stored job config does not parse");
    }
    for (const ShardJob::TableInfo& t : (*job)->ListTables()) {
      if (!resp->add_tables()->ParseFromString(t.config.spec_blob)) {
        return absl::InternalError(absl::StrCat("table '", t.config.name,
                                                "': the stored spec does not parse"));
      }
      resp->add_local_begin(t.local_begin);
      resp->add_local_count(t.local_count);
    }
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "ListTables", start, req->ByteSizeLong(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::GetStats(grpc::CallbackServerContext* ctx,
                                                     const GetStatsRequest* req,
                                                     GetStatsResponse* resp) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    resp->set_shard_id(core_->shard_id());
    resp->set_memory_bytes(core_->budget().used());
    resp->set_memory_budget_bytes(core_->budget().limit());
    std::vector<std::shared_ptr<ShardJob>> jobs;
    if (req->job_id().empty()) {
      jobs = core_->Jobs();
    } else {
      absl::StatusOr<std::shared_ptr<ShardJob>> job = core_->FindJob(req->job_id());
      if (!job.ok()) return job.status();
      jobs.push_back(*job);
    }
    for (const auto& job : jobs) {
      const JobCounters c = job->Counters(req->with_digest());
      JobStats* s = resp->add_jobs();
      s->set_job_id(job->config().job_id);
      s->set_clock(c.clock);
      for (uint64_t w : c.worker_clocks) s->add_worker_clocks(w);
      s->set_pushes_applied(c.pushes_applied);
      s->set_pushes_duplicate(c.pushes_duplicate);
      s->set_dense_elements(c.dense_elements);
      s->set_sparse_rows(c.sparse_rows);
      s->set_memory_bytes(c.memory_bytes);
      s->set_state_digest(c.digest);
      s->set_last_checkpoint_clock(core_->LastCheckpointClock(job->config().job_id));
    }
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "GetStats", start, req->ByteSizeLong(), 0);
}

}  // namespace ps
