// A real ps_server process: checkpoints, SIGKILL, restart on the same --data_dir.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/packing.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

class ShardProcess {
 public:
  explicit ShardProcess(std::string dir) : dir_(std::move(dir)) {}

  void Start() {
    ASSERT_TRUE(daemon_
                    .Start({Runfile("server/ps_server"), "--port=0", "--shard_id=0",
                            "--num_shards=1", "--data_dir=" + dir_},
                           dir_ + ".log")
                    .ok());
    auto channel = grpc::CreateCustomChannel(daemon_.address(), grpc::InsecureChannelCredentials(),
                                             Args());
    stub_ = ShardService::NewStub(channel);
  }
  int Kill(int sig) { return daemon_.Kill(sig); }
  ShardService::Stub* stub() { return stub_.get(); }

  static grpc::ChannelArguments Args() {
    grpc::ChannelArguments a;
    a.SetMaxReceiveMessageSize(512 << 20);
    a.SetMaxSendMessageSize(512 << 20);
    return a;
  }

 private:
  std::string dir_;
  Daemon daemon_;
  std::unique_ptr<ShardService::Stub> stub_;
};

constexpr uint64_t kDense = 50000;

void SetUpJob(ShardService::Stub* stub, uint64_t dense_size) {
  CreateJobRequest req;
  ShardJobConfig* c = req.mutable_config();
  c->set_job_id("job-1");
  c->set_seed(11);
  c->mutable_consistency()->set_mode(SYNC);
  c->set_num_workers(1);
  c->set_num_shards(1);
  c->mutable_checkpoint()->set_keep(5);
  CreateJobResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->CreateJob(&ctx, req, &resp).ok());
  for (int sparse = 0; sparse < 2; ++sparse) {
    CreateTableRequest t;
    t.set_job_id("job-1");
    TableSpec* s = t.mutable_table();
    s->set_name(sparse ? "emb" : "w");
    s->set_kind(sparse ? TableSpec::SPARSE : TableSpec::DENSE);
    if (sparse) {
      s->set_dim(8);
    } else {
      s->set_size(dense_size);
    }
    s->mutable_init()->set_kind(Initializer::NORMAL);
    s->mutable_init()->set_scale(0.1f);
    s->mutable_optimizer()->mutable_adam();
    s->mutable_optimizer()->set_learning_rate(0.01f);
    CreateTableResponse tr;
    grpc::ClientContext tctx;
    ASSERT_TRUE(stub->CreateTable(&tctx, t, &tr).ok());
  }
}

// One SYNC clock of the only worker: pull, then push deterministic gradients.
void Step(ShardService::Stub* stub, uint64_t clock, uint64_t dense_size) {
  PullRequest pull;
  pull.set_job_id("job-1");
  pull.set_clock(clock);
  Slice* s = pull.add_slices();
  s->set_table("w");
  s->set_count(dense_size);
  PullResponse pulled;
  grpc::ClientContext pctx;
  ASSERT_TRUE(stub->Pull(&pctx, pull, &pulled).ok());
  PushRequest push;
  push.set_job_id("job-1");
  push.set_clock(clock);
  push.set_num_parts(1);
  *push.add_slices() = pull.slices(0);
  Slice* e = push.add_slices();
  e->set_table("emb");
  e->set_keys(PackKeys({clock, 1000 + clock, 7}));
  std::vector<float> g(dense_size + 24);
  for (size_t i = 0; i < g.size(); ++i) g[i] = 0.001f * static_cast<float>((i * 31 + clock) % 97) - 0.05f;
  push.set_values(PackFloats(g));
  PushResponse pushed;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->Push(&ctx, push, &pushed).ok());
  ASSERT_EQ(pushed.clock(), clock + 1);
}

struct State {
  uint64_t clock = 0;
  uint64_t digest = 0;
  std::string weights;
};

State Read(ShardService::Stub* stub, uint64_t dense_size) {
  State st;
  GetStatsRequest sr;
  sr.set_job_id("job-1");
  sr.set_with_digest(true);
  GetStatsResponse stats;
  grpc::ClientContext sctx;
  EXPECT_TRUE(stub->GetStats(&sctx, sr, &stats).ok());
  if (stats.jobs_size() == 1) {
    st.clock = stats.jobs(0).clock();
    st.digest = stats.jobs(0).state_digest();
  }
  PullRequest pull;
  pull.set_job_id("job-1");
  pull.set_no_wait(true);
  Slice* s = pull.add_slices();
  s->set_table("w");
  s->set_count(dense_size);
  Slice* e = pull.add_slices();
  e->set_table("emb");
  e->set_keys(PackKeys({0, 1, 2, 1000, 1001, 7}));
  PullResponse pulled;
  grpc::ClientContext pctx;
  EXPECT_TRUE(stub->Pull(&pctx, pull, &pulled).ok());
  st.weights = pulled.values();
  return st;
}

absl::StatusOr<CheckpointResponse> Checkpoint(ShardService::Stub* stub) {
  CheckpointRequest req;
  req.set_job_id("job-1");
  CheckpointResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->Checkpoint(&ctx, req, &resp);
  if (!s.ok()) return absl::UnavailableError(s.error_message());
  return resp;
}

