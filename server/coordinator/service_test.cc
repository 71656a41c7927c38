// The real service over real gRPC on 127.0.0.1: fake daemons (plain stubs) register,
// heartbeat, get assignments and report; WatchJob streams until the end.
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "server/coordinator/server.h"

namespace ps {
namespace {

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ::mkdir(dir_.c_str(), 0755);
    std::ofstream(dir_ + "/train.csv") << "1,2,0\n";
    CoordinatorServerOptions o;
    o.data_dir = dir_ + "/db";
    o.coordinator.num_shards = 1;
    o.coordinator.heartbeat_interval_ms = 100;
    o.coordinator.heartbeat_timeout_ms = 5000;
    o.coordinator.data_root = dir_;
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
    channel_ = grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = CoordinatorService::NewStub(channel_);
  }

  JobSpec Spec(uint32_t workers) {
    JobSpec spec;
    spec.mutable_model()->mutable_softmax();
    spec.mutable_data()->set_format(CSV);
    spec.mutable_data()->set_train_path("train.csv");
    spec.mutable_data()->set_num_features(2);
    spec.mutable_data()->set_num_classes(2);
    spec.mutable_optimizer()->mutable_sgd();
    spec.mutable_optimizer()->set_learning_rate(0.5f);
    spec.mutable_consistency()->set_mode(ASYNC);
    spec.set_num_workers(workers);
    spec.set_batch_size(4);
    spec.set_epochs(1);
    return spec;
  }

  std::string Submit(uint32_t workers) {
    grpc::ClientContext ctx;
    SubmitJobRequest req;
    *req.mutable_spec() = Spec(workers);
    SubmitJobResponse resp;
    const grpc::Status s = stub_->SubmitJob(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job_id();
  }

  std::string Register(Role role, uint64_t incarnation) {
    grpc::ClientContext ctx;
    RegisterRequest req;
    req.mutable_member()->set_role(role);
    req.mutable_member()->set_incarnation(incarnation);
    if (role == SHARD) req.mutable_member()->set_address("127.0.0.1:1");
    if (role == WORKER) req.mutable_member()->set_device("cpu");
    RegisterResponse resp;
    const grpc::Status s = stub_->Register(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(resp.heartbeat_interval_ms(), 100u);
    return resp.member_id();
  }

  grpc::Status Beat(const std::string& id, uint64_t incarnation, HeartbeatResponse* resp) {
    grpc::ClientContext ctx;
    HeartbeatRequest req;
    req.set_member_id(id);
    req.set_incarnation(incarnation);
    return stub_->Heartbeat(&ctx, req, resp);
  }

  bool Report(const std::string& job, uint64_t clock, bool finished) {
    grpc::ClientContext ctx;
    ProgressReport req;
    req.set_job_id(job);
    req.set_clock(clock);
    req.set_total_clocks(20);
    req.set_finished(finished);
    if (finished) req.mutable_eval()->set_accuracy(0.9);
    ReportProgressResponse resp;
    const grpc::Status s = stub_->ReportProgress(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.cancel();
  }

  std::string dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<CoordinatorService::Stub> stub_;
};

TEST_F(ServiceTest, DaemonsGetAssignmentsAndWatchersSeeTheEnd) {
  const std::string shard = Register(SHARD, 1);
  const std::string worker = Register(WORKER, 2);
  const std::string job = Submit(1);
  HeartbeatResponse hb;
  ASSERT_TRUE(Beat(worker, 2, &hb).ok());
  ASSERT_EQ(hb.assignments_size(), 1);
  EXPECT_EQ(hb.assignments(0).job_id(), job);
  EXPECT_EQ(hb.assignments(0).shard_addresses(0), "127.0.0.1:1");

  grpc::ClientContext watch_ctx;
  WatchJobRequest wreq;
  wreq.set_job_id(job);
  std::unique_ptr<grpc::ClientReader<JobStatus>> reader = stub_->WatchJob(&watch_ctx, wreq);
  JobStatus first;
  ASSERT_TRUE(reader->Read(&first));
  EXPECT_EQ(first.state(), RUNNING);

  const absl::Time start = absl::Now();
  std::thread reporter([&] {
    for (uint64_t c = 1; c < 20; ++c) EXPECT_FALSE(Report(job, c, false));
    EXPECT_FALSE(Report(job, 20, true));
  });
  std::vector<JobStatus> seen;
  JobStatus st;
  while (reader->Read(&st)) seen.push_back(st);
  const grpc::Status end = reader->Finish();
  const absl::Duration took = absl::Now() - start;
  reporter.join();
  EXPECT_TRUE(end.ok()) << end.error_message();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().state(), SUCCEEDED);
  EXPECT_EQ(seen.back().clock(), 20u);
  EXPECT_EQ(seen.back().total_clocks(), 20u);
  EXPECT_DOUBLE_EQ(seen.back().eval().accuracy(), 0.9);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_GE(seen[i].clock(), seen[i - 1].clock());
  // At most ~10 per second (plus the first and some slack).
  EXPECT_LE(seen.size(), 3 + static_cast<size_t>(absl::ToInt64Milliseconds(took) / 100))
      << "took " << took;
  // Reports after the end are answered cancel.
  EXPECT_TRUE(Report(job, 21, false));
  // A watch of a finished job: one status, then OK.
  grpc::ClientContext again;
  auto reader2 = stub_->WatchJob(&again, wreq);
  ASSERT_TRUE(reader2->Read(&st));
  EXPECT_EQ(st.state(), SUCCEEDED);
  EXPECT_FALSE(reader2->Read(&st));
  EXPECT_TRUE(reader2->Finish().ok());
}

TEST_F(ServiceTest, StatusCodesCrossTheWire) {
  HeartbeatResponse hb;
  EXPECT_EQ(Beat("worker-9.9", 1, &hb).error_code(), grpc::StatusCode::NOT_FOUND);
  grpc::ClientContext ctx;
  SubmitJobRequest req;
  *req.mutable_spec() = Spec(0);
  SubmitJobResponse resp;
  const grpc::Status s = stub_->SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("spec.num_workers:", 0), 0u) << s.error_message();

  grpc::ClientContext wctx;
  WatchJobRequest wreq;
  wreq.set_job_id("job-424242");
  auto reader = stub_->WatchJob(&wctx, wreq);
  JobStatus st;
  EXPECT_FALSE(reader->Read(&st));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);

