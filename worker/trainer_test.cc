// The training loop's end: with checkpoints on, the rank that pushed a shard's last
// clock reports itself finished only once every shard holds a checkpoint of it, asking
// for one when it does not come; a rank that ends while others still push does not
// wait (in-process shards with real RocksDB; a PsClient in front of them that hides
// that checkpoint for a while, as a write still in progress or failed would).
#include "worker/trainer.h"

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/convert.h"
#include "server/shard_core.h"
#include "tests/util/subprocess.h"
#include "worker/local_ps_client.h"

namespace ps {
namespace {

// Forwards to `inner`; ListCheckpoints leaves out clocks >= `hide_from` for its first
// `hide_calls` calls, and counts its calls.
class SlowCheckpoints final : public PsClient {
 public:
  SlowCheckpoints(PsClient* inner, uint64_t hide_from, int hide_calls)
      : inner_(inner), hide_from_(hide_from), hide_calls_(hide_calls) {}

  int list_calls() const { return list_calls_; }
  int checkpoint_calls() const { return checkpoint_calls_; }

  uint32_t num_shards() const override { return inner_->num_shards(); }
  absl::StatusOr<uint64_t> SetupJob(const ShardJobConfig& config,
                                    const std::vector<TableSpec>& tables) override {
    total_clocks_ = config.total_clocks();
    return inner_->SetupJob(config, tables);
  }
  absl::Status AttachJob(const std::string& job_id) override { return inner_->AttachJob(job_id); }
  absl::Status Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override {
    return inner_->Pull(job_id, rank, clock, dense, sparse);
  }
  absl::Status Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override {
    return inner_->Push(job_id, rank, clock, dense, sparse);
  }
  absl::StatusOr<uint64_t> Read(const std::string& job_id, absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse) override {
    return inner_->Read(job_id, dense, sparse);
  }
  absl::StatusOr<std::vector<ShardJobStats>> GetStats(const std::string& job_id,
                                                      bool with_digest) override {
    return inner_->GetStats(job_id, with_digest);
  }
  absl::StatusOr<std::vector<ShardCheckpoint>> Checkpoint(const std::string& job_id) override {
    ++checkpoint_calls_;
    return inner_->Checkpoint(job_id);
  }
  absl::Status Restore(const std::string& job_id, uint64_t clock) override {
    return inner_->Restore(job_id, clock);
  }
  absl::StatusOr<std::vector<std::vector<uint64_t>>> ListCheckpoints(
      const std::string& job_id) override {
    absl::StatusOr<std::vector<std::vector<uint64_t>>> held = inner_->ListCheckpoints(job_id);
    if (held.ok() && list_calls_++ < hide_calls_) {
      for (std::vector<uint64_t>& clocks : *held) {
        while (!clocks.empty() && clocks.back() >= hide_from_) clocks.pop_back();
      }
    }
    return held;
  }
  absl::Status DropJob(const std::string& job_id, bool delete_checkpoints) override {
    return inner_->DropJob(job_id, delete_checkpoints);
  }

  uint64_t total_clocks() const { return total_clocks_; }

 private:
  PsClient* const inner_;
  const uint64_t hide_from_;
  const int hide_calls_;
  int list_calls_ = 0;
  int checkpoint_calls_ = 0;
  uint64_t total_clocks_ = 0;
};

JobSpec DigitsSoftmax(const std::string& checkpoint) {
  JobSpec spec;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"(
        model { softmax {} }
        data {
          format: CSV train_path: "tests/data/digits.csv.gz" test_every: 5
          num_features: 64 num_classes: 10 label_column: -1 feature_scale: 0.0625
        }
        optimizer { sgd {} learning_rate: 0.1 }
        consistency { mode: SYNC }
        num_workers: 1
        batch_size: 64
        epochs: 1
        seed: 3
        eval { every_clocks: 0 }
        checkpoint { )" + checkpoint + R"( }
      )",
      &spec));
  return spec;
}

struct Outcome {
  absl::Status status;
  uint64_t total = 0;
  int list_calls_at_finish = -1;  // ListCheckpoints calls when `finished` was reported.
  int checkpoint_calls = 0;       // Checkpoint calls the rank made.
  std::vector<uint64_t> held;     // The shard's checkpoints afterwards.
};

std::unique_ptr<ShardCore> OpenShard(const std::string& name) {
  ShardCore::Options o;
  o.data_dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  UseProtoConfigs(&o);
  return *ShardCore::Open(o);
}

