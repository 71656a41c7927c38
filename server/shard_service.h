// The shard's gRPC service: thin glue from proto requests to ShardCore calls.
//
// Every handler uses the callback API. Pull parks no thread while it waits: its
// reactor registers a wake-up with the job and finishes from the thread whose push
// released it, or on cancellation (the caller's deadline).
#ifndef PS_SERVER_SHARD_SERVICE_H_
#define PS_SERVER_SHARD_SERVICE_H_

#include <functional>

#include "proto/shard.grpc.pb.h"
#include "server/shard_core.h"

namespace ps {

// Per-call observations for metrics (method, status code, request and response bytes,
// seconds). Optional.
using CallObserver =
    std::function<void(const char* method, int code, size_t bytes_in, size_t bytes_out, double seconds)>;

class ShardServiceImpl final : public ShardService::CallbackService {
 public:
  // `core` is not owned and must outlive the service.
  explicit ShardServiceImpl(ShardCore* core, CallObserver observer = nullptr);

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* ctx, const CreateJobRequest* req,
                                      CreateJobResponse* resp) override;
  grpc::ServerUnaryReactor* DropJob(grpc::CallbackServerContext* ctx, const DropJobRequest* req,
                                    DropJobResponse* resp) override;
  grpc::ServerUnaryReactor* CreateTable(grpc::CallbackServerContext* ctx,
                                        const CreateTableRequest* req,
                                        CreateTableResponse* resp) override;
  grpc::ServerUnaryReactor* DropTable(grpc::CallbackServerContext* ctx, const DropTableRequest* req,
                                      DropTableResponse* resp) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* ctx, const PullRequest* req,
                                 PullResponse* resp) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* ctx, const PushRequest* req,
                                 PushResponse* resp) override;
  grpc::ServerUnaryReactor* Checkpoint(grpc::CallbackServerContext* ctx,
                                       const CheckpointRequest* req,
                                       CheckpointResponse* resp) override;
  grpc::ServerUnaryReactor* Restore(grpc::CallbackServerContext* ctx, const RestoreRequest* req,
                                    RestoreResponse* resp) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* ctx,
                                            const ListCheckpointsRequest* req,
                                            ListCheckpointsResponse* resp) override;
  grpc::ServerUnaryReactor* ListTables(grpc::CallbackServerContext* ctx,
                                       const ListTablesRequest* req,
                                       ListTablesResponse* resp) override;
  grpc::ServerUnaryReactor* GetStats(grpc::CallbackServerContext* ctx, const GetStatsRequest* req,
                                     GetStatsResponse* resp) override;

 private:
  ShardCore* const core_;  // Not owned.
  const CallObserver observer_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SERVICE_H_