  grpc::ClientContext cctx;
  CancelJobRequest creq;
  creq.set_job_id("job-424242");
  CancelJobResponse cresp;
  EXPECT_EQ(stub_->CancelJob(&cctx, creq, &cresp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServiceTest, ClientCancelsAWatch) {
  const std::string job = Submit(1);  // Stays PENDING: no daemons.
  grpc::ClientContext ctx;
  WatchJobRequest req;
  req.set_job_id(job);
  auto reader = stub_->WatchJob(&ctx, req);
  JobStatus st;
  ASSERT_TRUE(reader->Read(&st));
  EXPECT_EQ(st.state(), PENDING);
  ctx.TryCancel();
  while (reader->Read(&st)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  // The server dropped the watcher: changes of the job afterwards are harmless.
  grpc::ClientContext cctx;
  CancelJobRequest creq;
  creq.set_job_id(job);
  CancelJobResponse cresp;
  ASSERT_TRUE(stub_->CancelJob(&cctx, creq, &cresp).ok());
  EXPECT_EQ(cresp.status().state(), CANCELLED);
}

TEST_F(ServiceTest, ShutdownEndsOpenWatches) {
  const std::string job = Submit(1);
  grpc::ClientContext ctx;
  WatchJobRequest req;
  req.set_job_id(job);
  auto reader = stub_->WatchJob(&ctx, req);
  JobStatus st;
  ASSERT_TRUE(reader->Read(&st));
  server_->Shutdown(absl::Milliseconds(100));
  while (reader->Read(&st)) {
  }
  EXPECT_FALSE(reader->Finish().ok());
}

TEST_F(ServiceTest, HealthServiceAnswersServing) {
  grpc::GenericStub generic(channel_);
  grpc::ClientContext ctx;
  grpc::ByteBuffer request;  // An empty HealthCheckRequest: the whole server.
  grpc::ByteBuffer response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &response, [&](grpc::Status s) { done.set_value(s); });
  const grpc::Status status = done.get_future().get();
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2)) << "status: SERVING";
}

}  // namespace
}  // namespace ps