// Trains rank `rank` of `spec` to its end against `core`; ListCheckpoints hides the
// last clock's checkpoint for `hide_calls` calls.
Outcome TrainRank(ShardCore* core, const std::string& job, const JobSpec& spec, uint32_t rank,
                  int hide_calls, double final_wait_s = 300) {
  std::unique_ptr<LocalPsClient> local = *LocalPsClient::Create({core});
  SlowCheckpoints ps(local.get(), /*hide_from=*/1, hide_calls);
  TrainerOptions t;
  t.job_id = job;
  t.spec = spec;
  t.rank = rank;
  t.device = compute::DeviceChoice::kCpu;
  t.data_root = testing::SourceRoot("tests/data/digits.csv.gz");
  t.final_checkpoint_wait_s = final_wait_s;
  Outcome run;
  run.status = Train(t, &ps, [&](const TrainerProgress& p) {
    if (p.finished) {
      run.total = p.total_clocks;
      run.list_calls_at_finish = ps.list_calls();
    }
    return true;
  });
  EXPECT_EQ(ps.total_clocks(), run.total) << "the shards were told the job's clocks";
  run.checkpoint_calls = ps.checkpoint_calls();
  core->Drain();
  run.held = *core->ListCheckpoints(job);
  return run;
}

Outcome TrainOnce(const std::string& name, const JobSpec& spec, int hide_calls) {
  std::unique_ptr<ShardCore> core = OpenShard(name);
  return TrainRank(core.get(), name, spec, 0, hide_calls);
}

TEST(TrainerTest, FinishesOnlyOnceTheLastClockIsCheckpointed) {
  // 7 does not divide the job's clocks (checked below): only the final checkpoint can
  // hold the last clock.
  const Outcome run = TrainOnce("final", DigitsSoftmax("interval_clocks: 7"), /*hide_calls=*/4);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_GT(run.total, 0u);
  EXPECT_NE(run.total % 7, 0u);
  // The rank asked until the checkpoint showed (4 answers without it, then the 5th).
  EXPECT_EQ(run.list_calls_at_finish, 5);
  EXPECT_EQ(run.checkpoint_calls, 0) << "the shard's own checkpoint was there";
  ASSERT_FALSE(run.held.empty());
  EXPECT_EQ(run.held.back(), run.total);
}

// ASYNC ranks end on their own: a rank that finishes while another has not pushed its
// last clock reports at once; the last one waits for the checkpoint.
TEST(TrainerTest, OnlyTheRankThatPushesTheLastClockWaits) {
  JobSpec spec = DigitsSoftmax("interval_seconds: 3600");
  spec.mutable_consistency()->set_mode(ASYNC);
  spec.set_num_workers(2);
  std::unique_ptr<ShardCore> core = OpenShard("async_two");
  const Outcome first = TrainRank(core.get(), "async_two", spec, 0, /*hide_calls=*/1000);
  ASSERT_TRUE(first.status.ok()) << first.status;
  EXPECT_EQ(first.list_calls_at_finish, 0) << "rank 0 waited for rank 1";
  EXPECT_TRUE(first.held.empty());
  const Outcome last = TrainRank(core.get(), "async_two", spec, 1, /*hide_calls=*/3);
  ASSERT_TRUE(last.status.ok()) << last.status;
  EXPECT_EQ(last.list_calls_at_finish, 4);
  ASSERT_FALSE(last.held.empty());
  EXPECT_EQ(last.held.back(), last.total);
}

// When the shards' own checkpoint of the last clock does not show (a failed write),
// the rank asks for one after its wait and ends once it is written.
TEST(TrainerTest, AMissingLastCheckpointIsAskedFor) {
  JobSpec spec = DigitsSoftmax("interval_clocks: 7");
  std::unique_ptr<ShardCore> core = OpenShard("asked");
  const Outcome run = TrainRank(core.get(), "asked", spec, 0, /*hide_calls=*/1000000,
                                /*final_wait_s=*/0.2);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_GT(run.list_calls_at_finish, 0);
  EXPECT_EQ(run.checkpoint_calls, 1);
  ASSERT_GE(run.held.size(), 2u);
  EXPECT_EQ(run.held.back(), run.total);
}

TEST(TrainerTest, WithoutCheckpointsNothingIsAwaited) {
  const Outcome run = TrainOnce("none", DigitsSoftmax(""), /*hide_calls=*/1000);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.list_calls_at_finish, 0);
  EXPECT_TRUE(run.held.empty());
}

}  // namespace
}  // namespace ps
