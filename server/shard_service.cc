#include "server/shard_service.h"

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/status.h"
#include "common/job_spec.h"
#include "common/wire.h"
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

// A pull that may have to wait for other workers' pushes. It owns itself: it is
// deleted once gRPC's OnDone has run and no attempt is still running (a wake-up's
// attempt may finish the call, and gRPC call OnDone, while the attempt that registered
// it has yet to return). Exactly one of three paths finishes it: the first attempt,
// the job's wake-up (which runs another attempt), or a cancellation that removed the
// registered wake-up before it ran.
class PullReactor final : public grpc::ServerUnaryReactor {
 public:
  // A parsed pull: of the Pull method, or the pull half of a PushPull (`method` names
  // it to the observer, `field` its slices in errors; the call started at `start`).
  PullReactor(ShardCore* core, PullRequest req, const char* method, const char* field,
              size_t request_bytes, Clock::time_point start, grpc::ByteBuffer* response,
              std::shared_ptr<wire::BufferPool> buffers, const CallObserver* observer)
      : core_(core),
        method_(method),
        request_bytes_(request_bytes),
        response_(response),
        buffers_(std::move(buffers)),
        observer_(observer),
        start_(start),
        field_(field),
        req_(std::move(req)) {}

  // `job`, when the caller found it already.
  void Start(std::shared_ptr<ShardJob> job = nullptr) {
    if (job == nullptr) {
      absl::StatusOr<std::shared_ptr<ShardJob>> found = core_->FindJob(req_.job_id());
      if (!found.ok()) return FinishWith(found.status());
      job = *std::move(found);
    }
    job_ = std::move(job);
    slices_ = SlicesOf(req_.slices());
    Attempt();
  }

  void OnCancel() override {
    cancelled_.store(true);
    const uint64_t ticket = ticket_.load();
    if (ticket != 0 && job_->CancelWait(ticket)) FinishCancelled();
  }

  void OnDone() override { Release(); }

 private:
  // Drops one of the holds (gRPC's until OnDone, one per running attempt).
  void Release() {
    if (holds_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void Attempt() {
    holds_.fetch_add(1, std::memory_order_relaxed);
    TryOnce();
    Release();
  }

  void TryOnce() {
    if (values_ == nullptr) values_ = buffers_->Get();
    values_->clear();
    lent_.clear();
    uint64_t applied = 0, ticket = 0;
    absl::StatusOr<bool> ready = job_->TryPull(
        req_.rank(), req_.clock(), slices_, req_.no_wait(), values_.get(), &applied,
        [this] { Attempt(); }, &ticket, &lent_, field_);
    if (!ready.ok()) return FinishWith(ready.status());
    if (*ready) {
      // The response is its clock, then the values: dense ranges sent from the table's
      // own blocks (lent until gRPC has sent them), sparse rows from the buffer they
      // were read into (handed back to the pool then). No copy into a message.
      size_t values_bytes = values_->size();
      for (const LentBytes& l : lent_) values_bytes += l.size;
      PullResponse head;
      head.set_clock(applied);
      std::string bytes = head.SerializeAsString();
      wire::AppendBytesFieldHeader(PullResponse::kValuesFieldNumber, values_bytes, &bytes);
      response_bytes_ = bytes.size() + values_bytes;
      std::vector<grpc::Slice> slices;
      slices.reserve(2 + 2 * lent_.size());
      slices.emplace_back(bytes);
      buffers_->AppendSlices(std::move(values_), &lent_, &slices);
      *response_ = grpc::ByteBuffer(slices.data(), slices.size());
      return FinishWith(absl::OkStatus());
    }
    // Registered: from here the wake-up or a cancellation finishes the call.
    ticket_.store(ticket);
    if (cancelled_.load() && job_->CancelWait(ticket)) FinishCancelled();
  }

  void FinishCancelled() {
    FinishWith(absl::DeadlineExceededError(absl::StrCat(
        "pull of clock ", req_.clock(), " by rank ", req_.rank(),
        " was cancelled or reached its deadline while waiting for other workers")));
  }

  void FinishWith(const absl::Status& status) {
    if (*observer_) {
      (*observer_)(method_, static_cast<int>(status.code()), request_bytes_, response_bytes_,
                   SecondsSince(start_));
    }
    Finish(ToGrpcStatus(status));
  }

  ShardCore* const core_;
  const char* const method_;
  const size_t request_bytes_;
  grpc::ByteBuffer* const response_;
  const std::shared_ptr<wire::BufferPool> buffers_;
  const CallObserver* const observer_;
  const Clock::time_point start_;
  const char* const field_;  // What errors call the slices.
  const PullRequest req_;
  std::unique_ptr<std::string> values_;
  std::vector<LentBytes> lent_;
  size_t response_bytes_ = 0;
  std::shared_ptr<ShardJob> job_;
  std::vector<SliceArgs> slices_;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<bool> cancelled_{false};
  std::atomic<int> holds_{1};  // gRPC's, until OnDone.
};

}  // namespace

ShardServiceImpl::ShardServiceImpl(ShardCore* core, CallObserver observer)
    : core_(core),
      observer_(std::move(observer)),
      buffers_(std::make_shared<wire::BufferPool>(kPooledBuffers, kPooledBufferBytes)) {}

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
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  const auto start = Clock::now();
  PullRequest req;
  grpc::ByteBuffer copy(*request);  // Shares the slices; Deserialize consumes it.
  if (!grpc::SerializationTraits<PullRequest>::Deserialize(&copy, &req).ok()) {
    return Done(ctx, absl::InvalidArgumentError("request: malformed PullRequest"), observer_,
                "Pull", start, request->Length(), 0);
  }
  auto* reactor = new PullReactor(core_, std::move(req), "Pull", "slices", request->Length(),
                                  start, response, buffers_, &observer_);
  reactor->Start();
  return reactor;
}

