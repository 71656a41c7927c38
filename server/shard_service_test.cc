// The shard's gRPC service in-process: real gRPC on 127.0.0.1, real RocksDB.
#include "server/shard_service.h"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/packing.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/convert.h"

namespace ps {
namespace {

class ShardServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    ShardCore::Options o;
    o.data_dir = dir_;
    o.memory_budget_bytes = 1 << 20;
    UseProtoConfigs(&o);
    core_ = *ShardCore::Open(o);
    service_ = std::make_unique<ShardServiceImpl>(core_.get());
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = ShardService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
    CreateJob(SYNC, 2);
  }

  void TearDown() override {
    core_->CloseAll();
    server_->Shutdown();
    core_.reset();
  }

  void CreateJob(Consistency mode, uint32_t workers) {
    CreateJobRequest req;
    ShardJobConfig* c = req.mutable_config();
    c->set_job_id("j1");
    c->set_seed(3);
    c->mutable_consistency()->set_mode(mode);
    c->set_num_workers(workers);
    c->set_num_shards(1);
    CreateJobResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CreateJob(&ctx, req, &resp).ok());
    CreateTableRequest t;
    t.set_job_id("j1");
    TableSpec* spec = t.mutable_table();
    spec->set_name("w");
    spec->set_kind(TableSpec::DENSE);
    spec->set_size(6);
    spec->mutable_init()->set_kind(Initializer::UNIFORM);
    spec->mutable_init()->set_scale(0.5f);
    spec->mutable_optimizer()->mutable_sgd();
    spec->mutable_optimizer()->set_learning_rate(0.5f);
    CreateTableResponse tr;
    grpc::ClientContext tctx;
    ASSERT_TRUE(stub_->CreateTable(&tctx, t, &tr).ok());
    EXPECT_EQ(tr.local_elements(), 6u);
    spec->set_name("emb");
    spec->set_kind(TableSpec::SPARSE);
    spec->set_size(0);
    spec->set_dim(3);
    grpc::ClientContext sctx;
    ASSERT_TRUE(stub_->CreateTable(&sctx, t, &tr).ok());
  }

  grpc::Status Pull(const PullRequest& req, PullResponse* resp, int deadline_ms = 5000) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    return stub_->Pull(&ctx, req, resp);
  }

  grpc::Status Push(const PushRequest& req, PushResponse* resp = nullptr) {
    PushResponse ignored;
    grpc::ClientContext ctx;
    return stub_->Push(&ctx, req, resp ? resp : &ignored);
  }

  // The job's counters on this shard; a default JobStats (and a test failure) when the
  // call fails.
  JobStats Stats(const std::string& job_id = "j1") {
    GetStatsRequest req;
    req.set_job_id(job_id);
    GetStatsResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = stub_->GetStats(&ctx, req, &resp);
    EXPECT_TRUE(s.ok() && resp.jobs_size() == 1) << s.error_message();
    return resp.jobs_size() == 1 ? resp.jobs(0) : JobStats();
  }

  grpc::Status PushPull(const PushRequest& req, PullResponse* resp = nullptr,
                        int deadline_ms = 5000) {
    PullResponse ignored;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
    return stub_->PushPull(&ctx, req, resp ? resp : &ignored);
  }

  static PullRequest DensePull(uint32_t rank, uint64_t clock) {
    PullRequest r;
    r.set_job_id("j1");
    r.set_rank(rank);
    r.set_clock(clock);
    Slice* s = r.add_slices();
    s->set_table("w");
    s->set_begin(0);
    s->set_count(6);
    return r;
  }

  static PushRequest DensePush(uint32_t rank, uint64_t clock, float g) {
    PushRequest r;
    r.set_job_id("j1");
    r.set_rank(rank);
    r.set_clock(clock);
    r.set_num_parts(1);
    Slice* s = r.add_slices();
    s->set_table("w");
    s->set_count(6);
    r.set_values(PackFloats(std::vector<float>(6, g)));
    return r;
  }

  std::string dir_;
  std::unique_ptr<ShardCore> core_;
  std::unique_ptr<ShardServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<ShardService::Stub> stub_;
};

TEST_F(ShardServiceTest, WaitingPullIsReleasedByTheLastPush) {
  PullResponse before;
  ASSERT_TRUE(Pull(DensePull(0, 0), &before).ok());
  PullResponse after;
  grpc::Status pulled;
  std::thread waiter([&] { pulled = Pull(DensePull(1, 1), &after); });
  ASSERT_TRUE(Push(DensePush(0, 0, 1.0f)).ok());
  ASSERT_TRUE(Push(DensePush(1, 0, 3.0f)).ok());
  waiter.join();
  ASSERT_TRUE(pulled.ok()) << pulled.error_message();
  EXPECT_EQ(after.clock(), 1u);
  // w -= 0.5 * mean(1, 3).
  EXPECT_FLOAT_EQ(FloatAt(after.values(), 2), FloatAt(before.values(), 2) - 1.0f);
}