std::string TempDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

TEST(ShardRestartTest, StateAfterSigkillEqualsTheCheckpointExactly) {
  ShardProcess shard(TempDir("restart"));
  shard.Start();
  SetUpJob(shard.stub(), kDense);
  for (uint64_t c = 0; c < 3; ++c) Step(shard.stub(), c, kDense);
  absl::StatusOr<CheckpointResponse> ck = Checkpoint(shard.stub());
  ASSERT_TRUE(ck.ok()) << ck.status();
  EXPECT_EQ(ck->clock(), 3u);
  const State at3 = Read(shard.stub(), kDense);
  ASSERT_EQ(at3.clock, 3u);
  for (uint64_t c = 3; c < 6; ++c) Step(shard.stub(), c, kDense);
  const State at6 = Read(shard.stub(), kDense);
  ASSERT_NE(at6.digest, at3.digest);

  const int status = shard.Kill(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  shard.Start();
  const State back = Read(shard.stub(), kDense);
  EXPECT_EQ(back.clock, 3u);
  EXPECT_EQ(back.digest, at3.digest);  // Weights and optimizer slots, every byte.
  EXPECT_EQ(back.weights, at3.weights);
  // Training continues from clock 3, and a replay of clock 2 is a duplicate.
  Step(shard.stub(), 3, kDense);
  EXPECT_EQ(Read(shard.stub(), kDense).clock, 4u);
  shard.Kill(SIGTERM);
}

TEST(ShardMetricsTest, MetricsEndpointCountsCallsAndCheckpoints) {
  const std::string dir = TempDir("metrics");
  Daemon d;
  ASSERT_TRUE(d.Start({Runfile("server/ps_server"), "--port=0", "--metrics_port=0",
                       "--data_dir=" + dir},
                      dir + ".log")
                  .ok());
  ASSERT_FALSE(d.metrics_address().empty());
  auto stub = ShardService::NewStub(
      grpc::CreateChannel(d.address(), grpc::InsecureChannelCredentials()));
  SetUpJob(stub.get(), 1000);
  Step(stub.get(), 0, 1000);
  ASSERT_TRUE(Checkpoint(stub.get()).ok());
  PushRequest bad;  // An unknown job: NOT_FOUND, counted as such.
  bad.set_job_id("nope");
  PushResponse resp;
  grpc::ClientContext ctx;
  EXPECT_FALSE(stub->Push(&ctx, bad, &resp).ok());
  absl::StatusOr<std::string> text = ps::testing::HttpGet(d.metrics_address(), "/metrics");
  ASSERT_TRUE(text.ok()) << text.status();
  for (const char* line : {
           "ps_shard_requests_total{shard=\"0\",code=\"OK\",method=\"Push\"} 1",
           "ps_shard_requests_total{shard=\"0\",code=\"NOT_FOUND\",method=\"Push\"} 1",
           "ps_shard_requests_total{shard=\"0\",code=\"OK\",method=\"Pull\"} 1",
           "ps_shard_checkpoint_write_seconds_count{shard=\"0\"} 1",
           "ps_shard_checkpoint_clock{shard=\"0\",job=\"job-1\"} 1",
       }) {
    EXPECT_NE(text->find(line), std::string::npos) << line << "\n" << *text;
  }
  d.Kill(SIGTERM);
}

TEST(ShardRestartTest, SigkillDuringACheckpointWriteLeavesTheLastOneLoadable) {
  // Big enough that the write takes a while: 8M floats with two Adam slots, ~100 MB.
  const uint64_t big = 8u << 20;
  const std::string dir = TempDir("midwrite");
  ShardProcess shard(dir);
  shard.Start();
  SetUpJob(shard.stub(), big);
  Step(shard.stub(), 0, big);
  ASSERT_TRUE(Checkpoint(shard.stub()).ok());
  std::vector<State> at;  // at[c]: the state at clock c.
  at.resize(8);
  at[1] = Read(shard.stub(), big);
  uint64_t clock = 1;
  for (int round = 0; round < 3; ++round) {
    Step(shard.stub(), clock, big);
    ++clock;
    at[clock] = Read(shard.stub(), big);
    // Ask for a checkpoint and kill the shard while it is being written.
    std::thread asker([&] { (void)Checkpoint(shard.stub()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(30 + 60 * round));
    shard.Kill(SIGKILL);
    asker.join();
    shard.Start();
    const State back = Read(shard.stub(), big);
    // Either the new checkpoint made it whole, or the previous one is intact.
    ASSERT_TRUE(back.clock == clock || back.clock + 1 == clock) << back.clock;
    std::printf("round %d: SIGKILL %d ms into the checkpoint of clock %lu; restarted at %s\n",
                round, 30 + 60 * round, static_cast<unsigned long>(clock),
                back.clock == clock ? "the new checkpoint" : "the previous checkpoint");
    EXPECT_EQ(back.digest, at[back.clock].digest) << "round " << round;
    EXPECT_EQ(back.weights, at[back.clock].weights);
    clock = back.clock;
  }
  shard.Kill(SIGTERM);
}

}  // namespace
}  // namespace ps
