// The shard's gRPC service: thin glue from proto requests to ShardCore calls.
//
// Every handler uses the callback API. Pull parks no thread while it waits: its
// reactor registers a wake-up with the job and finishes from the thread whose push
// released it, or on cancellation (the caller's deadline).
//
// Push requests and pull responses (the messages that carry tensors) come from pools
// (gRPC's MessageAllocator): a reused message keeps the capacity of its `values`, so
// parsing a push and filling a pull write into memory already mapped instead of fresh
// pages, which cost more than the copy itself (DESIGN.md, "Performance facts").
#ifndef PS_SERVER_SHARD_SERVICE_H_
#define PS_SERVER_SHARD_SERVICE_H_

#include <functional>
#include <memory>

#include "grpcpp/support/message_allocator.h"
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
  ~ShardServiceImpl() override;
  ShardServiceImpl(const ShardServiceImpl&) = delete;
  ShardServiceImpl& operator=(const ShardServiceImpl&) = delete;

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
  template <typename Req, typename Resp>
  class MessagePool;

  ShardCore* const core_;  // Not owned.
  const CallObserver observer_;
  // Registered with gRPC; live as long as the service.
  const std::unique_ptr<MessagePool<PullRequest, PullResponse>> pull_messages_;
  const std::unique_ptr<MessagePool<PushRequest, PushResponse>> push_messages_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SERVICE_H_