// PushPull buffers (SYNC) the push, then answers as the pull of the next clock: it
// waits for the other worker, and a retry after its deadline is a duplicate push and
// the same pull again.
TEST_F(ShardServiceTest, PushPullAnswersTheNextClocksPullOnceItIsApplied) {
  PullResponse before;
  ASSERT_TRUE(Pull(DensePull(0, 0), &before).ok());
  PushRequest first = DensePush(0, 0, 1.0f);
  *first.add_pull_slices() = DensePull(0, 1).slices(0);
  PullResponse resp;
  EXPECT_EQ(PushPull(first, &resp, 300).error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);

  PullResponse after0, after1;
  grpc::Status pulled0;
  std::thread retry([&] { pulled0 = PushPull(first, &after0); });
  PushRequest second = DensePush(1, 0, 3.0f);
  *second.add_pull_slices() = DensePull(1, 1).slices(0);
  ASSERT_TRUE(PushPull(second, &after1).ok());
  retry.join();
  ASSERT_TRUE(pulled0.ok()) << pulled0.error_message();
  EXPECT_EQ(after0.clock(), 1u);
  EXPECT_EQ(after1.clock(), 1u);
  EXPECT_EQ(after0.values(), after1.values());
  ASSERT_EQ(after0.values().size(), 6 * sizeof(float));
  for (uint64_t i = 0; i < 6; ++i) {
    // w -= 0.5 * mean(1, 3), applied once.
    EXPECT_FLOAT_EQ(FloatAt(after0.values(), i), FloatAt(before.values(), i) - 1.0f) << i;
  }
  const JobStats stats = Stats();
  EXPECT_EQ(stats.pushes_applied(), 2u);
  EXPECT_EQ(stats.pushes_duplicate(), 1u);
}

TEST_F(ShardServiceTest, WaitingPullEndsAtItsDeadline) {
  PullResponse resp;
  const auto start = std::chrono::steady_clock::now();
  grpc::Status s = Pull(DensePull(0, 1), &resp, 300);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  // The shard still serves.
  ASSERT_TRUE(Pull(DensePull(0, 0), &resp).ok());
}

