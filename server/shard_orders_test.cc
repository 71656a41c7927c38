// ShardOrders: the coordinator's orders carried out on a real ShardCore (RocksDB on
// disk), and what the shard tells the coordinator back.
#include "server/shard_orders.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/packing.h"
#include "gtest/gtest.h"
#include "server/convert.h"

namespace ps {
namespace {

class ShardOrdersTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ShardCore::Options o;
    o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/" +
                 ::testing::UnitTest::GetInstance()->current_test_info()->name();
    UseProtoConfigs(&o);
    o.coordinated = true;
    absl::StatusOr<std::unique_ptr<ShardCore>> core = ShardCore::Open(o);
    ASSERT_TRUE(core.ok()) << core.status();
    core_ = std::move(*core);
    orders_ = std::make_unique<ShardOrders>(core_.get());

    ShardJobConfig p;
    p.set_job_id("j");
    p.mutable_consistency()->set_mode(SYNC);
    p.set_num_workers(1);
    p.set_num_shards(1);
    p.mutable_checkpoint()->set_interval_clocks(2);
    p.mutable_checkpoint()->set_keep(3);
    absl::StatusOr<JobConfig> config = JobConfigFromProto(p);
    ASSERT_TRUE(config.ok()) << config.status();
    bool existed = false;
    ASSERT_TRUE(core_->CreateJob(*config, &existed).ok());
    TableSpec t;
    t.set_name("w");
    t.set_kind(TableSpec::DENSE);
    t.set_size(4);
    t.mutable_optimizer()->mutable_sgd();
    t.mutable_optimizer()->set_learning_rate(0.1f);
    absl::StatusOr<TableConfig> table = TableConfigFromProto(t);
    ASSERT_TRUE(table.ok()) << table.status();
    ASSERT_TRUE((*core_->FindJob("j"))->CreateTable(*table).ok());
  }

  // Trains clocks [from, to) and waits for their checkpoints.
  void Train(uint64_t from, uint64_t to) {
    const std::string values = PackFloats({1, 2, 3, 4});
    for (uint64_t c = from; c < to; ++c) {
      PushArgs a;
      a.clock = c;
      a.slices.push_back(SliceArgs{"w", 0, 4, {}});
      a.values = PackedFloats(values);
      ASSERT_TRUE((*core_->FindJob("j"))->Push(a).ok()) << c;
    }
    core_->Drain();
  }

  uint64_t Clock() { return (*core_->FindJob("j"))->clock(); }

  static HeartbeatResponse Restore(const std::string& job, uint64_t clock, uint64_t generation) {
    HeartbeatResponse r;
    ShardOrder* o = r.add_orders();
    o->set_job_id(job);
    o->set_restore_clock(clock);
    o->set_generation(generation);
    return r;
  }

  HeartbeatRequest Beat() {
    HeartbeatRequest req;
    orders_->Fill(&req);
    return req;
  }

  std::unique_ptr<ShardCore> core_;
  std::unique_ptr<ShardOrders> orders_;
};

TEST_F(ShardOrdersTest, RestoreIsAppliedOnceAndAcknowledgedWhileItComes) {
  Train(0, 6);
  HeartbeatRequest req = Beat();
  ASSERT_EQ(req.checkpoints_size(), 1);
  EXPECT_EQ(std::vector<uint64_t>(req.checkpoints(0).clocks().begin(),
                                  req.checkpoints(0).clocks().end()),
            (std::vector<uint64_t>{2, 4, 6}));

  std::vector<ShardOrder> applied = orders_->Apply(Restore("j", 4, 1));
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].job_id(), "j");
  EXPECT_EQ(applied[0].generation(), 1u);
  EXPECT_EQ(Clock(), 4u);
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{2, 4}))
      << "the rolled-back history is deleted";

  // The job trains on; the same order again (its acknowledgement not yet seen) is
  // acknowledged, not applied a second time.
  Train(4, 7);
  EXPECT_EQ(orders_->Apply(Restore("j", 4, 1)).size(), 1u);
  EXPECT_EQ(Clock(), 7u);
  EXPECT_EQ(Beat().refused_orders_size(), 0);
}

