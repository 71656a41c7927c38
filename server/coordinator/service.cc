#include "server/coordinator/service.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "common/auth.h"
#include "common/grpc_status.h"
#include "grpcpp/alarm.h"
#include "common/sync.h"

namespace ps {
namespace {

grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* ctx, const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

// A WatchJob stream refused before it started (e.g. UNAUTHENTICATED).
class RefusedWatch final : public grpc::ServerWriteReactor<JobStatus> {
 public:
  explicit RefusedWatch(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One WatchJob stream. Lives until OnDone() ran and no alarm callback is pending; then
// tells the service (WatcherDone) after deleting itself.
//
// Lock order: Coordinator's watcher list -> mu_ -> Coordinator's state. Calls into
// the Coordinator that take its watcher list (Watch, Unwatch) are made without mu_.
// StartWrite and Finish are called under mu_: gRPC never runs OnWriteDone or OnDone
// inline from them (their tags are not inlineable), and grpc::Alarm runs its
// callback on its own executor.
class WatchReactor final : public grpc::ServerWriteReactor<JobStatus> {
 public:
  WatchReactor(CoordinatorServiceImpl* service, Coordinator* core, std::string job_id,
               absl::Duration min_interval)
      : service_(service), core_(core), job_id_(std::move(job_id)),
        min_interval_(min_interval) {}

  // Registers with the Coordinator and writes the first status.
  void Start() {
    absl::StatusOr<JobStatus> first = core_->GetJob(job_id_);
    if (!first.ok()) {
      MutexLock lock(&mu_);
      FinishLocked(ToGrpcStatus(first.status()));
      return;
    }
    const uint64_t watch_id = core_->Watch(job_id_, [this] { OnChange(); });
    MutexLock lock(&mu_);
    watch_id_ = watch_id;
    dirty_ = true;
    MaybeWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
    } else if (wrote_final_) {
      FinishLocked(grpc::Status::OK);
    } else {
      MaybeWriteLocked();
    }
  }

  void OnCancel() override {
    MutexLock lock(&mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled"));
  }

  void OnDone() override {
    uint64_t watch_id;
    {
      MutexLock lock(&mu_);
      watch_id = watch_id_;
    }
    // After Unwatch returns no notification is running or will run.
    if (watch_id != 0) core_->Unwatch(watch_id);
    bool destroy;
    {
      MutexLock lock(&mu_);
      done_ = true;
      destroy = !alarm_pending_;
      if (alarm_pending_) alarm_.Cancel();  // Its callback deletes this.
    }
    if (destroy) Destroy();
  }

 private:
  void OnChange() {
    MutexLock lock(&mu_);
    dirty_ = true;
    MaybeWriteLocked();
  }

  void OnAlarm() {
    bool destroy;
    {
      MutexLock lock(&mu_);
      alarm_pending_ = false;
      destroy = done_;
      // The interval has passed: write without re-checking the time, so the alarm is
      // never set again from inside its own callback.
      if (!done_) MaybeWriteLocked(/*rate_limit=*/false);
    }
    if (destroy) Destroy();
  }

  void Destroy() {
    CoordinatorServiceImpl* service = service_;
    delete this;
    service->WatcherDone();
  }

  // Writes the current status if it changed since the last write, no write is in
  // flight, and (with `rate_limit`) the minimum interval passed; otherwise sets the
  // alarm for when it passes.
  void MaybeWriteLocked(bool rate_limit = true) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || !dirty_ || alarm_pending_) return;
    const absl::Time now = absl::Now();
    if (rate_limit && now < last_write_ + min_interval_) {
      alarm_pending_ = true;
      alarm_.Set(absl::ToChronoTime(last_write_ + min_interval_),
                 [this](bool) { OnAlarm(); });
      return;
    }
    absl::StatusOr<JobStatus> status = core_->GetJob(job_id_);
    if (!status.ok()) {
      FinishLocked(ToGrpcStatus(status.status()));
      return;
    }
    dirty_ = false;
    writing_ = true;
    last_write_ = now;
    wrote_final_ = IsFinalState(status->state());
    buffer_ = *std::move(status);
    StartWrite(&buffer_);
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  CoordinatorServiceImpl* const service_;  // Not owned.
  Coordinator* const core_;  // Not owned.
  const std::string job_id_;
  const absl::Duration min_interval_;

  Mutex mu_;
  uint64_t watch_id_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Alarm alarm_ ABSL_GUARDED_BY(mu_);
  JobStatus buffer_ ABSL_GUARDED_BY(mu_);  // Of the write in flight.
  absl::Time last_write_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;        // A change not yet written.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool wrote_final_ ABSL_GUARDED_BY(mu_) = false;
  bool alarm_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;     // Finish called.
  bool done_ ABSL_GUARDED_BY(mu_) = false;         // OnDone ran.
};

CoordinatorServiceImpl::CoordinatorServiceImpl(Coordinator* core,
                                               absl::Duration watch_min_interval,
                                               std::string auth_token)
    : core_(core), watch_min_interval_(watch_min_interval), auth_token_(std::move(auth_token)) {}

absl::Status CoordinatorServiceImpl::Authorize(const grpc::CallbackServerContext* ctx) const {
  if (auth_token_.empty()) return absl::OkStatus();
  const auto& metadata = ctx->client_metadata();
  auto it = metadata.find(kAuthorizationKey);
  absl::optional<absl::string_view> header;
  if (it != metadata.end()) header = absl::string_view(it->second.data(), it->second.size());
  return CheckBearer(header, auth_token_);
}

CoordinatorServiceImpl::~CoordinatorServiceImpl() { WaitForWatchers(); }

void CoordinatorServiceImpl::WaitForWatchers() {
  MutexLock lock(&mu_);
  while (watchers_ > 0) watchers_cv_.Wait(&mu_);
}

void CoordinatorServiceImpl::WatcherDone() {
  MutexLock lock(&mu_);
  if (--watchers_ == 0) watchers_cv_.SignalAll();
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::SubmitJob(grpc::CallbackServerContext* ctx,
                                                            const SubmitJobRequest* request,
                                                            SubmitJobResponse* response) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) return Done(ctx, auth);
  absl::StatusOr<std::string> id = core_->SubmitJob(request->spec());
  if (id.ok()) response->set_job_id(*id);
  return Done(ctx, id.status());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                         const GetJobRequest* request,
                                                         JobStatus* response) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) return Done(ctx, auth);
  absl::StatusOr<JobStatus> status = core_->GetJob(request->job_id());
  if (status.ok()) *response = *std::move(status);
  return Done(ctx, status.status());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                           const ListJobsRequest*,
                                                           ListJobsResponse* response) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) return Done(ctx, auth);
  for (JobStatus& job : core_->ListJobs()) *response->add_jobs() = std::move(job);
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::CancelJob(grpc::CallbackServerContext* ctx,
                                                            const CancelJobRequest* request,
                                                            CancelJobResponse* response) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) return Done(ctx, auth);
  absl::StatusOr<JobStatus> status = core_->CancelJob(request->job_id());
  if (status.ok()) *response->mutable_status() = *std::move(status);
  return Done(ctx, status.status());
}

