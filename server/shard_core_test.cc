// ShardCore: the checkpoint pipeline and restart loading, with real RocksDB.
#include "server/shard_core.h"

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "common/packing.h"
#include "gtest/gtest.h"
#include "server/convert.h"

namespace ps {
namespace {

ShardCore::Options Options(const std::string& name) {
  ShardCore::Options o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  UseProtoConfigs(&o);
  return o;
}

absl::Status AddJob(ShardCore* core, Consistency mode, uint32_t every_clocks,
                    uint32_t every_seconds, uint64_t total_clocks = 0, uint32_t keep = 0) {
  ShardJobConfig p;
  p.mutable_checkpoint()->set_keep(keep);
  p.set_total_clocks(total_clocks);
  p.set_job_id("j");
  p.mutable_consistency()->set_mode(mode);
  p.set_num_workers(1);
  p.set_num_shards(1);
  p.mutable_checkpoint()->set_interval_clocks(every_clocks);
  p.mutable_checkpoint()->set_interval_seconds(every_seconds);
  absl::StatusOr<JobConfig> config = JobConfigFromProto(p);
  if (!config.ok()) return config.status();
  bool existed = false;
  if (absl::Status s = core->CreateJob(*config, &existed); !s.ok()) return s;
  TableSpec t;
  t.set_name("w");
  t.set_kind(TableSpec::DENSE);
  t.set_size(4);
  t.mutable_optimizer()->mutable_sgd();
  t.mutable_optimizer()->set_learning_rate(0.1f);
  absl::StatusOr<TableConfig> table = TableConfigFromProto(t);
  if (!table.ok()) return table.status();
  return (*core->FindJob("j"))->CreateTable(*table);
}

void PushOnce(ShardCore* core, uint64_t clock) {
  const std::string values = PackFloats({1, 2, 3, 4});
  PushArgs a;
  a.clock = clock;
  a.slices.push_back(SliceArgs{"w", 0, 4, {}});
  a.values = PackedFloats(values);
  ASSERT_TRUE((*core->FindJob("j"))->Push(a).ok());
}

TEST(ShardCoreTest, SyncJobsCheckpointAtClockMultiplesAndReloadOnRestart) {
  std::unique_ptr<ShardCore> core = *ShardCore::Open(Options("sync"));
  ASSERT_TRUE(AddJob(core.get(), SYNC, 2, 0).ok());
  for (uint64_t c = 0; c < 5; ++c) PushOnce(core.get(), c);
  core->Drain();
  EXPECT_EQ(*core->ListCheckpoints("j"), (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(core->LastCheckpointClock("j"), 4u);
  const uint64_t at5 = (*core->FindJob("j"))->Counters(true).digest;
  core.reset();
  // A restart loads the latest checkpoint (clock 4), not the state at 5.
  core = *ShardCore::Open(Options("sync"));
  auto job = core->FindJob("j");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ((*job)->clock(), 4u);
  EXPECT_EQ(core->LastCheckpointClock("j"), 4u);
  EXPECT_NE((*job)->Counters(true).digest, at5);
}

// A checkpoint a push takes reaches the writer with the dense state borrowed when the
// writer is idle (and copied at once when it is busy): pushes going on meanwhile copy
// the blocks they write, so every checkpoint holds the state of its clock.
TEST(ShardCoreTest, CheckpointsTakenByPushesHoldTheStateOfTheirClock) {
  std::unique_ptr<ShardCore> core = *ShardCore::Open(Options("borrowed"));
  ASSERT_TRUE(AddJob(core.get(), SYNC, 1, 0, 0, /*keep=*/100).ok());
  std::vector<uint64_t> digests = {(*core->FindJob("j"))->Counters(true).digest};
  for (uint64_t c = 0; c < 30; ++c) {
    PushOnce(core.get(), c);
    digests.push_back((*core->FindJob("j"))->Counters(true).digest);  // Of clock c + 1.
  }
  core->Drain();
  ASSERT_EQ(core->ListCheckpoints("j")->size(), 30u);
  for (uint64_t clock = 30; clock >= 1; --clock) {  // A restore drops newer checkpoints.
    ASSERT_TRUE(core->Restore("j", clock).ok()) << clock;
    EXPECT_EQ((*core->FindJob("j"))->Counters(true).digest, digests[clock]) << clock;
  }
}

// While the writer is busy (here: held in its callback after the first checkpoint),
// a push that takes a checkpoint copies the borrowed state itself before it returns,
// so the pushes after it write blocks no snapshot holds: none is copied on write.
TEST(ShardCoreTest, CheckpointsTakenWhileTheWriterIsBusyAreCopiedByThePush) {
  absl::Notification writing_first;
  absl::Notification release;
  ShardCore::Options o = Options("busy_writer");
  o.on_checkpoint = [&](const CheckpointInfo& info) {
    if (info.clock != 1) return;
    writing_first.Notify();
    release.WaitForNotification();
  };
  std::unique_ptr<ShardCore> core = *ShardCore::Open(o);
  // Whatever fails below, the writer is let go before the core joins it.
  absl::Cleanup let_go = [&] { release.Notify(); };
  ASSERT_TRUE(AddJob(core.get(), SYNC, 1, 0, 0, /*keep=*/100).ok());
  std::shared_ptr<ShardJob> job = *core->FindJob("j");
  std::vector<uint64_t> digests = {job->Counters(true).digest};
  PushOnce(core.get(), 0);  // The idle writer takes clock 1's snapshot, then waits.
  digests.push_back(job->Counters(true).digest);
  ASSERT_TRUE(writing_first.WaitForNotificationWithTimeout(absl::Seconds(60)));
  for (uint64_t c = 1; c < 10; ++c) {
    PushOnce(core.get(), c);
    digests.push_back(job->Counters(true).digest);
  }
  EXPECT_EQ(job->Counters(false).dense_copies_on_write, 0u);
  std::move(let_go).Invoke();
  core->Drain();
  ASSERT_EQ(core->ListCheckpoints("j")->size(), 10u);
  for (uint64_t clock = 10; clock >= 1; --clock) {
    ASSERT_TRUE(core->Restore("j", clock).ok()) << clock;
    EXPECT_EQ((*core->FindJob("j"))->Counters(true).digest, digests[clock]) << clock;
  }
}

// The last clock is checkpointed whatever the interval, so a shard restarted after
// the job ended holds the finished model; without checkpoints nothing is written.
TEST(ShardCoreTest, TheLastClockIsCheckpointedWhateverTheInterval) {
  std::unique_ptr<ShardCore> core = *ShardCore::Open(Options("last_sync"));
  ASSERT_TRUE(AddJob(core.get(), SYNC, 2, 0, /*total_clocks=*/5).ok());
  for (uint64_t c = 0; c < 5; ++c) PushOnce(core.get(), c);
  core->Drain();
  EXPECT_EQ(*core->ListCheckpoints("j"), (std::vector<uint64_t>{2, 4, 5}));
  const uint64_t at5 = (*core->FindJob("j"))->Counters(true).digest;
  core.reset();
  core = *ShardCore::Open(Options("last_sync"));
  auto job = core->FindJob("j");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ((*job)->clock(), 5u);
  EXPECT_EQ((*job)->Counters(true).digest, at5);

  // ASYNC: its timer (an hour) never fires here; the last clock is written anyway.
  std::unique_ptr<ShardCore> async = *ShardCore::Open(Options("last_async"));
  ASSERT_TRUE(AddJob(async.get(), ASYNC, 0, 3600, /*total_clocks=*/3).ok());
  for (uint64_t c = 0; c < 3; ++c) PushOnce(async.get(), c);
  async->Drain();
  EXPECT_EQ(*async->ListCheckpoints("j"), (std::vector<uint64_t>{3}));

  std::unique_ptr<ShardCore> off = *ShardCore::Open(Options("last_off"));
  ASSERT_TRUE(AddJob(off.get(), SYNC, 0, 0, /*total_clocks=*/3).ok());
  for (uint64_t c = 0; c < 3; ++c) PushOnce(off.get(), c);
  off->Drain();
  EXPECT_TRUE(off->ListCheckpoints("j")->empty());
}

TEST(ShardCoreTest, AsyncJobsCheckpointOnTheirTimer) {
  std::unique_ptr<ShardCore> core = *ShardCore::Open(Options("async"));
  ASSERT_TRUE(AddJob(core.get(), ASYNC, 0, 1).ok());
  PushOnce(core.get(), 0);
  // The timer ticks once a second: a checkpoint appears within a few seconds.
  std::vector<uint64_t> clocks;
  for (int i = 0; i < 100 && clocks.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    clocks = *core->ListCheckpoints("j");
  }
  ASSERT_FALSE(clocks.empty());
  EXPECT_EQ(clocks.back(), 1u);
}

// A coordinated shard keeps every checkpoint from the complete one on, but ASYNC
// jobs are never rolled back and rarely have a complete one: they keep their newest
// `keep` (3) as on a shard without a coordinator, or their disk use would only grow.
TEST(ShardCoreTest, CoordinatedAsyncJobsStillPruneToKeep) {
  ShardCore::Options o = Options("async_coordinated");
  o.coordinated = true;
  std::unique_ptr<ShardCore> core = *ShardCore::Open(o);
  ASSERT_TRUE(AddJob(core.get(), ASYNC, 0, 0).ok());
  for (uint64_t c = 0; c < 5; ++c) {
    PushOnce(core.get(), c);
    ASSERT_TRUE(core->Checkpoint("j", [](absl::StatusOr<CheckpointInfo> info) {
                      EXPECT_TRUE(info.ok()) << info.status();
                    }).ok());
    core->Drain();
  }
  EXPECT_EQ(*core->ListCheckpoints("j"), (std::vector<uint64_t>{3, 4, 5}));
}

}  // namespace
}  // namespace ps
