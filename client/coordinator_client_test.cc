// The client library against an in-process coordinator on 127.0.0.1.
#include "client/coordinator_client.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/coordinator/server.h"

namespace ps {
namespace {

class CoordinatorClientTest : public ::testing::Test {
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
    o.coordinator.data_root = dir_;
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    CoordinatorClientOptions co;
    co.address = server_->address();
    co.metadata.emplace_back("x-test", "1");
    auto client = CoordinatorClient::Connect(co);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  static JobSpec Spec() {
    JobSpec spec;
    spec.set_name("lib");
    spec.mutable_model()->mutable_softmax();
    spec.mutable_data()->set_format(CSV);
    spec.mutable_data()->set_train_path("train.csv");
    spec.mutable_data()->set_num_features(2);
    spec.mutable_data()->set_num_classes(2);
    spec.mutable_optimizer()->mutable_sgd();
    spec.mutable_optimizer()->set_learning_rate(0.5f);
    spec.mutable_consistency()->set_mode(SYNC);
    spec.set_num_workers(1);
    spec.set_batch_size(4);
    spec.set_epochs(1);
    return spec;
  }

  std::string dir_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<CoordinatorClient> client_;
};

TEST_F(CoordinatorClientTest, SubmitStatusListCancelCluster) {
  auto a = client_->SubmitJob(Spec());
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = client_->SubmitJob(Spec());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, "job-000001");
  EXPECT_EQ(*b, "job-000002");

  auto st = client_->GetJob(*a);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->state(), PENDING);
  EXPECT_EQ(st->spec().name(), "lib");

  auto jobs = client_->ListJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[1].job_id(), *b);

  auto cancelled = client_->CancelJob(*b);
  ASSERT_TRUE(cancelled.ok());
  EXPECT_EQ(cancelled->state(), CANCELLED);
  EXPECT_EQ(client_->CancelJob(*b).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client_->GetJob("job-000009").status().code(), absl::StatusCode::kNotFound);

  // A shard registers: the cluster shows it.
  Member shard;
  shard.set_role(SHARD);
  shard.set_address("127.0.0.1:7");
  ASSERT_TRUE(server_->coordinator()->Register(shard).ok());
  auto cluster = client_->GetCluster();
  ASSERT_TRUE(cluster.ok());
  EXPECT_EQ(cluster->num_shards(), 1u);
  ASSERT_EQ(cluster->members_size(), 1);
  EXPECT_EQ(cluster->members(0).address(), "127.0.0.1:7");
  EXPECT_TRUE(cluster->members(0).healthy());
}

TEST_F(CoordinatorClientTest, BadSpecsNameTheField) {
  JobSpec spec = Spec();
  spec.mutable_data()->set_train_path("nope.csv");
  auto id = client_->SubmitJob(spec);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(id.status().message().rfind("spec.data.train_path:", 0), 0u) << id.status();
}

TEST_F(CoordinatorClientTest, WatchFollowsTheJobToItsEnd) {
  const std::string id = *client_->SubmitJob(Spec());
  int updates = 0;
  JobState first = JOB_STATE_UNSPECIFIED;
  auto last = client_->WatchJob(id, [&](const JobStatus& st) {
    if (updates++ == 0) {
      first = st.state();
      // The watch is open: cancelling now must reach it.
      EXPECT_TRUE(client_->CancelJob(id).ok());
    }
  });
  EXPECT_EQ(first, PENDING);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->state(), CANCELLED);
  EXPECT_GE(updates, 2);
  EXPECT_EQ(client_->WatchJob("job-000404", [](const JobStatus&) {}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CoordinatorClientConnectTest, ErrorsNameTheAddress) {
  CoordinatorClientOptions bad;
  bad.address = "no-port";
  EXPECT_EQ(CoordinatorClient::Connect(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  CoordinatorClientOptions o;
  o.address = "127.0.0.1:1";  // Nothing listens there.
  o.timeout = absl::Seconds(5);
  auto client = CoordinatorClient::Connect(o);
  ASSERT_TRUE(client.ok());
  const absl::Status s = (*client)->ListJobs().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(s.message().find("127.0.0.1:1"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace ps
