// Request limits of real daemons: the shard's message size, keys per call, tables per
// job and sparse rows per table, and the coordinator's message size. Each refused
// request gets its code and a message naming the field or flag, and the daemon keeps
// serving.
#include <signal.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/packing.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

std::string TestDir() {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" +
         ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// A channel that itself would send and receive up to 64 MiB: only the server's limit
// can refuse.
std::shared_ptr<grpc::Channel> WideChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  args.SetMaxSendMessageSize(64 << 20);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

TableSpec Table(const std::string& name, bool sparse) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(sparse ? TableSpec::SPARSE : TableSpec::DENSE);
  if (sparse) {
    t.set_dim(4);
  } else {
    t.set_size(1000);
  }
  t.mutable_init()->set_kind(Initializer::ZEROS);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(0.1f);
  return t;
}

std::vector<uint64_t> Keys(uint64_t first, uint64_t n) {
  std::vector<uint64_t> k(n);
  for (uint64_t i = 0; i < n; ++i) k[i] = first + i;
  return k;
}

class ShardLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir();
    ASSERT_TRUE(shard_
                    .Start({Runfile("server/ps_server"), "--port=0", "--shard_id=0",
                            "--num_shards=1", "--data_dir=" + dir_, "--max_message_mb=1",
                            "--max_keys_per_call=1000", "--max_tables_per_job=2",
                            "--max_sparse_rows_per_table=100"},
                           dir_ + ".log")
                    .ok());
    stub_ = ShardService::NewStub(WideChannel(shard_.address()));
    CreateJobRequest req;
    ShardJobConfig* c = req.mutable_config();
    c->set_job_id("job-1");
    c->mutable_consistency()->set_mode(ASYNC);
    c->set_num_workers(1);
    c->set_num_shards(1);
    CreateJobResponse resp;
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->CreateJob(&ctx, req, &resp).ok());
    ASSERT_TRUE(CreateTable(Table("emb", true)).ok());
  }

  grpc::Status CreateTable(const TableSpec& table) {
    CreateTableRequest req;
    req.set_job_id("job-1");
    *req.mutable_table() = table;
    CreateTableResponse resp;
    grpc::ClientContext ctx;
    return stub_->CreateTable(&ctx, req, &resp);
  }

  // A pull of the sparse table, the keys split into `slices` slices.
  grpc::Status PullKeys(const std::vector<uint64_t>& keys, int slices = 1) {
    PullRequest req;
    req.set_job_id("job-1");
    const size_t per = (keys.size() + slices - 1) / slices;
    for (size_t i = 0; i < keys.size(); i += per) {
      Slice* s = req.add_slices();
      s->set_table("emb");
      s->set_keys(PackKeys(std::vector<uint64_t>(
          keys.begin() + i, keys.begin() + std::min(keys.size(), i + per))));
    }
    PullResponse resp;
    grpc::ClientContext ctx;
    return stub_->Pull(&ctx, req, &resp);
  }

  void ExpectServing() {
    EXPECT_TRUE(PullKeys({1, 2, 3}).ok()) << "the shard stopped serving";
    EXPECT_TRUE(shard_.running());
  }

  std::string dir_;
  Daemon shard_;
  std::unique_ptr<ShardService::Stub> stub_;
};

TEST_F(ShardLimitsTest, MessageSize) {
  // 1.5 MiB of keys (under the key limit's reach only through the size): refused by
  // --max_message_mb=1 before it is parsed.
  PushRequest push;
  push.set_job_id("job-1");
  push.set_num_parts(1);
  push.set_values(std::string(3 << 19, '\0'));
  PushResponse resp;
  grpc::ClientContext ctx;
  const grpc::Status s = stub_->Push(&ctx, push, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  ExpectServing();
}

TEST_F(ShardLimitsTest, KeysPerCall) {
  EXPECT_TRUE(PullKeys(Keys(0, 50)).ok());
  // 1001 keys in two slices of ~500: each slice is fine, the call is not.
  const grpc::Status s = PullKeys(Keys(0, 1001), 2);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_NE(s.error_message().find("slices[1].keys"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("--max_keys_per_call"), std::string::npos);
  ExpectServing();
}

TEST_F(ShardLimitsTest, TablesPerJob) {
  ASSERT_TRUE(CreateTable(Table("w", false)).ok());
  EXPECT_TRUE(CreateTable(Table("w", false)).ok()) << "re-creating an equal table is a no-op";
  const grpc::Status s = CreateTable(Table("b", false));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("table:"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("--max_tables_per_job"), std::string::npos);
  ExpectServing();
}

TEST_F(ShardLimitsTest, SparseRowsPerTable) {
  ASSERT_TRUE(PullKeys(Keys(0, 90)).ok());  // 90 rows.
  // 11 new rows (with 5 known ones) would make 101.
  grpc::Status s = PullKeys(Keys(85, 16));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_NE(s.error_message().find("slices[0].keys"), std::string::npos) << s.error_message();
  EXPECT_NE(s.error_message().find("--max_sparse_rows_per_table"), std::string::npos);
  // Pushes create rows too.
  PushRequest push;
  push.set_job_id("job-1");
  push.set_num_parts(1);
  Slice* sl = push.add_slices();
  sl->set_table("emb");
  sl->set_keys(PackKeys(Keys(200, 11)));
  push.set_values(PackFloats(std::vector<float>(11 * 4, 0.5f)));
  PushResponse resp;
  grpc::ClientContext ctx;
  s = stub_->Push(&ctx, push, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // Up to the limit is fine, and existing rows can always be read.
  EXPECT_TRUE(PullKeys(Keys(85, 15)).ok());
  EXPECT_FALSE(PullKeys({5000}).ok());
  ExpectServing();
}

TEST(CoordinatorLimitsTest, MessageSize) {
  const std::string dir = TestDir();
  Daemon coordinator;
  ASSERT_TRUE(coordinator
                  .Start({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                          "--data_dir=" + dir, "--max_message_mb=1"},
                         dir + ".log")
                  .ok());
  auto stub = CoordinatorService::NewStub(WideChannel(coordinator.address()));
  SubmitJobRequest req;
  req.mutable_spec()->set_name(std::string(2 << 20, 'x'));
  SubmitJobResponse resp;
  grpc::ClientContext ctx;
  grpc::Status s = stub->SubmitJob(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  // Under the limit it is the spec validation that answers (the name's length).
  req.mutable_spec()->set_name(std::string(300 << 10, 'x'));
  grpc::ClientContext ctx2;
  s = stub->SubmitJob(&ctx2, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  GetClusterResponse cluster;
  grpc::ClientContext ctx3;
  EXPECT_TRUE(stub->GetCluster(&ctx3, GetClusterRequest(), &cluster).ok());
}

}  // namespace
}  // namespace ps
