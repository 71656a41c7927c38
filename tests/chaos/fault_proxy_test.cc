// The fault proxy in front of real ps_server processes: each fault does to a push what
// it claims (applied or not, seen by the client or not), the shard's exactly-once
// pushes make retries harmless, and a SYNC job through the real PS client at 20 %
// faults ends bitwise equal to one without the proxy.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/packing.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/shard.grpc.pb.h"
#include "tests/chaos/fault_proxy.h"
#include "tests/util/subprocess.h"
#include "worker/grpc_ps_client.h"

namespace ps::chaos {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

constexpr char kPush[] = "/ps.ShardService/Push";
constexpr char kPull[] = "/ps.ShardService/Pull";
constexpr char kGetStats[] = "/ps.ShardService/GetStats";

std::string TestDir() {
  const std::string dir = absl::StrCat(
      std::getenv("TEST_TMPDIR"), "/",
      ::testing::UnitTest::GetInstance()->current_test_info()->name());
  return dir;
}

// A real shard process.
std::unique_ptr<Daemon> StartShard(const std::string& dir, int shard_id = 0, int num_shards = 1,
                                   std::vector<std::string> extra = {}) {
  auto d = std::make_unique<Daemon>();
  std::vector<std::string> argv = {Runfile("server/ps_server"), "--port=0",
                                   absl::StrCat("--shard_id=", shard_id),
                                   absl::StrCat("--num_shards=", num_shards),
                                   "--data_dir=" + dir};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const absl::Status s = d->Start(argv, dir + ".log");
  EXPECT_TRUE(s.ok()) << s;
  return d;
}

std::unique_ptr<ShardService::Stub> StubTo(const std::string& address) {
  return ShardService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

std::unique_ptr<FaultProxy> StartProxy(const std::string& target, FaultRates rates,
                                       std::vector<std::string> methods = {},
                                       absl::Duration delay = absl::Seconds(1)) {
  FaultProxy::Options o;
  o.target = target;
  o.rates = rates;
  o.methods = std::move(methods);
  o.delay = delay;
  o.seed = 7;
  absl::StatusOr<std::unique_ptr<FaultProxy>> p = FaultProxy::Start(std::move(o));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

constexpr uint64_t kSize = 1000;

// A SYNC job of one worker with one dense table "w" (SGD).
void SetUpJob(ShardService::Stub* stub, const std::string& job) {
  CreateJobRequest req;
  ShardJobConfig* c = req.mutable_config();
  c->set_job_id(job);
  c->set_seed(3);
  c->mutable_consistency()->set_mode(SYNC);
  c->set_num_workers(1);
  c->set_num_shards(1);
  CreateJobResponse resp;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->CreateJob(&ctx, req, &resp).ok());
  CreateTableRequest t;
  t.set_job_id(job);
  TableSpec* s = t.mutable_table();
  s->set_name("w");
  s->set_kind(TableSpec::DENSE);
  s->set_size(kSize);
  s->mutable_init()->set_kind(Initializer::NORMAL);
  s->mutable_init()->set_scale(0.1f);
  s->mutable_optimizer()->set_learning_rate(0.5f);
  s->mutable_optimizer()->mutable_sgd();
  CreateTableResponse tr;
  grpc::ClientContext tctx;
  ASSERT_TRUE(stub->CreateTable(&tctx, t, &tr).ok());
}

PushRequest MakePush(const std::string& job, uint64_t clock) {
  PushRequest push;
  push.set_job_id(job);
  push.set_clock(clock);
  push.set_num_parts(1);
  Slice* s = push.add_slices();
  s->set_table("w");
  s->set_count(kSize);
  std::vector<float> g(kSize);
  for (size_t i = 0; i < g.size(); ++i) g[i] = 0.01f * static_cast<float>((i + clock) % 13);
  push.set_values(PackFloats(g));
  return push;
}

grpc::Status Push(ShardService::Stub* stub, const PushRequest& req, PushResponse* resp,
                  absl::Duration timeout = absl::Seconds(10)) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return stub->Push(&ctx, req, resp);
}

JobStats Stats(ShardService::Stub* stub, const std::string& job) {
  GetStatsRequest req;
  req.set_job_id(job);
  req.set_with_digest(true);
  GetStatsResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = stub->GetStats(&ctx, req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return resp.jobs_size() == 1 ? resp.jobs(0) : JobStats();
}

// Every value of "w", read without waiting.
std::string ReadAll(ShardService::Stub* stub, const std::string& job) {
  PullRequest pull;
  pull.set_job_id(job);
  pull.set_no_wait(true);
  Slice* s = pull.add_slices();
  s->set_table("w");
  s->set_count(kSize);
  PullResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status st = stub->Pull(&ctx, pull, &resp);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return resp.values();
}

TEST(FaultProxyTest, WithoutFaultsEveryCallPassesByteIdentically) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  std::unique_ptr<FaultProxy> proxy = StartProxy(shard->address(), FaultRates());
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());

