// A daemon's link to the coordinator: register, then heartbeat every interval, and
// register again when the coordinator forgets us (it restarted). What the coordinator
// sends back (worker assignments, shard orders) goes to a callback; what the callback
// returns (applied shard orders) is echoed in the next heartbeats.
//
// The hot path never goes through here. A coordinator that is down only delays
// heartbeats: the link keeps retrying with backoff and the daemon keeps serving.
//
// Thread-safe; one background thread.
#ifndef PS_COMMON_MEMBER_LINK_H_
#define PS_COMMON_MEMBER_LINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "common/sync.h"
#include "grpcpp/security/credentials.h"
#include "proto/coordinator.grpc.pb.h"

namespace ps {

class MemberLink {
 public:
  // Handles one heartbeat response; returns the shard orders now applied (echoed back
  // to the coordinator until it stops sending them). Runs on the link's thread.
  using ResponseHandler = std::function<std::vector<ShardOrder>(const HeartbeatResponse&)>;
  // Fills in what the daemon reports in each heartbeat besides the orders it applied:
  // load, and for shards the checkpoints they hold (optional).
  using HeartbeatProbe = std::function<void(HeartbeatRequest*)>;

  // `member` describes this daemon (role, address, shard_id, device); its incarnation
  // is chosen here, unique per start. `credentials` of the channel to the coordinator
  // (common/tls.h); nullptr = plaintext.
  MemberLink(std::string coordinator, Member member, ResponseHandler handler,
             HeartbeatProbe probe = nullptr,
             std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);
  ~MemberLink();  // Stops the thread.
  MemberLink(const MemberLink&) = delete;
  MemberLink& operator=(const MemberLink&) = delete;

  // Starts the thread; `on_registered` runs once after the first registration.
  void Start(std::function<void(const std::string& member_id)> on_registered = nullptr);

  // Sets what a re-registration says about running work (workers: job, rank,
  // generation), so a restarted coordinator gives the rank back.
  void SetRunning(const std::string& job_id, uint32_t rank, uint64_t generation);

  CoordinatorService::Stub* stub() { return stub_.get(); }
  uint64_t incarnation() const { return member_.incarnation(); }

 private:
  void Loop(std::function<void(const std::string&)> on_registered);
  absl::Status Register();

  const std::string coordinator_;
  const ResponseHandler handler_;
  const HeartbeatProbe probe_;
  std::unique_ptr<CoordinatorService::Stub> stub_;

  Mutex mu_;
  Member member_ ABSL_GUARDED_BY(mu_);
  std::string member_id_ ABSL_GUARDED_BY(mu_);
  uint32_t interval_ms_ ABSL_GUARDED_BY(mu_) = 500;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CondVar cv_;  // Signalled when stopping_ is set.
  std::thread thread_;
};

}  // namespace ps

#endif  // PS_COMMON_MEMBER_LINK_H_
