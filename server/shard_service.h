// The shard's gRPC service: thin glue from proto requests to ShardCore calls.
//
// Every handler uses the callback API. Pull parks no thread while it waits: its
// reactor registers a wake-up with the job and finishes from the thread whose push
// released it, or on cancellation (the caller's deadline).
//
// Pull, Push and PushPull (a push part and the next clock's pull in one round trip),
// the calls that carry tensors, are served as bytes (common/wire.h): a
// push's gradients are applied from the received slices where they lie, and a pull's
// dense values are sent from the table's own blocks, lent to gRPC until it has sent
// them (a push meanwhile copies the block it writes: server/dense_values.h). Sparse
// rows are gathered into a reused buffer that gRPC sends as it is; reused buffers keep
// their pages mapped, which costs less than the copy itself (DESIGN.md, "Performance
// facts"). To other peers these are ordinary protobuf messages.
#ifndef PS_SERVER_SHARD_SERVICE_H_
#define PS_SERVER_SHARD_SERVICE_H_

#include <functional>
#include <memory>

#include "common/wire.h"
#include "proto/shard.grpc.pb.h"
#include "server/shard_core.h"

namespace ps {

// Per-call observations for metrics (method, status code, request and response bytes,
// seconds). Optional.
using CallObserver =
    std::function<void(const char* method, int code, size_t bytes_in, size_t bytes_out, double seconds)>;

class ShardServiceImpl final
    : public ShardService::WithRawCallbackMethod_Pull<ShardService::WithRawCallbackMethod_Push<
          ShardService::WithRawCallbackMethod_PushPull<ShardService::CallbackService>>> {
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
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* ctx,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* ctx,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  // The push part, then the pull of (rank, clock + 1) of its pull_slices, answered as
  // Pull answers. The pull slices are checked before the push is applied.
  grpc::ServerUnaryReactor* PushPull(grpc::CallbackServerContext* ctx,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  // Push without the answer, in its two steps: the fields of a request and its
  // gradients (views into `request`, which must outlive them), then applying or
  // buffering it. INVALID_ARGUMENT for a malformed request.
  struct PushCall {
    PushRequest fields;
    wire::ByteViews values;
  };
  static absl::StatusOr<PushCall> ReadPush(const grpc::ByteBuffer& request);
  absl::StatusOr<PushResult> ApplyPush(PushCall push);
  // The same, to `job` (found by the caller).
  static absl::StatusOr<PushResult> ApplyPushTo(ShardJob& job, PushCall push);

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
  // Value buffers kept for reuse, and the largest kept (a rare huge call does not pin
  // its memory).
  static constexpr size_t kPooledBuffers = 32;
  static constexpr size_t kPooledBufferBytes = size_t{32} << 20;

  ShardCore* const core_;  // Not owned.
  const CallObserver observer_;
  // Shared with the slices gRPC still holds.
  const std::shared_ptr<wire::BufferPool> buffers_;
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_SERVICE_H_