  SetUpJob(via.get(), "job");
  PushResponse pushed;
  ASSERT_TRUE(Push(via.get(), MakePush("job", 0), &pushed).ok());
  EXPECT_EQ(pushed.clock(), 1u);
  EXPECT_FALSE(pushed.duplicate());
  // The same values through the proxy and directly.
  const std::string values = ReadAll(direct.get(), "job");
  ASSERT_EQ(values.size(), kSize * 4);
  EXPECT_EQ(ReadAll(via.get(), "job"), values);
  // Errors pass unchanged: code and message.
  PushResponse bad;
  const grpc::Status a = Push(direct.get(), MakePush("nope", 0), &bad);
  const grpc::Status b = Push(via.get(), MakePush("nope", 0), &bad);
  EXPECT_EQ(a.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(b.error_code(), a.error_code());
  EXPECT_EQ(b.error_message(), a.error_message());

  const FaultStats stats = proxy->stats();
  EXPECT_EQ(stats.total.faults(), 0u);
  EXPECT_EQ(stats.Of(kPush).calls, 2u);
  EXPECT_EQ(stats.Of(kPush).passed, 2u);
  EXPECT_EQ(stats.Of(kPull).calls, 1u);
  EXPECT_EQ(stats.Of("/ps.ShardService/CreateJob").calls, 1u);
  EXPECT_EQ(stats.total.calls, stats.total.passed);
  EXPECT_EQ(stats.total.calls, 5u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, DroppedReplyIsAppliedOnceAndTheRetryIsADuplicate) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  FaultRates rates;
  rates.drop_reply = 1.0;
  std::unique_ptr<FaultProxy> proxy = StartProxy(shard->address(), rates, {kPush});
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());
  SetUpJob(via.get(), "job");  // Not a push: passes.
  const std::string before = ReadAll(direct.get(), "job");

  const PushRequest push = MakePush("job", 0);
  PushResponse resp;
  const grpc::Status s = Push(via.get(), push, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  // Yet the shard applied it.
  JobStats st = Stats(direct.get(), "job");
  EXPECT_EQ(st.clock(), 1u);
  EXPECT_EQ(st.pushes_applied(), 1u);
  const std::string after = ReadAll(direct.get(), "job");
  EXPECT_NE(after, before);
  // The client's retry of the same push is acknowledged as a duplicate, not applied.
  ASSERT_TRUE(proxy->SetRates(FaultRates()).ok());
  ASSERT_TRUE(Push(via.get(), push, &resp).ok());
  EXPECT_TRUE(resp.duplicate());
  st = Stats(direct.get(), "job");
  EXPECT_EQ(st.pushes_applied(), 1u);
  EXPECT_EQ(st.pushes_duplicate(), 1u);
  EXPECT_EQ(ReadAll(direct.get(), "job"), after);

  const FaultStats stats = proxy->stats();
  EXPECT_EQ(stats.Of(kPush).dropped_reply, 1u);
  EXPECT_EQ(stats.Of(kPush).passed, 1u);
  EXPECT_EQ(stats.total.dropped_reply, 1u);
  EXPECT_EQ(stats.total.dropped_request + stats.total.delayed, 0u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, DroppedRequestNeverReachesTheShard) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  FaultRates rates;
  rates.drop_request = 1.0;
  std::unique_ptr<FaultProxy> proxy = StartProxy(shard->address(), rates, {kPush});
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());
  SetUpJob(via.get(), "job");
  const std::string before = ReadAll(direct.get(), "job");
  PushResponse resp;
  for (int i = 0; i < 3; ++i) {
    const grpc::Status s = Push(via.get(), MakePush("job", 0), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  }
  const JobStats st = Stats(direct.get(), "job");
  EXPECT_EQ(st.clock(), 0u);
  EXPECT_EQ(st.pushes_applied() + st.pushes_duplicate(), 0u);
  EXPECT_EQ(ReadAll(direct.get(), "job"), before);
  EXPECT_EQ(proxy->stats().Of(kPush).dropped_request, 3u);
  EXPECT_EQ(proxy->stats().Of(kPush).passed, 0u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, DelayedCallTimesOutThenArrivesLate) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  FaultRates rates;
  rates.delay = 1.0;
  std::unique_ptr<FaultProxy> proxy =
      StartProxy(shard->address(), rates, {kPush}, absl::Milliseconds(800));
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());
  SetUpJob(via.get(), "job");

