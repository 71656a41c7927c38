// 2 real ps_server processes + 2 standalone ps_worker processes train SYNC softmax on
// the digits data; two identical runs (but for the workers' GEMM threads) end with
// bitwise identical parameters and with a checkpoint of the last clock on every shard,
// and the same job with bfloat16 gradients is as accurate. A worker refuses a bad
// --cpu_threads.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <regex>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

struct RunResult {
  double accuracy = -1;
  std::vector<uint64_t> digests;  // Per shard.
  std::vector<uint64_t> clocks;
  std::vector<uint64_t> newest_checkpoints;  // Per shard; 0 for none.
};

// The bundled digits job, with `extra` text-proto fields appended, in a file of its own.
std::string DigitsJob(const std::string& name, const std::string& extra) {
  std::ifstream in(Runfile("deploy/jobs/digits_softmax.textproto"));
  std::stringstream text;
  text << in.rdbuf() << "\n" << extra << "\n";
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/" + name + ".textproto";
  std::ofstream(path) << text.str();
  return path;
}

RunResult TrainOnce(const std::string& name, const std::string& job_extra = "",
                    const std::string& cpu_threads = "0") {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  const std::string job = DigitsJob(name, job_extra);
  std::vector<std::unique_ptr<Daemon>> shards;
  std::string addresses;
  for (int i = 0; i < 2; ++i) {
    shards.push_back(std::make_unique<Daemon>());
    EXPECT_TRUE(shards.back()
                    ->Start({Runfile("server/ps_server"), "--port=0",
                             "--shard_id=" + std::to_string(i), "--num_shards=2",
                             "--data_dir=" + dir + "/shard" + std::to_string(i)},
                            dir + ".shard" + std::to_string(i) + ".log")
                    .ok());
    addresses += (i ? "," : "") + shards.back()->address();
  }
  std::vector<pid_t> workers;
  for (int r = 1; r >= 0; --r) {
    std::vector<std::string> argv = {Runfile("worker/ps_worker"),
                                     "--job=" + job,
                                     "--job_id=digits", "--rank=" + std::to_string(r),
                                     "--num_workers=2", "--shards=" + addresses,
                                     "--device=cpu", "--cpu_threads=" + cpu_threads,
                                     "--data_root=" + ps::testing::SourceRoot("tests/data/digits.csv.gz")};
    if (r == 1) {
      workers.push_back(ps::testing::Spawn(argv, dir + ".worker1.log"));
    } else {
      std::string out;
      const int status = ps::testing::RunCommand(argv, &out, dir + ".worker0.log");
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
      std::smatch m;
      RunResult result;
      if (std::regex_search(out, m, std::regex("test_accuracy ([0-9.]+)"))) {
        result.accuracy = std::stod(m[1]);
      }
      for (pid_t w : workers) {
        const int ws = ps::testing::Wait(w);
        EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
      }
      for (auto& shard : shards) {
        auto stub = ShardService::NewStub(
            grpc::CreateChannel(shard->address(), grpc::InsecureChannelCredentials()));
        GetStatsRequest req;
        req.set_job_id("digits");
        req.set_with_digest(true);
        GetStatsResponse resp;
        grpc::ClientContext ctx;
        EXPECT_TRUE(stub->GetStats(&ctx, req, &resp).ok());
        if (resp.jobs_size() == 1) {
          result.digests.push_back(resp.jobs(0).state_digest());
          result.clocks.push_back(resp.jobs(0).clock());
          EXPECT_EQ(resp.jobs(0).pushes_duplicate(), 0u);
        }
        ListCheckpointsRequest list;
        list.set_job_id("digits");
        ListCheckpointsResponse held;
        grpc::ClientContext list_ctx;
        EXPECT_TRUE(stub->ListCheckpoints(&list_ctx, list, &held).ok());
        result.newest_checkpoints.push_back(
            held.clocks_size() > 0 ? held.clocks(held.clocks_size() - 1) : 0);
      }
      return result;
    }
  }
  return RunResult();
}

TEST(StandaloneTrainTest, SyncSoftmaxOnDigitsIsAccurateAndBitwiseReproducible) {
  // The second run's workers compute each GEMM on one thread, the first's on
  // OpenBLAS's default: the results do not depend on it.
  const RunResult a = TrainOnce("run_a");
  const RunResult b = TrainOnce("run_b", "", "1");
  std::printf("digits SYNC softmax, 2 shards x 2 workers: test accuracy %.4f / %.4f\n",
              a.accuracy, b.accuracy);
  EXPECT_GE(a.accuracy, 0.93);
  ASSERT_EQ(a.digests.size(), 2u);
  ASSERT_EQ(b.digests.size(), 2u);
  EXPECT_GT(a.clocks[0], 0u);
  EXPECT_EQ(a.clocks, b.clocks);
  EXPECT_EQ(a.digests, b.digests);  // Weights and optimizer slots, bit for bit.
  EXPECT_EQ(a.accuracy, b.accuracy);
  // The workers ended only once every shard held a checkpoint of the last clock, which
  // is not a multiple of the job's interval (200 clocks).
  EXPECT_NE(a.clocks[0] % 200, 0u);
  EXPECT_EQ(a.newest_checkpoints, a.clocks);

  // With bfloat16 gradients on the wire: as accurate, and the weights differ from the
  // float32 run's (the pushes did go as bfloat16).
  const RunResult half = TrainOnce("run_bf16", "bf16_gradients: true");
  std::printf("the same with bfloat16 gradients: test accuracy %.4f\n", half.accuracy);
  EXPECT_GE(half.accuracy, 0.93);
  ASSERT_EQ(half.digests.size(), 2u);
  EXPECT_EQ(half.clocks, a.clocks);
  EXPECT_NE(half.digests, a.digests);
}

TEST(StandaloneTrainTest, WorkerRefusesANonPositiveCpuThreadCount) {
  std::string out;
  const std::string log = std::string(std::getenv("TEST_TMPDIR")) + "/bad_threads.log";
  const int status = ps::testing::RunCommand(
      {Runfile("worker/ps_worker"), "--job=" + DigitsJob("bad_threads", ""),
       "--shards=127.0.0.1:1", "--device=cpu", "--cpu_threads=-2"},
      &out, log);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
  std::ifstream in(log);
  std::stringstream err;
  err << in.rdbuf();
  EXPECT_NE(err.str().find("--cpu_threads: INVALID_ARGUMENT: cpu gemm threads: must be at least "
                           "1, got -2"),
            std::string::npos)
      << err.str();
}

}  // namespace
}  // namespace ps
