// `psctl export` against fake shards (plain gRPC servers) found through an in-process
// coordinator.
#include "client/export.h"

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/coordinator_client.h"
#include "client/npz_reader.h"
#include "common/packing.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "worker/model/job_model.h"
#include "proto/shard.grpc.pb.h"
#include "server/coordinator/server.h"

namespace ps {
namespace {

// A shard holding fixed parts of a job's tables; answers ListTables and no-wait Pulls.
class FakeShard final : public ShardService::Service {
 public:
  struct Part {
    TableSpec spec;
    uint64_t begin = 0;
    std::vector<float> values;  // Elements [begin, begin + values.size()).
  };

  // Listens on 127.0.0.1:`port` (0: a free port).
  FakeShard(std::string job_id, std::vector<Part> parts, int port = 0)
      : job_id_(std::move(job_id)), parts_(std::move(parts)) {
    grpc::ServerBuilder b;
    b.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(),
                       &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~FakeShard() override { server_->Shutdown(); }

  int port() const { return port_; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  int pulls() const { return pulls_.load(); }

  grpc::Status ListTables(grpc::ServerContext*, const ListTablesRequest* req,
                          ListTablesResponse* resp) override {
    if (req->job_id() != job_id_) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job");
    for (const Part& p : parts_) {
      *resp->add_tables() = p.spec;
      resp->add_local_begin(p.begin);
      resp->add_local_count(p.values.size());
    }
    return grpc::Status::OK;
  }

  grpc::Status Pull(grpc::ServerContext*, const PullRequest* req,
                    PullResponse* resp) override {
    ++pulls_;
    if (!req->no_wait()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no_wait");
    for (const Slice& s : req->slices()) {
      for (const Part& p : parts_) {
        if (p.spec.name() != s.table()) continue;
        if (s.begin() < p.begin || s.begin() + s.count() > p.begin + p.values.size()) {
          return grpc::Status(grpc::StatusCode::OUT_OF_RANGE, "slice");
        }
        AppendFloats(absl::MakeConstSpan(p.values).subspan(s.begin() - p.begin, s.count()),
                     resp->mutable_values());
      }
    }
    return grpc::Status::OK;
  }

 private:
  const std::string job_id_;
  const std::vector<Part> parts_;
  int port_ = 0;
  std::atomic<int> pulls_{0};
  std::unique_ptr<grpc::Server> server_;
};

TableSpec Dense(const std::string& name, uint64_t size) {
  TableSpec t;
  t.set_name(name);
  t.set_kind(TableSpec::DENSE);
  t.set_size(size);
  return t;
}

class ExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ::mkdir(dir_.c_str(), 0755);
    std::ofstream(dir_ + "/train.csv") << "1,2,3,0\n";
    CoordinatorServerOptions o;
    o.data_dir = dir_ + "/db";
    o.coordinator.num_shards = 2;
    o.coordinator.data_root = dir_;
    server_ = *CoordinatorServer::Start(o);
    CoordinatorClientOptions co;
    co.address = server_->address();
    client_ = *CoordinatorClient::Connect(co);

    JobSpec spec;
    spec.mutable_model()->mutable_softmax();
    spec.mutable_data()->set_format(CSV);
    spec.mutable_data()->set_train_path("train.csv");
    spec.mutable_data()->set_num_features(3);
    spec.mutable_data()->set_num_classes(2);
    spec.mutable_optimizer()->mutable_sgd();
    spec.mutable_optimizer()->set_learning_rate(0.5f);
    spec.mutable_consistency()->set_mode(SYNC);
    spec.set_num_workers(1);
    spec.set_batch_size(4);
    spec.set_epochs(1);
    job_ = *client_->SubmitJob(spec);
  }

  void StartShards(std::vector<FakeShard::Part> parts0, std::vector<FakeShard::Part> parts1) {
    shards_[0] = std::make_unique<FakeShard>(job_, std::move(parts0));
    shards_[1] = std::make_unique<FakeShard>(job_, std::move(parts1));
    for (uint32_t s = 0; s < 2; ++s) {
      Member m;
      m.set_role(SHARD);
      m.set_shard_id(s);
      m.set_address(shards_[s]->address());
      ASSERT_TRUE(server_->coordinator()->Register(m).ok());
    }
  }

  // w0 (3x2) split over both shards, b0 on shard 1, a sparse table.
  static std::vector<FakeShard::Part> NormalParts(int shard) {
    TableSpec emb;
    emb.set_name("emb");
    emb.set_kind(TableSpec::SPARSE);
    emb.set_dim(4);
    if (shard == 0) {
      return {{Dense("w0", 6), 0, {0.5f, 1.5f, 2.5f, 3.5f}}, {Dense("b0", 2), 0, {}},
              {emb, 0, {}}};
    }
    return {{Dense("w0", 6), 4, {4.5f, 5.5f}}, {Dense("b0", 2), 0, {10, 20}}, {emb, 0, {}}};
  }
  void StartNormalShards() { StartShards(NormalParts(0), NormalParts(1)); }

  std::string dir_, job_;
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<CoordinatorClient> client_;
  std::unique_ptr<FakeShard> shards_[2];
};

TEST_F(ExportTest, WritesDenseTablesWithShapes) {
  StartNormalShards();
  const std::string out = dir_ + "/model.npz";
  auto tables = ExportJob(client_.get(), job_, out);
  ASSERT_TRUE(tables.ok()) << tables.status();
  ASSERT_EQ(tables->size(), 3u);
  EXPECT_EQ((*tables)[0].name, "b0");
  EXPECT_EQ((*tables)[1].name, "emb");
  EXPECT_NE((*tables)[1].note.find("sparse"), std::string::npos);
  EXPECT_EQ((*tables)[2].shape, (std::vector<uint64_t>{3, 2}));
  auto arrays = ReadNpzForTest(out);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  ASSERT_EQ(arrays->size(), 2u);
  EXPECT_EQ(arrays->at("w0").shape, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(arrays->at("w0").values, (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f}));
  EXPECT_EQ(arrays->at("b0").shape, (std::vector<uint64_t>{2}));
  EXPECT_EQ(arrays->at("b0").values, (std::vector<float>{10, 20}));
  EXPECT_EQ(shards_[0]->pulls(), 1) << "shard 0 holds nothing of b0: no pull for it";
}

TEST_F(ExportTest, NumpyLoadsTheExport) {
  if (std::system("python3 -c 'import numpy' 2>/dev/null") != 0) {
    GTEST_SKIP() << "python3-numpy is not installed: skipping the numpy check";
  }
  StartNormalShards();
  const std::string out = dir_ + "/model.npz";
  ASSERT_TRUE(ExportJob(client_.get(), job_, out).ok());
  const std::string cmd = absl::StrCat(
      "python3 -c \"import numpy, sys; z = numpy.load(sys.argv[1]); "
      "assert z['w0'].shape == (3, 2) and z['w0'][2, 1] == 5.5; "
      "assert z['b0'].tolist() == [10.0, 20.0]\" ",
      out);
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST_F(ExportTest, GapsAndUnknownJobsAreErrors) {
  StartShards({{Dense("w0", 6), 0, {1, 2, 3}}}, {{Dense("w0", 6), 4, {5, 6}}});
  auto gap = ExportJob(client_.get(), job_, dir_ + "/gap.npz");
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kDataLoss) << gap.status();
  EXPECT_EQ(ExportJob(client_.get(), "job-000099", dir_ + "/x.npz").status().code(),
            absl::StatusCode::kNotFound);
}

// A registered shard that is down when the export starts and comes back on its
// address while the export waits (a supervisor restarting it) is read, not an error.
TEST_F(ExportTest, WaitsForAShardThatIsRestarting) {
  StartNormalShards();
  const int port = shards_[1]->port();
  shards_[1].reset();
  std::unique_ptr<FakeShard> back;
  std::thread restart([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    back = std::make_unique<FakeShard>(job_, NormalParts(1), port);
  });
  auto tables = ExportJob(client_.get(), job_, dir_ + "/restarted.npz");
  restart.join();
  ASSERT_TRUE(tables.ok()) << tables.status();
  ASSERT_NE(back, nullptr);
  EXPECT_EQ(back->port(), port);
  EXPECT_GT(back->pulls(), 0);
  EXPECT_EQ(tables->size(), 3u);
}

TEST_F(ExportTest, MissingShardIsUnavailable) {
  auto r = ExportJob(client_.get(), job_, dir_ + "/x.npz");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
}

TEST(ExportShapeTest, WeightMatricesOfSoftmaxAndMlp) {
  JobSpec spec;
  spec.mutable_data()->set_num_features(784);
  spec.mutable_data()->set_num_classes(10);
  spec.mutable_model()->mutable_softmax();
  EXPECT_EQ(ExportShape(spec, Dense("w0", 7840)), (std::vector<uint64_t>{784, 10}));
  EXPECT_EQ(ExportShape(spec, Dense("w", 7840)), (std::vector<uint64_t>{784, 10}));
  EXPECT_EQ(ExportShape(spec, Dense("b0", 10)), (std::vector<uint64_t>{10}));
  EXPECT_EQ(ExportShape(spec, Dense("w0", 7841)), (std::vector<uint64_t>{7841}));
  auto* mlp = spec.mutable_model()->mutable_mlp();
  mlp->add_hidden(128);
  mlp->add_hidden(64);
  EXPECT_EQ(ExportShape(spec, Dense("w1", 128 * 64)), (std::vector<uint64_t>{128, 64}));
  EXPECT_EQ(ExportShape(spec, Dense("w_2", 640)), (std::vector<uint64_t>{64, 10}));
  EXPECT_EQ(ExportShape(spec, Dense("w3", 640)), (std::vector<uint64_t>{640}));
  EXPECT_EQ(ExportShape(spec, Dense("wide", 640)), (std::vector<uint64_t>{640}));
  mlp->set_head(ModelSpec::Mlp::SIGMOID);
  EXPECT_EQ(ExportShape(spec, Dense("w2", 64)), (std::vector<uint64_t>{64, 1}));
}

// The tables the worker's models really declare get their matrix shapes.
TEST(ExportShapeTest, AgreesWithTheWorkersModelTables) {
  JobSpec spec;
  spec.mutable_data()->set_format(IDX);
  spec.mutable_data()->set_num_features(784);
  spec.mutable_data()->set_num_classes(10);
  spec.mutable_model()->mutable_softmax();
  auto tables = model::TablesForJob(spec);
  ASSERT_TRUE(tables.ok()) << tables.status();
  for (const TableSpec& t : *tables) {
    const bool weight = t.name().find(".w") != std::string::npos;
    const std::vector<uint64_t> want =
        weight ? std::vector<uint64_t>{784, 10} : std::vector<uint64_t>{t.size()};
    EXPECT_EQ(ExportShape(spec, t), want) << t.name();
  }
  spec.mutable_model()->mutable_mlp()->add_hidden(128);
  tables = model::TablesForJob(spec);
  ASSERT_TRUE(tables.ok()) << tables.status();
  std::vector<std::vector<uint64_t>> shapes;
  for (const TableSpec& t : *tables) shapes.push_back(ExportShape(spec, t));
  EXPECT_EQ(shapes, (std::vector<std::vector<uint64_t>>{{784, 128}, {128}, {128, 10}, {10}}));
}

}  // namespace
}  // namespace ps