  const PushRequest push = MakePush("job", 0);
  PushResponse resp;
  const absl::Time start = absl::Now();
  const grpc::Status s = Push(via.get(), push, &resp, absl::Milliseconds(200));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(700));
  EXPECT_EQ(Stats(direct.get(), "job").pushes_applied(), 0u);  // Still held.
  // The late call reaches the shard after the client gave up.
  ASSERT_TRUE(proxy->WaitForLateCalls(absl::Seconds(20)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(800));
  JobStats st = Stats(direct.get(), "job");
  EXPECT_EQ(st.pushes_applied(), 1u);
  EXPECT_EQ(st.clock(), 1u);
  // The client's retry, directly: a duplicate.
  ASSERT_TRUE(Push(direct.get(), push, &resp).ok());
  EXPECT_TRUE(resp.duplicate());
  EXPECT_EQ(Stats(direct.get(), "job").pushes_applied(), 1u);

  const FaultStats stats = proxy->stats();
  EXPECT_EQ(stats.Of(kPush).delayed, 1u);
  EXPECT_EQ(stats.Of(kPush).late_delivered, 1u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, DelayedRetryArrivingAfterTheRetryIsADuplicate) {
  // The retry goes first (directly), the held original arrives after it.
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  FaultRates rates;
  rates.delay = 1.0;
  std::unique_ptr<FaultProxy> proxy =
      StartProxy(shard->address(), rates, {kPush}, absl::Milliseconds(600));
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());
  SetUpJob(direct.get(), "job");
  const PushRequest push = MakePush("job", 0);
  PushResponse resp;
  EXPECT_EQ(Push(via.get(), push, &resp, absl::Milliseconds(100)).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(Push(direct.get(), push, &resp).ok());
  EXPECT_FALSE(resp.duplicate());
  ASSERT_TRUE(proxy->WaitForLateCalls(absl::Seconds(20)));
  const JobStats st = Stats(direct.get(), "job");
  EXPECT_EQ(st.pushes_applied(), 1u);
  EXPECT_EQ(st.pushes_duplicate(), 1u);  // The late original.
  EXPECT_EQ(proxy->stats().Of(kPush).late_delivered, 1u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, SameSeedGivesTheSameFaults) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  auto direct = StubTo(shard->address());
  SetUpJob(direct.get(), "job");
  FaultRates rates;
  rates.drop_request = 0.25;
  rates.drop_reply = 0.25;
  std::vector<std::string> runs[2];
  for (auto& run : runs) {
    std::unique_ptr<FaultProxy> proxy = StartProxy(shard->address(), rates, {kGetStats});
    ASSERT_NE(proxy, nullptr);
    auto via = StubTo(proxy->address());
    for (int i = 0; i < 40; ++i) {
      GetStatsRequest req;
      GetStatsResponse resp;
      grpc::ClientContext ctx;
      const grpc::Status s = via->GetStats(&ctx, req, &resp);
      run.push_back(s.ok() ? "ok" : s.error_message());
    }
    const FaultCounts c = proxy->stats().Of(kGetStats);
    EXPECT_EQ(c.calls, 40u);
    EXPECT_EQ(c.passed + c.dropped_request + c.dropped_reply, 40u);
    EXPECT_GT(c.dropped_request, 0u);
    EXPECT_GT(c.dropped_reply, 0u);
    EXPECT_GT(c.passed, 0u);
  }
  EXPECT_EQ(runs[0], runs[1]);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, TargetSetLaterAndOptionsAreChecked) {
  FaultProxy::Options o;
  o.rates.delay = 1.5;
  absl::StatusOr<std::unique_ptr<FaultProxy>> bad = FaultProxy::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("rates.delay"), std::string::npos) << bad.status();
  o.rates = FaultRates{0.5, 0.4, 0.3};
  bad = FaultProxy::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("rates"), std::string::npos) << bad.status();
  o.rates = FaultRates();
  o.target = "no-port";
  bad = FaultProxy::Start(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("target"), std::string::npos) << bad.status();

  // No target yet: UNAVAILABLE; once set, calls pass.
  o.target.clear();
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  auto via = StubTo((*proxy)->address());
  GetStatsRequest req;
  GetStatsResponse resp;
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(via->GetStats(&ctx, req, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  EXPECT_EQ((*proxy)->SetTarget("bad").code(), absl::StatusCode::kInvalidArgument);
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  ASSERT_TRUE((*proxy)->SetTarget(shard->address()).ok());
  {
    grpc::ClientContext ctx;
    EXPECT_TRUE(via->GetStats(&ctx, req, &resp).ok());
  }
  const FaultCounts c = (*proxy)->stats().Of(kGetStats);
  EXPECT_EQ(c.calls, 2u);
  EXPECT_EQ(c.no_target, 1u);
  EXPECT_EQ(c.passed, 1u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, ShutdownEndsHeldAndWaitingCallsAtOnce) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  FaultRates rates;
  rates.delay = 1.0;
  std::unique_ptr<FaultProxy> proxy =
      StartProxy(shard->address(), rates, {kPush}, absl::Seconds(30));
  ASSERT_NE(proxy, nullptr);
  auto direct = StubTo(shard->address());
  auto via = StubTo(proxy->address());
  SetUpJob(direct.get(), "job");
  grpc::Status push_status, pull_status;
  std::thread pusher([&] {
    PushResponse resp;
    push_status = Push(via.get(), MakePush("job", 0), &resp, absl::Seconds(60));
  });
  std::thread puller([&] {
    PullRequest pull;  // Clock 1 waits at the shard until clock 0 is applied.
    pull.set_job_id("job");
    pull.set_clock(1);
    Slice* sl = pull.add_slices();
    sl->set_table("w");
    sl->set_count(kSize);
    PullResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    pull_status = via->Pull(&ctx, pull, &resp);
  });
  // Both calls have reached the proxy.
  for (int i = 0; i < 200 && (proxy->stats().Of(kPush).calls == 0 ||
                              proxy->stats().Of(kPull).calls == 0);
       ++i) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  absl::SleepFor(absl::Milliseconds(200));  // Let the pull reach the shard and wait.
  const absl::Time start = absl::Now();
  proxy->Shutdown();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  pusher.join();
  puller.join();
  std::printf("shutdown and both calls ended in %.0f ms: push %d, pull %d\n",
              absl::ToDoubleMilliseconds(absl::Now() - start),
              static_cast<int>(push_status.error_code()),
              static_cast<int>(pull_status.error_code()));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_FALSE(push_status.ok());
  EXPECT_FALSE(pull_status.ok());
  EXPECT_TRUE(proxy->WaitForLateCalls(absl::ZeroDuration()));
  // The held push was dropped, never forwarded.
  EXPECT_EQ(Stats(direct.get(), "job").pushes_applied(), 0u);
  EXPECT_EQ(proxy->stats().Of(kPush).late_delivered, 0u);
  shard->Kill(SIGTERM);
}

// A server-streaming call of another service (the health service's Watch), raw bytes.
TEST(FaultProxyTest, ForwardsServerStreamingCallsOfAnyService) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  std::unique_ptr<FaultProxy> proxy = StartProxy(shard->address(), FaultRates());
  ASSERT_NE(proxy, nullptr);
  grpc::GenericStub stub(
      grpc::CreateChannel(proxy->address(), grpc::InsecureChannelCredentials()));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call =
      stub.PrepareCall(&ctx, "/grpc.health.v1.Health/Watch", &cq);
  auto step = [&cq](intptr_t want) {
    void* tag = nullptr;
    bool ok = false;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), want);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  grpc::ByteBuffer empty;  // HealthCheckRequest{service: ""}: no bytes.
  grpc::Slice none("", 0);
  empty = grpc::ByteBuffer(&none, 1);
  call->Write(empty, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  grpc::ByteBuffer got;
  call->Read(&got, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(got.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING.
  ctx.TryCancel();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  cq.Shutdown();
  void* tag;
  bool ok;
  while (cq.Next(&tag, &ok)) {
  }
  EXPECT_EQ(proxy->stats().Of("/grpc.health.v1.Health/Watch").passed, 1u);
  shard->Kill(SIGTERM);
}

TEST(FaultProxyTest, RunsAsAProcess) {
  const std::string dir = TestDir();
  std::unique_ptr<Daemon> shard = StartShard(dir);
  Daemon proxy;
  ASSERT_TRUE(proxy
                  .Start({Runfile("tests/chaos/fault_proxy_main"), "--listen_port=0",
                          "--target=" + shard->address(), "--drop_request=1",
                          "--methods=/ps.ShardService/Push"},
                         dir + ".proxy.log")
                  .ok());
  auto via = StubTo(proxy.address());
  SetUpJob(via.get(), "job");
  PushResponse resp;
  EXPECT_EQ(Push(via.get(), MakePush("job", 0), &resp).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Stats(via.get(), "job").clock(), 0u);
  const int status = proxy.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  shard->Kill(SIGTERM);
}

// Managed mode: the shard registers the proxy's address with the coordinator.
TEST(FaultProxyTest, ShardAdvertisesTheProxyToTheCoordinator) {
  const std::string dir = TestDir();
  ::mkdir(dir.c_str(), 0755);
  Daemon coordinator;
  ASSERT_TRUE(coordinator
                  .Start({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                          "--data_dir=" + dir + "/coord",
                          "--data_root=" + ps::testing::SourceRoot("tests/data/digits.csv.gz"),
                          "--num_shards=1"},
                         dir + ".coordinator.log")
                  .ok());
  std::unique_ptr<FaultProxy> proxy = StartProxy("", FaultRates());
  ASSERT_NE(proxy, nullptr);
  std::unique_ptr<Daemon> shard =
      StartShard(dir + "/shard", 0, 1,
                 {"--coordinator=" + coordinator.address(),
                  "--advertise_address=" + proxy->address()});
  ASSERT_TRUE(proxy->SetTarget(shard->address()).ok());
  std::string out;
  bool found = false;
  for (int i = 0; i < 100 && !found; ++i) {
    ps::testing::RunCommand(
        {Runfile("client/psctl"), "--coordinator=" + coordinator.address(), "cluster", "--json"},
        &out, dir + ".psctl.log");
    found = out.find("\"address\":\"" + proxy->address() + "\"") != std::string::npos;
    if (!found) absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(found) << out;
  EXPECT_EQ(out.find(shard->address()), std::string::npos) << out;
  auto via = StubTo(proxy->address());
  GetStatsRequest req;
  GetStatsResponse resp;
  grpc::ClientContext ctx;
  EXPECT_TRUE(via->GetStats(&ctx, req, &resp).ok());
  shard->Kill(SIGTERM);
  coordinator.Kill(SIGTERM);
}

// A SYNC job of 2 workers over 2 shards, 50 clocks, through the real PS client: with
// 20 % of the calls dropped (request or reply) or delayed past the client's deadline,
// the weights end bitwise equal to those of the same job without the proxies.
constexpr uint64_t kDenseSize = 3000;
constexpr uint64_t kSparseDim = 4;
constexpr int kWorkers = 2;
constexpr int kClocks = 50;

absl::Status TrainSync(PsClient* client, const std::string& job) {
  ShardJobConfig config;
  config.set_job_id(job);
  config.set_seed(5);
  config.mutable_consistency()->set_mode(SYNC);
  config.set_num_workers(kWorkers);
  TableSpec dense;
  dense.set_name("w");
  dense.set_kind(TableSpec::DENSE);
  dense.set_size(kDenseSize);
  dense.mutable_init()->set_kind(Initializer::NORMAL);
  dense.mutable_init()->set_scale(0.1f);
  dense.mutable_optimizer()->set_learning_rate(0.05f);
  dense.mutable_optimizer()->mutable_adam();
  TableSpec sparse;
  sparse.set_name("emb");
  sparse.set_kind(TableSpec::SPARSE);
  sparse.set_dim(kSparseDim);
  sparse.mutable_init()->set_kind(Initializer::NORMAL);
  sparse.mutable_init()->set_scale(0.1f);
  sparse.mutable_optimizer()->set_learning_rate(0.1f);
  sparse.mutable_optimizer()->mutable_adagrad();
  absl::StatusOr<uint64_t> setup = client->SetupJob(config, {dense, sparse});
  if (!setup.ok()) return setup.status();
  std::vector<absl::Status> results(kWorkers);
  std::vector<std::thread> workers;
  for (int rank = 0; rank < kWorkers; ++rank) {
    workers.emplace_back([&, rank] {
      std::vector<float> w(kDenseSize), gw(kDenseSize);
      for (uint64_t clock = 0; clock < kClocks; ++clock) {
        std::vector<uint64_t> keys = {clock % 7, static_cast<uint64_t>(100 + rank), 1000 + clock};
        std::vector<float> e(keys.size() * kSparseDim), ge(e.size());
        DenseRef d{"w", 0, kDenseSize, w.data()};
        SparseRef s{"emb", keys.data(), keys.size(), kSparseDim, e.data()};
        absl::Status st = client->Pull(job, rank, clock, {d}, {s});
        if (!st.ok()) {
          results[rank] = st;
          return;
        }
        // Gradients depend on the pulled weights: a stale or doubled step shows.
        for (uint64_t i = 0; i < kDenseSize; ++i) {
          gw[i] = w[i] * 0.5f + 0.001f * static_cast<float>((i * 7 + clock + rank) % 17) - 0.008f;
        }
        for (size_t i = 0; i < e.size(); ++i) ge[i] = e[i] - 0.01f * static_cast<float>(rank);
        DenseRef pd{"w", 0, kDenseSize, gw.data()};
        SparseRef ps{"emb", keys.data(), keys.size(), kSparseDim, ge.data()};
        st = client->Push(job, rank, clock, {pd}, {ps});
        if (!st.ok()) {
          results[rank] = st;
          return;
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  for (const absl::Status& s : results) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::vector<float> ReadWeights(PsClient* client, const std::string& job) {
  std::vector<float> w(kDenseSize);
  std::vector<uint64_t> keys;
  for (uint64_t k = 0; k < 7; ++k) keys.push_back(k);
  for (uint64_t k = 100; k < 100 + kWorkers; ++k) keys.push_back(k);
  for (uint64_t k = 1000; k < 1000 + kClocks; ++k) keys.push_back(k);
  std::vector<float> e(keys.size() * kSparseDim);
  DenseRef d{"w", 0, kDenseSize, w.data()};
  SparseRef s{"emb", keys.data(), keys.size(), kSparseDim, e.data()};
  absl::StatusOr<uint64_t> clock = client->Read(job, {d}, {s});
  EXPECT_TRUE(clock.ok()) << clock.status();
  if (clock.ok()) {
    EXPECT_EQ(*clock, static_cast<uint64_t>(kClocks));
  }
  w.insert(w.end(), e.begin(), e.end());
  return w;
}

TEST(FaultProxyTest, SyncJobThroughTwentyPercentFaultsEndsBitwiseEqual) {
  const std::string dir = TestDir();
  std::vector<std::unique_ptr<Daemon>> shards;
  std::vector<std::unique_ptr<FaultProxy>> proxies;
  std::vector<std::string> direct_addresses, proxy_addresses;
  for (int i = 0; i < 2; ++i) {
    shards.push_back(StartShard(absl::StrCat(dir, "/shard", i), i, 2));
    direct_addresses.push_back(shards.back()->address());
    FaultProxy::Options o;
    o.target = shards.back()->address();
    o.rates = FaultRates{0.08, 0.06, 0.06};
    o.delay = absl::Milliseconds(700);  // Past the client's 400 ms deadline.
    o.seed = 100 + i;
    absl::StatusOr<std::unique_ptr<FaultProxy>> p = FaultProxy::Start(o);
    ASSERT_TRUE(p.ok()) << p.status();
    proxy_addresses.push_back((*p)->address());
    proxies.push_back(*std::move(p));
  }
  GrpcPsClient::Options options;
  options.chunk_bytes = 4096;  // Several parts per shard and push.
  options.rpc_timeout = absl::Milliseconds(400);
  options.max_attempts = 40;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(100);
  absl::StatusOr<std::unique_ptr<GrpcPsClient>> direct =
      GrpcPsClient::Connect(direct_addresses, options);
  ASSERT_TRUE(direct.ok()) << direct.status();
  absl::StatusOr<std::unique_ptr<GrpcPsClient>> faulty =
      GrpcPsClient::Connect(proxy_addresses, options);
  ASSERT_TRUE(faulty.ok()) << faulty.status();

  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(TrainSync(direct->get(), "clean").ok());
  const absl::Time t1 = absl::Now();
  const absl::Status s = TrainSync(faulty->get(), "chaos");
  ASSERT_TRUE(s.ok()) << s;
  const absl::Time t2 = absl::Now();
  for (auto& p : proxies) ASSERT_TRUE(p->WaitForLateCalls(absl::Seconds(60)));

  const std::vector<float> clean = ReadWeights(direct->get(), "clean");
  const std::vector<float> chaos = ReadWeights(direct->get(), "chaos");
  ASSERT_EQ(clean.size(), chaos.size());
  EXPECT_EQ(0, std::memcmp(clean.data(), chaos.data(), clean.size() * sizeof(float)));
  absl::StatusOr<std::vector<ShardJobStats>> a = (*direct)->GetStats("clean", true);
  absl::StatusOr<std::vector<ShardJobStats>> b = (*direct)->GetStats("chaos", true);
  ASSERT_TRUE(a.ok() && b.ok());
  uint64_t duplicates = 0;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ((*a)[i].state_digest, (*b)[i].state_digest) << "shard " << i;
    EXPECT_EQ((*a)[i].pushes_applied, (*b)[i].pushes_applied) << "shard " << i;
    EXPECT_EQ((*b)[i].clock, static_cast<uint64_t>(kClocks));
    duplicates += (*b)[i].pushes_duplicate;
  }
  FaultCounts total;
  for (auto& p : proxies) {
    const FaultCounts c = p->stats().total;
    total.calls += c.calls;
    total.dropped_request += c.dropped_request;
    total.dropped_reply += c.dropped_reply;
    total.delayed += c.delayed;
    total.late_delivered += c.late_delivered;
  }
  std::printf(
      "clean run %.1f s, chaos run %.1f s; %lu calls through the proxies: %lu requests "
      "dropped, %lu replies dropped, %lu delayed (%lu delivered late); %lu duplicate "
      "pushes acknowledged\n",
      absl::ToDoubleSeconds(t1 - t0), absl::ToDoubleSeconds(t2 - t1),
      static_cast<unsigned long>(total.calls), static_cast<unsigned long>(total.dropped_request),
      static_cast<unsigned long>(total.dropped_reply), static_cast<unsigned long>(total.delayed),
      static_cast<unsigned long>(total.late_delivered), static_cast<unsigned long>(duplicates));
  EXPECT_GT(total.dropped_request, 0u);
  EXPECT_GT(total.dropped_reply, 0u);
  EXPECT_GT(total.delayed, 0u);
  EXPECT_GT(duplicates, 0u);  // Dropped replies and late calls were deduplicated.
  // Around 20 % of the calls got a fault.
  const double share =
      static_cast<double>(total.dropped_request + total.dropped_reply + total.delayed) /
      static_cast<double>(total.calls);
  EXPECT_GT(share, 0.1);
  EXPECT_LT(share, 0.3);
  for (auto& d : shards) d->Kill(SIGTERM);
}

}  // namespace
}  // namespace ps::chaos
