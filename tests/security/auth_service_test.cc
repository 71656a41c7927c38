// The coordinator's bearer-token check in process (CoordinatorServer with auth_token):
// every client-facing call without the token or with a wrong one is UNAUTHENTICATED
// before it does anything; with the token it runs; daemon-facing calls take none.
#include <sys/stat.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "server/coordinator/server.h"

namespace ps {
namespace {

constexpr char kToken[] = "tok-123_abc";

class AuthServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/auth";
    ::mkdir(dir.c_str(), 0755);
    CoordinatorServerOptions o;
    o.data_dir = dir + "/db";
    o.coordinator.num_shards = 1;
    o.coordinator.data_root = dir;
    o.auth_token = kToken;
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = CoordinatorService::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // Runs every client-facing call with `header` (none when empty); returns their codes.
  std::vector<grpc::StatusCode> ClientCalls(const std::string& header) {
    auto prepare = [&](grpc::ClientContext* ctx) {
      if (!header.empty()) ctx->AddMetadata("authorization", header);
      ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    };
    std::vector<grpc::StatusCode> codes;
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      SubmitJobRequest req;  // Empty spec: INVALID_ARGUMENT once authorized.
      SubmitJobResponse resp;
      codes.push_back(stub_->SubmitJob(&ctx, req, &resp).error_code());
    }
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      GetJobRequest req;
      req.set_job_id("job-000001");
      JobStatus resp;
      codes.push_back(stub_->GetJob(&ctx, req, &resp).error_code());
    }
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      ListJobsResponse resp;
      codes.push_back(stub_->ListJobs(&ctx, ListJobsRequest(), &resp).error_code());
    }
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      CancelJobRequest req;
      req.set_job_id("job-000001");
      CancelJobResponse resp;
      codes.push_back(stub_->CancelJob(&ctx, req, &resp).error_code());
    }
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      WatchJobRequest req;
      req.set_job_id("job-000001");
      auto reader = stub_->WatchJob(&ctx, req);
      JobStatus status;
      while (reader->Read(&status)) {
      }
      codes.push_back(reader->Finish().error_code());
    }
    {
      grpc::ClientContext ctx;
      prepare(&ctx);
      GetClusterResponse resp;
      codes.push_back(stub_->GetCluster(&ctx, GetClusterRequest(), &resp).error_code());
    }
    return codes;
  }

  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<CoordinatorService::Stub> stub_;
};

TEST_F(AuthServiceTest, ClientCallsNeedTheToken) {
  const std::string t = kToken;
  for (const std::string& bad : {std::string(), t, "Basic " + t, std::string("Bearer "),
                                 "Bearer " + t + "x", "Bearer " + t.substr(1)}) {
    for (grpc::StatusCode code : ClientCalls(bad)) {
      EXPECT_EQ(code, grpc::StatusCode::UNAUTHENTICATED) << "header \"" << bad << "\"";
    }
  }
  // Nothing was submitted by the refused calls.
  EXPECT_TRUE(server_->coordinator()->ListJobs().empty());
  const std::vector<grpc::StatusCode> ok = ClientCalls("Bearer " + t);
  const std::vector<grpc::StatusCode> want = {
      grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND, grpc::StatusCode::OK,
      grpc::StatusCode::NOT_FOUND,        grpc::StatusCode::NOT_FOUND, grpc::StatusCode::OK};
  EXPECT_EQ(ok, want);
}

TEST_F(AuthServiceTest, DaemonCallsNeedNoToken) {
  grpc::ClientContext ctx;
  HeartbeatRequest req;
  req.set_member_id("nobody");
  HeartbeatResponse resp;
  // It reaches the coordinator, which does not know the member.
  EXPECT_EQ(stub_->Heartbeat(&ctx, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace ps
