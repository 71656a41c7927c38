// gRPC glue of the coordinator: CoordinatorService (callback API) over Coordinator.
#ifndef PS_SERVER_COORDINATOR_SERVICE_H_
#define PS_SERVER_COORDINATOR_SERVICE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "proto/coordinator.grpc.pb.h"
#include "server/coordinator/coordinator.h"
#include "common/sync.h"

namespace ps {

class WatchReactor;

// Each unary call converts the request, calls the Coordinator and maps the status with
// ToGrpcStatus. WatchJob is a server-streaming reactor: it writes the status at once,
// then after every change the Coordinator notifies (at most one write per
// `watch_min_interval`, coalescing changes in between), and finishes OK after writing
// a final state; NOT_FOUND for an unknown job. No thread waits per watcher: writes
// are started from the notifying thread or from a grpc::Alarm. A client cancelling
// the stream finishes it with CANCELLED.
//
// With a non-empty `auth_token` the client-facing calls (SubmitJob, GetJob, ListJobs,
// CancelJob, WatchJob, GetCluster) need the metadata "authorization: Bearer <token>"
// (compared in constant time, common/auth.h) and answer UNAUTHENTICATED without it or
// with another token, before doing anything. The daemon-facing calls (Register,
// Heartbeat, ReportProgress, ReportCheckpoint) take no token: mutual TLS protects them.
//
// Thread-safe. `core` is not owned and must outlive the service and the server that
// serves it (the server's Shutdown finishes every watcher).
class CoordinatorServiceImpl final : public CoordinatorService::CallbackService {
 public:
  explicit CoordinatorServiceImpl(Coordinator* core,
                                  absl::Duration watch_min_interval = absl::Milliseconds(100),
                                  std::string auth_token = "");
  CoordinatorServiceImpl(const CoordinatorServiceImpl&) = delete;
  CoordinatorServiceImpl& operator=(const CoordinatorServiceImpl&) = delete;
  ~CoordinatorServiceImpl() override;  // Waits for every watch stream to be done.

  // Blocks until every WatchJob stream has finished and released its reactor. Call
  // after the server's Shutdown and Wait, before destroying the Coordinator: gRPC may
  // run a reactor's OnDone after Server::Wait returns.
  void WaitForWatchers();

  grpc::ServerUnaryReactor* SubmitJob(grpc::CallbackServerContext* ctx,
                                      const SubmitJobRequest* request,
                                      SubmitJobResponse* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const GetJobRequest* request,
                                   JobStatus* response) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const ListJobsRequest* request,
                                     ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const CancelJobRequest* request,
                                      CancelJobResponse* response) override;
  grpc::ServerWriteReactor<JobStatus>* WatchJob(grpc::CallbackServerContext* ctx,
                                                const WatchJobRequest* request) override;
  grpc::ServerUnaryReactor* GetCluster(grpc::CallbackServerContext* ctx,
                                       const GetClusterRequest* request,
                                       GetClusterResponse* response) override;
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* ctx,
                                     const RegisterRequest* request,
                                     RegisterResponse* response) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const HeartbeatRequest* request,
                                      HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportProgress(grpc::CallbackServerContext* ctx,
                                           const ProgressReport* request,
                                           ReportProgressResponse* response) override;
  grpc::ServerUnaryReactor* ReportCheckpoint(grpc::CallbackServerContext* ctx,
                                             const CheckpointReport* request,
                                             ReportCheckpointResponse* response) override;

 private:
  friend class WatchReactor;
  void WatcherDone();
  // OK, or UNAUTHENTICATED when a token is configured and the call lacks it.
  absl::Status Authorize(const grpc::CallbackServerContext* ctx) const;

  Coordinator* const core_;  // Not owned.
  const absl::Duration watch_min_interval_;
  const std::string auth_token_;  // Empty: no token needed.

  Mutex mu_;
  CondVar watchers_cv_;
  int64_t watchers_ ABSL_GUARDED_BY(mu_) = 0;  // Live WatchReactors.
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_SERVICE_H_