TEST_F(ShardOrdersTest, MissingCheckpointIsRefusedUntilAnotherOrderComes) {
  Train(0, 6);
  // Clock 3 was never a checkpoint here: the order cannot be carried out.
  EXPECT_TRUE(orders_->Apply(Restore("j", 3, 2)).empty());
  EXPECT_EQ(Clock(), 6u) << "nothing rolled back";
  HeartbeatRequest req = Beat();
  ASSERT_EQ(req.refused_orders_size(), 1);
  EXPECT_EQ(req.refused_orders(0).job_id(), "j");
  EXPECT_EQ(req.refused_orders(0).restore_clock(), 3u);
  EXPECT_EQ(req.refused_orders(0).generation(), 2u);
  ASSERT_EQ(req.checkpoints_size(), 1) << "with what the shard holds";

  // Refused while the order comes.
  EXPECT_TRUE(orders_->Apply(Restore("j", 3, 2)).empty());
  EXPECT_EQ(Beat().refused_orders_size(), 1);

  // The coordinator rolls back further: applied, and the refusal is gone.
  EXPECT_EQ(orders_->Apply(Restore("j", 2, 3)).size(), 1u);
  EXPECT_EQ(Clock(), 2u);
  EXPECT_EQ(Beat().refused_orders_size(), 0);

  // No order at all clears a refusal too.
  EXPECT_TRUE(orders_->Apply(Restore("j", 5, 4)).empty());
  EXPECT_EQ(Beat().refused_orders_size(), 1);
  EXPECT_TRUE(orders_->Apply(HeartbeatResponse()).empty());
  EXPECT_EQ(Beat().refused_orders_size(), 0);
}

TEST_F(ShardOrdersTest, UnknownJobsAreAcknowledgedAndDropsFreeTheJob) {
  Train(0, 2);
  EXPECT_EQ(orders_->Apply(Restore("absent", 20, 1)).size(), 1u)
      << "not here: the workers create it again";

  HeartbeatResponse drop;
  ShardOrder* o = drop.add_orders();
  o->set_job_id("j");
  o->set_generation(1);
  o->set_drop(true);
  const std::vector<ShardOrder> applied = orders_->Apply(drop);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_TRUE(applied[0].drop());
  EXPECT_FALSE(core_->FindJob("j").ok());
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{2})) << "checkpoints kept";
  EXPECT_EQ(orders_->Apply(drop).size(), 1u) << "dropping again is harmless";
}

// What the CI chaos run lost: shard 1 ran three checkpoints ahead of shard 0's writes
// and pruned, with `keep: 3`, the clock that then became complete. Pruning now keeps
// the complete checkpoint the shard heard of and every newer one.
TEST_F(ShardOrdersTest, PruningKeepsEverythingFromTheCompleteCheckpointOn) {
  Train(0, 10);
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{2, 4, 6, 8, 10}))
      << "nothing is known complete yet: nothing is pruned";
  auto complete = [&](uint64_t clock) {
    HeartbeatResponse r;
    JobCheckpoints* c = r.add_complete_checkpoints();
    c->set_job_id("j");
    c->add_clocks(clock);
    EXPECT_TRUE(orders_->Apply(r).empty());
  };
  complete(4);
  Train(10, 12);
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{4, 6, 8, 10, 12}));
  complete(10);
  Train(12, 16);
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{10, 12, 14, 16}));
  complete(16);
  Train(16, 20);
  EXPECT_EQ(*core_->ListCheckpoints("j"), (std::vector<uint64_t>{16, 18, 20}))
      << "the newest `keep` when the complete one is among them";
}

}  // namespace
}  // namespace ps
