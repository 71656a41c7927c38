#include "worker/ps_client_testing.h"

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "gtest/gtest.h"
#include "server/convert.h"

namespace ps {

FlakyShardService::FlakyShardService(ShardCore* core) : inner_(core) {}

bool FlakyShardService::Take(std::atomic<int>* counter) {
  int n = counter->load();
  while (n > 0) {
    if (counter->compare_exchange_weak(n, n - 1)) return true;
  }
  return false;
}

namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const grpc::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* FlakyShardService::CreateJob(grpc::CallbackServerContext* ctx,
                                                       const CreateJobRequest* req,
                                                       CreateJobResponse* resp) {
  return inner_.CreateJob(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::DropJob(grpc::CallbackServerContext* ctx,
                                                     const DropJobRequest* req,
                                                     DropJobResponse* resp) {
  return inner_.DropJob(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::CreateTable(grpc::CallbackServerContext* ctx,
                                                         const CreateTableRequest* req,
                                                         CreateTableResponse* resp) {
  return inner_.CreateTable(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::DropTable(grpc::CallbackServerContext* ctx,
                                                       const DropTableRequest* req,
                                                       DropTableResponse* resp) {
  return inner_.DropTable(ctx, req, resp);
}

grpc::ServerUnaryReactor* FlakyShardService::Pull(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* req,
                                                  grpc::ByteBuffer* resp) {
  ++pulls_;
  if (Take(&fail_pulls_)) {
    ++injected_;
    return FinishNow(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: pull failed"));
  }
  return inner_.Pull(ctx, req, resp);
}

grpc::ServerUnaryReactor* FlakyShardService::PushFault(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer& request) {
  // Requests are read here only while a push fault is armed, so that benches running
  // through this layer pay nothing for it; a malformed one goes on to the service.
  if (fail_pushes_.load() <= 0 && lose_push_responses_.load() <= 0) return nullptr;
  absl::StatusOr<ShardServiceImpl::PushCall> push = ShardServiceImpl::ReadPush(request);
  if (!push.ok()) return nullptr;
  const int only = fail_pushes_rank_.load();
  if ((only < 0 || static_cast<uint32_t>(only) == push->fields.rank()) && Take(&fail_pushes_)) {
    ++injected_;
    return FinishNow(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: push failed"));
  }
  if (Take(&lose_push_responses_)) {
    ++injected_;
    // Applied as the service would, then the answer is lost.
    absl::StatusOr<PushResult> result = inner_.ApplyPush(*std::move(push));
    if (!result.ok()) return FinishNow(ctx, ToGrpcStatus(result.status()));
    return FinishNow(ctx,
                     grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: push response lost"));
  }
  return nullptr;
}

grpc::ServerUnaryReactor* FlakyShardService::Push(grpc::CallbackServerContext* ctx,
                                                  const grpc::ByteBuffer* request,
                                                  grpc::ByteBuffer* resp) {
  ++pushes_;
  if (grpc::ServerUnaryReactor* fault = PushFault(ctx, *request); fault != nullptr) return fault;
  return inner_.Push(ctx, request, resp);
}

grpc::ServerUnaryReactor* FlakyShardService::PushPull(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* resp) {
  ++push_pulls_;
  if (refuse_push_pull_.load()) {
    return FinishNow(ctx, grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "injected: no PushPull"));
  }
  if (grpc::ServerUnaryReactor* fault = PushFault(ctx, *request); fault != nullptr) return fault;
  if (fail_pulls_.load() > 0) {
    absl::StatusOr<ShardServiceImpl::PushCall> push = ShardServiceImpl::ReadPush(*request);
    if (push.ok() && Take(&fail_pulls_)) {
      ++injected_;
      // The push half applied, the pull half failed.
      absl::StatusOr<PushResult> result = inner_.ApplyPush(*std::move(push));
      if (!result.ok()) return FinishNow(ctx, ToGrpcStatus(result.status()));
      return FinishNow(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected: pull failed"));
    }
  }
  return inner_.PushPull(ctx, request, resp);
}

grpc::ServerUnaryReactor* FlakyShardService::Checkpoint(grpc::CallbackServerContext* ctx,
                                                        const CheckpointRequest* req,
                                                        CheckpointResponse* resp) {
  return inner_.Checkpoint(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::Restore(grpc::CallbackServerContext* ctx,
                                                     const RestoreRequest* req,
                                                     RestoreResponse* resp) {
  return inner_.Restore(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::ListCheckpoints(grpc::CallbackServerContext* ctx,
                                                             const ListCheckpointsRequest* req,
                                                             ListCheckpointsResponse* resp) {
  return inner_.ListCheckpoints(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::ListTables(grpc::CallbackServerContext* ctx,
                                                        const ListTablesRequest* req,
                                                        ListTablesResponse* resp) {
  return inner_.ListTables(ctx, req, resp);
}
grpc::ServerUnaryReactor* FlakyShardService::GetStats(grpc::CallbackServerContext* ctx,
                                                      const GetStatsRequest* req,
                                                      GetStatsResponse* resp) {
  return inner_.GetStats(ctx, req, resp);
}

std::unique_ptr<TestCluster> TestCluster::Start(int num_shards, const std::string& dir,
                                                bool serve_grpc) {
  std::unique_ptr<TestCluster> cluster(new TestCluster());
  for (int i = 0; i < num_shards; ++i) {
    auto shard = std::make_unique<Shard>();
    ShardCore::Options o;
    o.shard_id = static_cast<uint32_t>(i);
    o.data_dir = absl::StrCat(dir, "/shard", i);
    UseProtoConfigs(&o);
    absl::StatusOr<std::unique_ptr<ShardCore>> core = ShardCore::Open(std::move(o));
    PS_CHECK(core.ok()) << core.status();
    shard->core = *std::move(core);
    if (serve_grpc) {
      shard->service = std::make_unique<FlakyShardService>(shard->core.get());
      grpc::ServerBuilder builder;
      int port = 0;
      builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
      builder.RegisterService(shard->service.get());
      builder.SetMaxReceiveMessageSize(256 << 20);
      builder.SetMaxSendMessageSize(256 << 20);
      shard->server = builder.BuildAndStart();
      PS_CHECK(shard->server != nullptr && port != 0) << "cannot listen on 127.0.0.1";
      shard->address = absl::StrCat("127.0.0.1:", port);
    }
    cluster->shards_.push_back(std::move(shard));
  }
  return cluster;
}

TestCluster::~TestCluster() {
  for (auto& shard : shards_) shard->core->CloseAll();
  for (auto& shard : shards_) {
    if (shard->server != nullptr) shard->server->Shutdown();
  }
  for (auto& shard : shards_) {
    shard->core->Drain();
    shard->server.reset();
    shard->service.reset();
    shard->core.reset();
  }
}

std::vector<std::string> TestCluster::addresses() const {
  std::vector<std::string> out;
  for (const auto& shard : shards_) out.push_back(shard->address);
  return out;
}

std::vector<ShardCore*> TestCluster::cores() const {
  std::vector<ShardCore*> out;
  for (const auto& shard : shards_) out.push_back(shard->core.get());
  return out;
}

std::string TestDir(const std::string& suffix) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info == nullptr ? "test"
                                     : absl::StrCat(info->test_suite_name(), ".", info->name());
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  const std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, suffix);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  return dir;
}

}  // namespace ps
