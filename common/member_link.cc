#include "common/member_link.h"

#include <chrono>
#include <random>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/channel_args.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "grpcpp/grpcpp.h"

namespace ps {
namespace {

uint64_t NewIncarnation() {
  std::random_device rd;
  const uint64_t r = (uint64_t{rd()} << 32) ^ rd();
  return r ^ static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
}

}  // namespace

MemberLink::MemberLink(std::string coordinator, Member member, ResponseHandler handler,
                       HeartbeatProbe probe,
                       std::shared_ptr<grpc::ChannelCredentials> credentials)
    : coordinator_(std::move(coordinator)),
      handler_(std::move(handler)),
      probe_(std::move(probe)),
      stub_(CoordinatorService::NewStub(grpc::CreateCustomChannel(
          coordinator_,
          credentials != nullptr ? credentials : grpc::InsecureChannelCredentials(),
          FastReconnectChannelArgs()))),
      member_(std::move(member)) {
  member_.set_incarnation(NewIncarnation());
}

MemberLink::~MemberLink() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  if (thread_.joinable()) thread_.join();
}

void MemberLink::Start(std::function<void(const std::string&)> on_registered) {
  thread_ = std::thread([this, cb = std::move(on_registered)]() mutable { Loop(std::move(cb)); });
}

void MemberLink::SetRunning(const std::string& job_id, uint32_t rank, uint64_t generation) {
  MutexLock lock(&mu_);
  member_.set_job_id(job_id);
  member_.set_rank(rank);
  member_.set_generation(generation);
}

absl::Status MemberLink::Register() {
  RegisterRequest req;
  {
    MutexLock lock(&mu_);
    *req.mutable_member() = member_;
  }
  RegisterResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  const grpc::Status s = stub_->Register(&ctx, req, &resp);
  if (!s.ok()) return FromGrpcStatus(s);
  MutexLock lock(&mu_);
  member_id_ = resp.member_id();
  if (resp.heartbeat_interval_ms() > 0) interval_ms_ = resp.heartbeat_interval_ms();
  return absl::OkStatus();
}

void MemberLink::Loop(std::function<void(const std::string&)> on_registered) {
  std::vector<ShardOrder> applied;
  bool registered = false;
  int backoff_ms = 100;
  for (;;) {
    uint32_t wait_ms;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      wait_ms = interval_ms_;
    }
    if (!registered) {
      const absl::Status s = Register();
      if (!s.ok()) {
        PS_LOG(WARNING) << "cannot register with the coordinator at " << coordinator_ << ": "
                        << s << "; retrying in " << backoff_ms << " ms";
        wait_ms = static_cast<uint32_t>(backoff_ms);
        backoff_ms = std::min(backoff_ms * 2, 5000);
      } else {
        registered = true;
        backoff_ms = 100;
        std::string id;
        {
          MutexLock lock(&mu_);
          id = member_id_;
        }
        // The line local_cluster.sh waits for.
        PS_LOG(INFO) << "registered with the coordinator at " << coordinator_ << " as " << id;
        if (on_registered) {
          on_registered(id);
          on_registered = nullptr;
        }
        continue;  // Heartbeat at once: there may be work waiting.
      }
    } else {
      HeartbeatRequest req;
      {
        MutexLock lock(&mu_);
        req.set_member_id(member_id_);
        req.set_incarnation(member_.incarnation());
      }
      if (probe_) probe_(&req);
      for (const ShardOrder& o : applied) *req.add_applied_orders() = o;
      HeartbeatResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      const grpc::Status s = stub_->Heartbeat(&ctx, req, &resp);
      if (s.error_code() == grpc::StatusCode::NOT_FOUND) {
        PS_LOG(WARNING) << "the coordinator forgot this member (" << s.error_message()
                        << "); registering again";
        registered = false;
        continue;
      }
      if (s.ok()) {
        applied = handler_(resp);
      } else {
        PS_LOG(WARNING) << "heartbeat to " << coordinator_ << " failed: " << s.error_message();
      }
    }
    MutexLock lock(&mu_);
    if (!stopping_) cv_.WaitWithTimeout(&mu_, absl::Milliseconds(wait_ms));
  }
}

}  // namespace ps
