// A shard that stops reading (SIGSTOP) in the middle of a large push. gRPC keeps the
// bytes of a write stuck on the stopped peer's full socket for as long as the peer is
// silent (past the call's deadline, past the connection's close), so GrpcPsClient never
// lends it the caller's memory (common/wire.h): the push fails at its deadline, the
// caller frees its buffer (AddressSanitizer checks that nothing reads it afterwards),
// and the shard is served again once it resumes.
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/util/subprocess.h"
#include "worker/grpc_ps_client.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

TEST(StoppedShardTest, PushToAStoppedShardFailsAndLetsGoOfTheBuffer) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/stopped";
  Daemon shard;
  ASSERT_TRUE(shard
                  .Start({Runfile("server/ps_server"), "--port=0", "--shard_id=0",
                          "--num_shards=1", "--data_dir=" + dir},
                         dir + ".log")
                  .ok());
  GrpcPsClient::Options o;
  o.rpc_timeout = absl::Seconds(2);
  o.max_attempts = 1;
  auto client = GrpcPsClient::Connect({shard.address()}, o);
  ASSERT_TRUE(client.ok()) << client.status();

  constexpr uint64_t kFloats = uint64_t{32} << 20;  // 128 MiB: far past socket buffers.
  ShardJobConfig config;
  config.set_job_id("stopped");
  config.mutable_consistency()->set_mode(ASYNC);
  config.set_num_workers(1);
  TableSpec table;
  table.set_name("w");
  table.set_kind(TableSpec::DENSE);
  table.set_size(kFloats);
  table.mutable_optimizer()->mutable_sgd();
  table.mutable_optimizer()->set_learning_rate(0.1f);
  ASSERT_TRUE((*client)->SetupJob(config, {table}).ok());
  {
    std::vector<float> grad(kFloats, 1e-3f);
    DenseRef ref{"w", 0, kFloats, grad.data()};
    absl::Status s = (*client)->Push("stopped", 0, 0, {&ref, 1}, {});
    ASSERT_TRUE(s.ok()) << s;  // Warm: the connection and its flow-control windows.
  }

  ASSERT_EQ(kill(shard.pid(), SIGSTOP), 0);
  auto grad = std::make_unique<std::vector<float>>(kFloats, 2e-3f);
  DenseRef ref{"w", 0, kFloats, grad->data()};
  const auto start = std::chrono::steady_clock::now();
  absl::Status s = (*client)->Push("stopped", 0, 1, {&ref, 1}, {});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  grad.reset();  // Nothing may read it now.
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(s) || absl::IsUnavailable(s)) << s;
  EXPECT_LT(seconds, 2.0 + 8.0) << s;  // The 2 s deadline, with slack for a loaded box.
  std::printf("push to the stopped shard returned after %.1f s: %s\n", seconds,
              s.ToString().c_str());

  ASSERT_EQ(kill(shard.pid(), SIGCONT), 0);
  GrpcPsClient::Options patient;
  patient.rpc_timeout = absl::Seconds(60);
  auto again = GrpcPsClient::Connect({shard.address()}, patient);
  ASSERT_TRUE(again.ok());
  std::vector<float> more(kFloats, 3e-3f);
  DenseRef more_ref{"w", 0, kFloats, more.data()};
  s = (*again)->Push("stopped", 0, 2, {&more_ref, 1}, {});
  EXPECT_TRUE(s.ok()) << s;
  shard.Kill(SIGKILL);
}

}  // namespace
}  // namespace ps