TEST_F(ShardServiceTest, MalformedRequestsGetTheirErrorAndTheShardStillServes) {
  PullResponse good;
  ASSERT_TRUE(Pull(DensePull(0, 0), &good).ok());
  struct Case {
    const char* what;
    PushRequest req;
    grpc::StatusCode code;
    const char* needle;
  };
  std::vector<Case> cases;
  {
    PushRequest r = DensePush(0, 0, 1);
    r.set_job_id("nope");
    cases.push_back({"unknown job", r, grpc::StatusCode::NOT_FOUND, "job_id"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.mutable_slices(0)->set_table("nope");
    cases.push_back({"unknown table", r, grpc::StatusCode::NOT_FOUND, "slices[0].table"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.mutable_slices(0)->set_begin(3);
    cases.push_back({"range past the end", r, grpc::StatusCode::OUT_OF_RANGE, "slices[0].begin"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.set_values(r.values().substr(0, 10));
    cases.push_back({"short values", r, grpc::StatusCode::INVALID_ARGUMENT, "values"});
  }
  {
    PushRequest r = DensePush(0, 0, std::nanf(""));
    cases.push_back({"NaN gradient", r, grpc::StatusCode::INVALID_ARGUMENT, "NaN"});
  }
  {
    PushRequest r = DensePush(7, 0, 1);
    cases.push_back({"bad rank", r, grpc::StatusCode::INVALID_ARGUMENT, "rank"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.clear_slices();
    Slice* s = r.add_slices();
    s->set_table("emb");
    s->set_keys("12345");  // Not a multiple of 8 bytes.
    cases.push_back({"ragged keys", r, grpc::StatusCode::INVALID_ARGUMENT, "slices[0].keys"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.set_num_parts(0);
    cases.push_back({"zero parts", r, grpc::StatusCode::INVALID_ARGUMENT, "num_parts"});
  }
  {
    PushRequest r = DensePush(0, 5, 1);
    cases.push_back({"clock ahead", r, grpc::StatusCode::FAILED_PRECONDITION, "clock"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    r.set_encoding(static_cast<GradientEncoding>(7));
    cases.push_back({"unknown encoding", r, grpc::StatusCode::INVALID_ARGUMENT, "encoding"});
  }
  {
    PushRequest r = DensePush(0, 0, 1);  // 6 float32 read as 12 bfloat16.
    r.set_encoding(BFLOAT16);
    cases.push_back({"bfloat16 of the wrong length", r, grpc::StatusCode::INVALID_ARGUMENT,
                     "values: expected 6 bfloat16"});
  }
  for (const Case& c : cases) {
    grpc::Status s = Push(c.req);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos) << c.what << ": " << s.error_message();
    // The same push with a pull of the next clock: the same error.
    PushRequest with_pull = c.req;
    *with_pull.add_pull_slices() = DensePull(0, 1).slices(0);
    s = PushPull(with_pull);
    EXPECT_EQ(s.error_code(), c.code) << "PushPull, " << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos)
        << "PushPull, " << c.what << ": " << s.error_message();
  }
  // A good push with a bad pull half, or a pull half sent to Push: refused whole.
  std::vector<Case> pull_cases;
  {
    PushRequest r = DensePush(0, 0, 1);
    *r.add_pull_slices() = DensePull(0, 1).slices(0);
    r.mutable_pull_slices(0)->set_table("nope");
    pull_cases.push_back({"PushPull, unknown pull table", r, grpc::StatusCode::NOT_FOUND,
                          "pull_slices[0].table"});
    r.mutable_pull_slices(0)->set_table("w");
    r.mutable_pull_slices(0)->set_begin(1);
    pull_cases.push_back({"PushPull, pull range past the end", r, grpc::StatusCode::OUT_OF_RANGE,
                          "pull_slices[0].begin"});
    Slice ragged;
    ragged.set_table("emb");
    ragged.set_keys("12345");  // Not a multiple of 8 bytes.
    PushRequest sparse = r;
    *sparse.mutable_pull_slices(0) = ragged;
    pull_cases.push_back({"PushPull, ragged pull keys", sparse, grpc::StatusCode::INVALID_ARGUMENT,
                          "pull_slices[0].keys"});
    r.set_clock(~uint64_t{0});
    r.mutable_pull_slices(0)->set_begin(0);
    pull_cases.push_back({"PushPull of the last clock", r, grpc::StatusCode::INVALID_ARGUMENT,
                          "clock"});
  }
  for (const Case& c : pull_cases) {
    grpc::Status s = PushPull(c.req);
    EXPECT_EQ(s.error_code(), c.code) << c.what << ": " << s.error_message();
    EXPECT_NE(s.error_message().find(c.needle), std::string::npos)
        << c.what << ": " << s.error_message();
  }
  {
    PushRequest r = DensePush(0, 0, 1);
    *r.add_pull_slices() = DensePull(0, 1).slices(0);
    grpc::Status s = Push(r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_NE(s.error_message().find("pull_slices"), std::string::npos) << s.error_message();
  }
  // A sparse pull past the memory budget.
  PullRequest big;
  big.set_job_id("j1");
  Slice* s = big.add_slices();
  s->set_table("emb");
  std::vector<uint64_t> keys(200000);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = i;
  s->set_keys(PackKeys(keys));
  PullResponse resp;
  EXPECT_EQ(Pull(big, &resp).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // Bad table specs and job configs.
  CreateTableRequest t;
  t.set_job_id("j1");
  t.mutable_table()->set_name("bad/name");
  CreateTableResponse tr;
  grpc::ClientContext tctx;
  grpc::Status ts = stub_->CreateTable(&tctx, t, &tr);
  EXPECT_EQ(ts.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(ts.error_message().find("table.name"), std::string::npos);
  CreateJobRequest j;
  j.mutable_config()->set_job_id("j2");
  CreateJobResponse jr;
  grpc::ClientContext jctx;
  grpc::Status js = stub_->CreateJob(&jctx, j, &jr);
  EXPECT_EQ(js.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(js.error_message().find("config.num_workers"), std::string::npos);

  // Nothing was applied and a correct pull still works.
  PullResponse again;
  ASSERT_TRUE(Pull(DensePull(0, 0), &again).ok());
  EXPECT_EQ(again.values(), good.values());
  EXPECT_EQ(Stats().pushes_applied(), 0u);
}

TEST_F(ShardServiceTest, CheckpointRestoreAndListTables) {
  ASSERT_TRUE(Push(DensePush(0, 0, 1.0f)).ok());
  ASSERT_TRUE(Push(DensePush(1, 0, 1.0f)).ok());
  CheckpointRequest cr;
  cr.set_job_id("j1");
  CheckpointResponse ck;
  grpc::ClientContext cctx;
  ASSERT_TRUE(stub_->Checkpoint(&cctx, cr, &ck).ok());
  EXPECT_EQ(ck.clock(), 1u);
  EXPECT_GT(ck.bytes(), 24u);
  EXPECT_EQ(Stats().last_checkpoint_clock(), 1u);
  PullResponse at1;
  ASSERT_TRUE(Pull(DensePull(0, 1), &at1).ok());
  ASSERT_TRUE(Push(DensePush(0, 1, 5.0f)).ok());
  ASSERT_TRUE(Push(DensePush(1, 1, 5.0f)).ok());
  RestoreRequest rr;
  rr.set_job_id("j1");
  rr.set_clock(1);
  RestoreResponse rresp;
  grpc::ClientContext rctx;
  ASSERT_TRUE(stub_->Restore(&rctx, rr, &rresp).ok());
  PullResponse back;
  ASSERT_TRUE(Pull(DensePull(0, 1), &back).ok());
  EXPECT_EQ(back.values(), at1.values());
  rr.set_clock(99);
  grpc::ClientContext r2;
  EXPECT_EQ(stub_->Restore(&r2, rr, &rresp).error_code(), grpc::StatusCode::NOT_FOUND);

  ListTablesRequest lr;
  lr.set_job_id("j1");
  ListTablesResponse tables;
  grpc::ClientContext lctx;
  ASSERT_TRUE(stub_->ListTables(&lctx, lr, &tables).ok());
  ASSERT_EQ(tables.tables_size(), 2);
  EXPECT_EQ(tables.config().num_workers(), 2u);
}

// A job whose config has no total_clocks (as one restored from the checkpoint of a
// build without the field) is set up again by a worker that sends it: the same job,
// and it takes the last clock, so its final checkpoint is taken whatever the interval.
// Other differences are still refused, and so is another last clock once known.
TEST_F(ShardServiceTest, AJobThatDidNotKnowItsLastClockTakesItFromAWorker) {
  bool existed = false;
  auto create = [&](uint32_t workers, uint64_t total) {
    CreateJobRequest req;
    ShardJobConfig* c = req.mutable_config();
    c->set_job_id("old");
    c->set_seed(3);
    c->mutable_consistency()->set_mode(SYNC);
    c->set_num_workers(workers);
    c->set_num_shards(1);
    c->mutable_checkpoint()->set_interval_clocks(10);
    c->set_total_clocks(total);
    CreateJobResponse resp;
    grpc::ClientContext ctx;
    const grpc::Status s = stub_->CreateJob(&ctx, req, &resp);
    existed = resp.existed();
    return s;
  };
  ASSERT_TRUE(create(1, 0).ok());
  EXPECT_FALSE(existed);
  std::shared_ptr<ShardJob> job = *core_->FindJob("old");
  EXPECT_EQ(job->total_clocks(), 0u);
  const grpc::Status other = create(2, 3);
  EXPECT_EQ(other.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << other.error_message();
  EXPECT_EQ(job->total_clocks(), 0u);
  ASSERT_TRUE(create(1, 3).ok());
  EXPECT_TRUE(existed);
  EXPECT_EQ(job->total_clocks(), 3u);
  EXPECT_TRUE(create(1, 0).ok()) << "a worker that does not send it";
  EXPECT_TRUE(existed);
  const grpc::Status longer = create(1, 7);
  EXPECT_EQ(longer.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(longer.error_message().find("config.total_clocks"), std::string::npos)
      << longer.error_message();
  EXPECT_EQ(job->total_clocks(), 3u);

  CreateTableRequest t;
  t.set_job_id("old");
  TableSpec* spec = t.mutable_table();
  spec->set_name("w");
  spec->set_kind(TableSpec::DENSE);
  spec->set_size(6);
  spec->mutable_optimizer()->mutable_sgd();
  spec->mutable_optimizer()->set_learning_rate(0.5f);
  CreateTableResponse tr;
  grpc::ClientContext tctx;
  ASSERT_TRUE(stub_->CreateTable(&tctx, t, &tr).ok());
  for (uint64_t clock = 0; clock < 3; ++clock) {
    PushRequest push = DensePush(0, clock, 1.0f);
    push.set_job_id("old");
    ASSERT_TRUE(Push(push).ok()) << clock;
  }
  // Checkpoints are written by the shard's writer thread.
  uint64_t newest = 0;
  for (int i = 0; i < 500 && newest != 3; ++i) {
    newest = Stats("old").last_checkpoint_clock();
    if (newest != 3) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(newest, 3u) << "the last clock was not checkpointed (interval 10)";

  // A shard restarted from that checkpoint knows the last clock: the checkpoint
  // recorded the config that said it.
  job.reset();
  server_->Shutdown();
  core_->CloseAll();
  core_.reset();
  ShardCore::Options o;
  o.data_dir = dir_;
  UseProtoConfigs(&o);
  absl::StatusOr<std::unique_ptr<ShardCore>> restarted = ShardCore::Open(o);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  core_ = *std::move(restarted);
  absl::StatusOr<std::shared_ptr<ShardJob>> loaded = core_->FindJob("old");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->total_clocks(), 3u);
}

}  // namespace
}  // namespace ps