absl::StatusOr<ShardServiceImpl::PushCall> ShardServiceImpl::ReadPush(
    const grpc::ByteBuffer& request) {
  // The gradients stay in the received slices; the other fields are parsed.
  PushCall push;
  if (absl::Status s = wire::SplitBytesField(request, PushRequest::kValuesFieldNumber, &push.fields,
                                             &push.values);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("request: ", s.message()));
  }
  return push;
}

absl::StatusOr<PushResult> ShardServiceImpl::ApplyPush(PushCall push) {
  PS_ASSIGN_OR_RETURN(std::shared_ptr<ShardJob> job, core_->FindJob(push.fields.job_id()));
  return ApplyPushTo(*job, std::move(push));
}

absl::StatusOr<PushResult> ShardServiceImpl::ApplyPushTo(ShardJob& job, PushCall push) {
  const PushRequest& req = push.fields;
  PushArgs args;
  args.rank = req.rank();
  args.clock = req.clock();
  args.part = req.part();
  args.num_parts = req.num_parts();
  args.slices = SlicesOf(req.slices());
  // The gradient is applied from the received slices as they lie (a SYNC shard holds
  // them until the clock's last push), never joined into one buffer first.
  PS_ASSIGN_OR_RETURN(ValueEncoding encoding, ValueEncodingFromProto(req.encoding()));
  auto received = std::make_shared<const wire::ByteViews>(std::move(push.values));
  args.values = PackedFloats(received->views(), encoding);
  args.values_owner = received;
  return job.Push(args);
}

grpc::ServerUnaryReactor* ShardServiceImpl::Push(grpc::CallbackServerContext* ctx,
                                                 const grpc::ByteBuffer* request,
                                                 grpc::ByteBuffer* response) {
  const auto start = Clock::now();
  absl::Status status = [&]() -> absl::Status {
    PS_ASSIGN_OR_RETURN(PushCall push, ReadPush(*request));
    if (push.fields.pull_slices_size() > 0) {
      return absl::InvalidArgumentError(
          "pull_slices: Push reads nothing; send a push with a pull as PushPull");
    }
    PS_ASSIGN_OR_RETURN(PushResult result, ApplyPush(std::move(push)));
    PushResponse resp;
    resp.set_duplicate(result.duplicate);
    resp.set_clock(result.clock);
    bool own = false;
    return FromGrpcStatus(grpc::SerializationTraits<PushResponse>::Serialize(resp, response, &own));
  }();
  return Done(ctx, status, observer_, "Push", start, request->Length(), 0);
}

grpc::ServerUnaryReactor* ShardServiceImpl::PushPull(grpc::CallbackServerContext* ctx,
                                                     const grpc::ByteBuffer* request,
                                                     grpc::ByteBuffer* response) {
  const auto start = Clock::now();
  PullRequest pull;
  std::shared_ptr<ShardJob> job;
  absl::Status status = [&]() -> absl::Status {
    PS_ASSIGN_OR_RETURN(PushCall push, ReadPush(*request));
    const PushRequest& req = push.fields;
    if (req.clock() == std::numeric_limits<uint64_t>::max()) {
      return absl::InvalidArgumentError("clock: the last clock there is has no next to pull");
    }
    PS_ASSIGN_OR_RETURN(job, core_->FindJob(req.job_id()));
    // The pull half is checked first, so a bad one applies nothing.
    PS_RETURN_IF_ERROR(job->CheckSlices(SlicesOf(req.pull_slices()), "pull_slices"));
    pull.set_job_id(req.job_id());
    pull.set_rank(req.rank());
    pull.set_clock(req.clock() + 1);
    pull.mutable_slices()->Swap(push.fields.mutable_pull_slices());
    return ApplyPushTo(*job, std::move(push)).status();
  }();
  if (!status.ok()) {
    return Done(ctx, status, observer_, "PushPull", start, request->Length(), 0);
  }
  auto* reactor = new PullReactor(core_, std::move(pull), "PushPull", "pull_slices",
                                  request->Length(), start, response, buffers_, &observer_);
  reactor->Start(std::move(job));
  return reactor;
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
      s->set_dense_copies_on_write(c.dense_copies_on_write);
      s->set_state_digest(c.digest);
      s->set_last_checkpoint_clock(core_->LastCheckpointClock(job->config().job_id));
    }
    return absl::OkStatus();
  }();
  return Done(ctx, status, observer_, "GetStats", start, req->ByteSizeLong(), 0);
}

}  // namespace ps
