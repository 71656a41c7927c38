// Test support for PsClient tests: in-process shards (ShardCore with RocksDB under a
// test directory), each served over real gRPC on 127.0.0.1 (port 0), with fault
// injection in front of the real service.
#ifndef PS_WORKER_PS_CLIENT_TESTING_H_
#define PS_WORKER_PS_CLIENT_TESTING_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "proto/shard.grpc.pb.h"
#include "server/shard_core.h"
#include "server/shard_service.h"

namespace ps {

// The real ShardServiceImpl behind a layer that can fail calls on demand: the fault
// injection point of the client's retry tests. Thread-safe.
class FlakyShardService final
    : public ShardService::WithRawCallbackMethod_Pull<ShardService::WithRawCallbackMethod_Push<
          ShardService::WithRawCallbackMethod_PushPull<ShardService::CallbackService>>> {
 public:
  FlakyShardService(ShardCore* core);  // Not owned.

  // The next `n` pushes (of worker `rank` only, when rank >= 0) answer UNAVAILABLE
  // without being applied.
  void FailPushes(int n, int rank = -1) {
    fail_pushes_rank_.store(rank);
    fail_pushes_.store(n);
  }
  // The next `n` pushes are applied (or buffered), then answer UNAVAILABLE, as when the
  // response is lost on the way back.
  void LosePushResponses(int n) { lose_push_responses_.store(n); }
  // The next `n` pulls answer UNAVAILABLE. A PushPull counts as a push, then a pull:
  // failed or lost as a push, or its push applied and its pull failed.
  void FailPulls(int n) { fail_pulls_.store(n); }
  // Answers PushPull UNIMPLEMENTED, as a shard built before it does (not counted as
  // injected).
  void RefusePushPull(bool refuse) { refuse_push_pull_.store(refuse); }
  // Calls that were failed on purpose.
  int injected() const { return injected_.load(); }
  // Tensor calls received, by method (failed ones too).
  struct Calls {
    int pull = 0, push = 0, push_pull = 0;
  };
  Calls calls() const { return Calls{pulls_.load(), pushes_.load(), push_pulls_.load()}; }

  grpc::ServerUnaryReactor* CreateJob(grpc::CallbackServerContext* ctx, const CreateJobRequest* req,
                                      CreateJobResponse* resp) override;
  grpc::ServerUnaryReactor* DropJob(grpc::CallbackServerContext* ctx, const DropJobRequest* req,
                                    DropJobResponse* resp) override;
  grpc::ServerUnaryReactor* CreateTable(grpc::CallbackServerContext* ctx,
                                        const CreateTableRequest* req,
                                        CreateTableResponse* resp) override;
  grpc::ServerUnaryReactor* DropTable(grpc::CallbackServerContext* ctx, const DropTableRequest* req,
                                      DropTableResponse* resp) override;
  // Pull and Push are served as bytes, as ShardServiceImpl serves them.
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                 grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                 grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* PushPull(grpc::CallbackServerContext* ctx,
                                     const grpc::ByteBuffer* req, grpc::ByteBuffer* resp) override;
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
  static bool Take(std::atomic<int>* counter);
  // The push faults armed for this request, if any: the reactor that answered it, or
  // nullptr to go on.
  grpc::ServerUnaryReactor* PushFault(grpc::CallbackServerContext* ctx,
                                      const grpc::ByteBuffer& request);

  ShardServiceImpl inner_;
  std::atomic<int> fail_pushes_{0};
  std::atomic<int> fail_pushes_rank_{-1};
  std::atomic<int> lose_push_responses_{0};
  std::atomic<int> fail_pulls_{0};
  std::atomic<bool> refuse_push_pull_{false};
  std::atomic<int> injected_{0};
  std::atomic<int> pulls_{0}, pushes_{0}, push_pulls_{0};
};

// `num_shards` shards in this process. Shard i keeps its checkpoints under
// `dir`/shard<i>; with `serve_grpc` each listens on 127.0.0.1 at a free port.
class TestCluster {
 public:
  static std::unique_ptr<TestCluster> Start(int num_shards, const std::string& dir,
                                            bool serve_grpc = true);
  ~TestCluster();  // Releases waiting pulls, stops the servers, closes the shards.
  TestCluster(const TestCluster&) = delete;
  TestCluster& operator=(const TestCluster&) = delete;

  int num_shards() const { return static_cast<int>(shards_.size()); }
  std::vector<std::string> addresses() const;
  std::vector<ShardCore*> cores() const;
  FlakyShardService* service(int shard) { return shards_[shard]->service.get(); }

 private:
  struct Shard {
    std::unique_ptr<ShardCore> core;
    std::unique_ptr<FlakyShardService> service;
    std::unique_ptr<grpc::Server> server;
    std::string address;
  };
  TestCluster() = default;

  std::vector<std::unique_ptr<Shard>> shards_;
};

// A unique directory under $TEST_TMPDIR for the running test (created fresh).
std::string TestDir(const std::string& suffix = "");

}  // namespace ps

#endif  // PS_WORKER_PS_CLIENT_TESTING_H_