grpc::ServerWriteReactor<JobStatus>* CoordinatorServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const WatchJobRequest* request) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) {
    return new RefusedWatch(ToGrpcStatus(auth));
  }
  {
    MutexLock lock(&mu_);
    ++watchers_;
  }
  auto* reactor = new WatchReactor(this, core_, request->job_id(), watch_min_interval_);
  reactor->Start();
  return reactor;
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::GetCluster(grpc::CallbackServerContext* ctx,
                                                             const GetClusterRequest*,
                                                             GetClusterResponse* response) {
  if (absl::Status auth = Authorize(ctx); !auth.ok()) return Done(ctx, auth);
  *response = core_->GetCluster();
  return Done(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Register(grpc::CallbackServerContext* ctx,
                                                           const RegisterRequest* request,
                                                           RegisterResponse* response) {
  absl::StatusOr<RegisterResponse> r = core_->Register(request->member());
  if (r.ok()) *response = *std::move(r);
  return Done(ctx, r.status());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::Heartbeat(grpc::CallbackServerContext* ctx,
                                                            const HeartbeatRequest* request,
                                                            HeartbeatResponse* response) {
  absl::StatusOr<HeartbeatResponse> r = core_->Heartbeat(*request);
  if (r.ok()) *response = *std::move(r);
  return Done(ctx, r.status());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ReportProgress(
    grpc::CallbackServerContext* ctx, const ProgressReport* request,
    ReportProgressResponse* response) {
  absl::StatusOr<bool> cancel = core_->ReportProgress(*request);
  if (cancel.ok()) response->set_cancel(*cancel);
  return Done(ctx, cancel.status());
}

grpc::ServerUnaryReactor* CoordinatorServiceImpl::ReportCheckpoint(
    grpc::CallbackServerContext* ctx, const CheckpointReport* request,
    ReportCheckpointResponse*) {
  return Done(ctx, core_->ReportCheckpoint(*request));
}

}  // namespace ps
