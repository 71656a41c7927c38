#include "server/coordinator/coordinator.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/metrics.h"
#include "gtest/gtest.h"
#include "prometheus/metric_family.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/clock.h"
#include "server/coordinator/job_store.h"

namespace ps {
namespace {

std::string TestDir() {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TestDir();
    std::ofstream(dir_ + "/train.csv") << "1,2,0\n";
    opts_.num_shards = 2;
    opts_.heartbeat_interval_ms = 100;
    opts_.heartbeat_timeout_ms = 500;
    opts_.data_root = dir_;
    c_ = Open();
  }

  std::unique_ptr<Coordinator> Open() {
    auto store = OpenRocksJobStore(dir_ + "/db");
    EXPECT_TRUE(store.ok()) << store.status();
    auto c = Coordinator::Create(opts_, *std::move(store), &clock_);
    EXPECT_TRUE(c.ok()) << c.status();
    return *std::move(c);
  }

  void Reopen() {
    c_.reset();
    c_ = Open();
  }

  static JobSpec Spec(uint32_t workers) {
    JobSpec spec;
    spec.set_name("test");
    spec.mutable_model()->mutable_softmax();
    DataSpec* d = spec.mutable_data();
    d->set_format(CSV);
    d->set_train_path("train.csv");
    d->set_num_features(2);
    d->set_num_classes(2);
    d->set_label_column(-1);
    spec.mutable_optimizer()->mutable_sgd();
    spec.mutable_optimizer()->set_learning_rate(0.1f);
    spec.mutable_consistency()->set_mode(SYNC);
    spec.set_num_workers(workers);
    spec.set_batch_size(8);
    spec.set_epochs(1);
    return spec;
  }

  std::string Submit(uint32_t workers) {
    auto id = c_->SubmitJob(Spec(workers));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }

  std::string RegisterShard(uint32_t shard_id, uint64_t incarnation) {
    Member m;
    m.set_role(SHARD);
    m.set_shard_id(shard_id);
    m.set_incarnation(incarnation);
    m.set_address(absl::StrCat("127.0.0.1:", 9000 + shard_id));
    auto r = c_->Register(m);
    EXPECT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->heartbeat_interval_ms(), 100u);
    return r->member_id();
  }

  std::string RegisterWorker(uint64_t incarnation, const std::string& device = "cpu") {
    Member m;
    m.set_role(WORKER);
    m.set_incarnation(incarnation);
    m.set_device(device);
    auto r = c_->Register(m);
    EXPECT_TRUE(r.ok()) << r.status();
    return r->member_id();
  }

  HeartbeatResponse Beat(const std::string& member_id, uint64_t incarnation,
                         const std::vector<ShardOrder>& applied = {}) {
    HeartbeatRequest req;
    req.set_member_id(member_id);
    req.set_incarnation(incarnation);
    for (const ShardOrder& o : applied) *req.add_applied_orders() = o;
    auto r = c_->Heartbeat(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(HeartbeatResponse());
  }

  // A shard's heartbeat listing the checkpoint clocks it holds of `job`, and the
  // restore orders it refuses.
  HeartbeatResponse BeatHolding(int shard, uint64_t incarnation, const std::string& job,
                                const std::vector<uint64_t>& clocks,
                                const std::vector<ShardOrder>& refused = {}) {
    HeartbeatRequest req;
    req.set_member_id(shard_[shard]);
    req.set_incarnation(incarnation);
    for (const ShardOrder& o : refused) *req.add_refused_orders() = o;
    JobCheckpoints* held = req.add_checkpoints();
    held->set_job_id(job);
    for (uint64_t c : clocks) held->add_clocks(c);
    auto r = c_->Heartbeat(req);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(HeartbeatResponse());
  }

  bool Report(const std::string& job, uint32_t rank, uint64_t generation, uint64_t clock,
              double loss = 1.0, bool finished = false, const std::string& error = "") {
    ProgressReport p;
    p.set_job_id(job);
    p.set_rank(rank);
    p.set_generation(generation);
    p.set_clock(clock);
    p.set_loss(loss);
    p.set_finished(finished);
    p.set_error(error);
    auto r = c_->ReportProgress(p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.value_or(false);
  }

  absl::Status Checkpoint(const std::string& job, uint32_t shard, uint64_t clock) {
    CheckpointReport r;
    r.set_job_id(job);
    r.set_shard_id(shard);
    r.set_clock(clock);
    return c_->ReportCheckpoint(r);
  }

  JobStatus Get(const std::string& job) {
    auto s = c_->GetJob(job);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.value_or(JobStatus());
  }

  // Two shards (ids 0, 1; incarnations 10, 11) registered and heartbeating.
  void StartShards() {
    shard_[0] = RegisterShard(0, 10);
    shard_[1] = RegisterShard(1, 11);
  }

  std::string dir_;
  FakeClock clock_;
  CoordinatorOptions opts_;
  std::unique_ptr<Coordinator> c_;
  std::string shard_[2];
};

TEST_F(CoordinatorTest, RegistryPersistsAndReloads) {
  const std::string a = Submit(1), b = Submit(1), cjob = Submit(5);
  EXPECT_EQ(a, "job-000001");
  EXPECT_EQ(b, "job-000002");
  StartShards();
  RegisterWorker(1);
  ASSERT_TRUE(c_->CancelJob(b).ok());
  ASSERT_TRUE(Checkpoint(a, 0, 7).ok());
  ASSERT_TRUE(Checkpoint(a, 1, 7).ok());
  const std::vector<JobStatus> before = c_->ListJobs();
  ASSERT_EQ(before.size(), 3u);
  EXPECT_EQ(before[0].state(), RUNNING);
  EXPECT_EQ(before[1].state(), CANCELLED);
  EXPECT_EQ(before[2].state(), PENDING);

  Reopen();
  const std::vector<JobStatus> after = c_->ListJobs();
  ASSERT_EQ(after.size(), 3u);
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].job_id(), before[i].job_id());
    EXPECT_EQ(after[i].state(), before[i].state());
    EXPECT_EQ(after[i].spec().num_workers(), before[i].spec().num_workers());
    EXPECT_EQ(after[i].submit_time_ms(), before[i].submit_time_ms());
  }
  EXPECT_EQ(after[0].complete_checkpoint(), 7u);
  EXPECT_EQ(Submit(1), "job-000004");
  Reopen();
  EXPECT_EQ(Submit(1), "job-000005");
  EXPECT_EQ(c_->ListJobs().size(), 5u);
}

TEST_F(CoordinatorTest, JobWaitsForShardsAndWorkers) {
  const std::string job = Submit(2);
  EXPECT_EQ(Get(job).state(), PENDING);
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  EXPECT_EQ(Get(job).state(), PENDING) << "no shards yet";
  // Shard 1 first: addresses are still ordered by shard id.
  shard_[1] = RegisterShard(1, 11);
  EXPECT_EQ(Get(job).state(), PENDING) << "one shard of two";
  EXPECT_EQ(Get(job).reason(), "waiting for all 2 shards to be registered and healthy");
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  shard_[0] = RegisterShard(0, 10);
  const JobStatus st = Get(job);
  EXPECT_EQ(st.state(), RUNNING);
  EXPECT_GT(st.start_time_ms(), 0);
  EXPECT_FALSE(st.reason().empty());

  const HeartbeatResponse h0 = Beat(w0, 1), h1 = Beat(w1, 2);
  ASSERT_EQ(h0.assignments_size(), 1);
  ASSERT_EQ(h1.assignments_size(), 1);
  EXPECT_EQ(h0.assignments(0).job_id(), job);
  EXPECT_EQ(h0.assignments(0).rank(), 0u);
  EXPECT_EQ(h1.assignments(0).rank(), 1u);
  EXPECT_EQ(h0.assignments(0).generation(), 0u);
  EXPECT_EQ(h0.assignments(0).resume_clock(), 0u);
  EXPECT_EQ(h0.assignments(0).spec().num_workers(), 2u);
  ASSERT_EQ(h0.assignments(0).shard_addresses_size(), 2);
  EXPECT_EQ(h0.assignments(0).shard_addresses(0), "127.0.0.1:9000");
  EXPECT_EQ(h0.assignments(0).shard_addresses(1), "127.0.0.1:9001");
  // Level-triggered: the next heartbeat lists it again.
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 1);

  const GetClusterResponse cluster = c_->GetCluster();
  EXPECT_EQ(cluster.num_shards(), 2u);
  ASSERT_EQ(cluster.members_size(), 4);
  EXPECT_EQ(cluster.members(0).role(), SHARD);
  EXPECT_EQ(cluster.members(0).shard_id(), 0u);
  EXPECT_EQ(cluster.members(2).role(), WORKER);
  EXPECT_EQ(cluster.members(2).job_id(), job);
  EXPECT_TRUE(cluster.members(3).healthy());
}

TEST_F(CoordinatorTest, JobsRunAtOnceOnDisjointWorkers) {
  StartShards();
  const std::string w[3] = {RegisterWorker(1), RegisterWorker(2), RegisterWorker(3)};
  const std::string a = Submit(2), b = Submit(1), c = Submit(1);
  EXPECT_EQ(Get(a).state(), RUNNING);
  EXPECT_EQ(Get(b).state(), RUNNING);
  EXPECT_EQ(Get(c).state(), PENDING);
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    const HeartbeatResponse h = Beat(w[i], i + 1);
    ASSERT_EQ(h.assignments_size(), 1);
    seen.push_back(absl::StrCat(h.assignments(0).job_id(), "/", h.assignments(0).rank()));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{a + "/0", a + "/1", b + "/0"}));
  // b finishes: its worker is idle and c starts on it.
  EXPECT_FALSE(Report(b, 0, 0, 5, 0.5, /*finished=*/true));
  EXPECT_EQ(Get(b).state(), SUCCEEDED);
  EXPECT_EQ(Get(c).state(), RUNNING);
  const HeartbeatResponse h2 = Beat(w[2], 3);
  ASSERT_EQ(h2.assignments_size(), 1);
  EXPECT_EQ(h2.assignments(0).job_id(), c);
}

TEST_F(CoordinatorTest, GpuJobsWaitForGpuWorkers) {
  StartShards();
  RegisterWorker(1, "cpu");
  JobSpec spec = Spec(1);
  spec.set_device(DEVICE_GPU);
  auto id = c_->SubmitJob(spec);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(Get(*id).state(), PENDING);
  EXPECT_EQ(Get(*id).reason(), "waiting for 1 idle GPU workers (0 available)");
  const std::string gpu = RegisterWorker(2, "NVIDIA H100");
  EXPECT_EQ(Get(*id).state(), RUNNING);
  EXPECT_EQ(Beat(gpu, 2).assignments_size(), 1);
}

TEST_F(CoordinatorTest, InvalidSpecsEachNameTheirField) {
  struct Case {
    const char* field;
    void (*mutate)(JobSpec*);
  };
  const Case cases[] = {
      {"spec.model:", [](JobSpec* s) { s->mutable_model()->clear_kind(); }},
      {"spec.data.train_path:",
       [](JobSpec* s) { s->mutable_data()->set_train_path("missing.csv"); }},
      {"spec.data.test_path:",
       [](JobSpec* s) { s->mutable_data()->set_test_path("sub/../train.csv"); }},
      {"spec.num_workers:", [](JobSpec* s) { s->set_num_workers(0); }},
      {"spec.optimizer.learning_rate:",
       [](JobSpec* s) { s->mutable_optimizer()->set_learning_rate(-0.1f); }},
      {"spec.consistency.staleness:",
       [](JobSpec* s) { s->mutable_consistency()->set_staleness(3); }},
  };
  for (const Case& tc : cases) {
    JobSpec spec = Spec(1);
    tc.mutate(&spec);
    auto id = c_->SubmitJob(spec);
    ASSERT_FALSE(id.ok()) << tc.field;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument) << id.status();
    EXPECT_EQ(id.status().message().rfind(tc.field, 0), 0u) << id.status();
  }
  EXPECT_TRUE(c_->ListJobs().empty());
  EXPECT_EQ(Submit(1), "job-000001") << "rejected specs take no id";
}

TEST_F(CoordinatorTest, ProgressAggregatesAndFinishes) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  JobSpec spec = Spec(2);
  spec.set_target_accuracy(0.8f);
  const std::string job = *c_->SubmitJob(spec);
  ASSERT_EQ(Get(job).state(), RUNNING);

  ProgressReport p;
  p.set_job_id(job);
  p.set_rank(0);
  p.set_clock(10);
  p.set_epoch(1);
  p.set_loss(1.0);
  p.set_samples_per_s(100);
  p.set_total_clocks(40);
  p.mutable_eval()->set_accuracy(0.5);
  p.mutable_eval()->set_examples(100);
  ASSERT_EQ(c_->ReportProgress(p).value_or(true), false);
  JobStatus st = Get(job);
  EXPECT_EQ(st.clock(), 0u) << "rank 1 is still at 0";
  EXPECT_EQ(st.total_clocks(), 40u);
  EXPECT_DOUBLE_EQ(st.eval().accuracy(), 0.5);

  p.set_rank(1);
  p.set_clock(8);
  p.set_loss(2.0);
  p.set_samples_per_s(50);
  p.clear_eval();
  ASSERT_EQ(c_->ReportProgress(p).value_or(true), false);
  st = Get(job);
  EXPECT_EQ(st.clock(), 8u);
  EXPECT_EQ(st.epoch(), 1u);
  EXPECT_DOUBLE_EQ(st.loss(), 1.5);
  EXPECT_DOUBLE_EQ(st.samples_per_s(), 150);
  EXPECT_DOUBLE_EQ(st.eval().accuracy(), 0.5) << "the latest eval is kept";

  p.set_rank(0);
  p.set_clock(40);
  p.set_finished(true);
  p.mutable_eval()->set_accuracy(0.85);
  EXPECT_FALSE(c_->ReportProgress(p).value_or(true));
  EXPECT_EQ(Get(job).state(), RUNNING) << "rank 1 has not finished";
  p.set_rank(1);
  p.clear_eval();
  EXPECT_FALSE(c_->ReportProgress(p).value_or(true));
  st = Get(job);
  EXPECT_EQ(st.state(), SUCCEEDED);
  EXPECT_EQ(st.clock(), 40u);
  EXPECT_GT(st.end_time_ms(), 0);
  EXPECT_DOUBLE_EQ(st.eval().accuracy(), 0.85);
  EXPECT_NE(st.reason().find("accuracy 0.85"), std::string::npos) << st.reason();
  // Reports after the end are answered cancel; the workers are idle again.
  EXPECT_TRUE(Report(job, 0, 0, 41));
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  EXPECT_EQ(Beat(w1, 2).assignments_size(), 0);
  const GetClusterResponse cluster = c_->GetCluster();
  for (const Member& m : cluster.members()) EXPECT_TRUE(m.job_id().empty());
}

TEST_F(CoordinatorTest, WorkerErrorFailsTheJob) {
  StartShards();
  const std::string w0 = RegisterWorker(1);
  const std::string job = Submit(1);
  EXPECT_TRUE(Report(job, 0, 0, 3, 1.0, false, "no GPU present"));
  const JobStatus st = Get(job);
  EXPECT_EQ(st.state(), FAILED);
  EXPECT_EQ(st.reason(), "rank 0: no GPU present");
  EXPECT_GT(st.end_time_ms(), 0);
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  // The shards are told to free the job, until they acknowledge.
  const HeartbeatResponse h = Beat(shard_[0], 10);
  ASSERT_EQ(h.orders_size(), 1);
  EXPECT_TRUE(h.orders(0).drop());
  EXPECT_EQ(h.orders(0).job_id(), job);
  EXPECT_EQ(Beat(shard_[0], 10, {h.orders(0)}).orders_size(), 0);
  EXPECT_EQ(Beat(shard_[1], 11).orders_size(), 1);
}

TEST_F(CoordinatorTest, CancelStopsWorkers) {
  const std::string pending = Submit(3);
  StartShards();
  const std::string w0 = RegisterWorker(1);
  const std::string job = Submit(1);
  ASSERT_EQ(Beat(w0, 1).assignments_size(), 1);

  auto st = c_->CancelJob(job);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state(), CANCELLED);
  EXPECT_GT(st->end_time_ms(), 0);
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  EXPECT_TRUE(Report(job, 0, 0, 1));

  EXPECT_EQ(c_->CancelJob(job).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(c_->CancelJob("job-999999").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(c_->CancelJob(pending)->state(), CANCELLED);
  // Unknown jobs in reports.
  ProgressReport p;
  p.set_job_id("nope");
  EXPECT_EQ(c_->ReportProgress(p).status().code(), absl::StatusCode::kNotFound);
  p.set_job_id(pending);
  p.set_rank(3);
  EXPECT_EQ(c_->ReportProgress(p).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, CheckpointCatalogNeedsEveryShard) {
  const std::string job = Submit(1);
  ASSERT_TRUE(Checkpoint(job, 0, 10).ok());
  ASSERT_TRUE(Checkpoint(job, 0, 20).ok());
  ASSERT_TRUE(Checkpoint(job, 0, 20).ok());  // Repeated: no second vote.
  EXPECT_EQ(Get(job).complete_checkpoint(), 0u);
  ASSERT_TRUE(Checkpoint(job, 1, 20).ok());
  EXPECT_EQ(Get(job).complete_checkpoint(), 20u);
  ASSERT_TRUE(Checkpoint(job, 1, 10).ok());  // Older than complete: ignored.
  EXPECT_EQ(Get(job).complete_checkpoint(), 20u);
  ASSERT_TRUE(Checkpoint(job, 1, 30).ok());
  EXPECT_EQ(Get(job).complete_checkpoint(), 20u);
  Reopen();  // Partial votes survive a restart too.
  ASSERT_TRUE(Checkpoint(job, 0, 30).ok());
  EXPECT_EQ(Get(job).complete_checkpoint(), 30u);
  EXPECT_EQ(Checkpoint(job, 2, 40).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Checkpoint("job-000777", 0, 40).code(), absl::StatusCode::kNotFound);
}

TEST_F(CoordinatorTest, ShardRestartRollsBackToCompleteCheckpoint) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  const std::string job = Submit(2);
  ASSERT_EQ(Get(job).state(), RUNNING);
  Report(job, 0, 0, 25);
  Report(job, 1, 0, 24);
  ASSERT_TRUE(Checkpoint(job, 0, 20).ok());
  ASSERT_TRUE(Checkpoint(job, 1, 20).ok());
  ASSERT_TRUE(Checkpoint(job, 0, 24).ok());  // Partial: rolled back below.

  // Same incarnation again (e.g. a lost response): no recovery.
  shard_[1] = RegisterShard(1, 11);
  EXPECT_EQ(Get(job).state(), RUNNING);
  // A new incarnation is a restart.
  shard_[1] = RegisterShard(1, 12);
  JobStatus st = Get(job);
  EXPECT_EQ(st.state(), RECOVERING);
  EXPECT_NE(st.reason().find("shard 1 restarted"), std::string::npos) << st.reason();
  EXPECT_EQ(st.clock(), 20u);
  // Workers stop: no assignment while recovering; old-generation reports are stale.
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  EXPECT_TRUE(Report(job, 0, 0, 26));
  EXPECT_EQ(Get(job).clock(), 20u);

  const HeartbeatResponse h0 = Beat(shard_[0], 10);
  ASSERT_EQ(h0.orders_size(), 1);
  const ShardOrder order = h0.orders(0);
  EXPECT_EQ(order.job_id(), job);
  EXPECT_EQ(order.restore_clock(), 20u);
  EXPECT_EQ(order.generation(), 1u);
  EXPECT_FALSE(order.drop());
  // A checkpoint from a shard that has not restored yet is ignored.
  ASSERT_TRUE(Checkpoint(job, 0, 30).ok());
  ASSERT_TRUE(Checkpoint(job, 1, 30).ok());
  EXPECT_EQ(Get(job).complete_checkpoint(), 20u);

  // An ack of another generation does not count.
  ShardOrder stale = order;
  stale.set_generation(0);
  EXPECT_EQ(Beat(shard_[0], 10, {stale}).orders_size(), 1);
  EXPECT_EQ(Beat(shard_[0], 10, {order}).orders_size(), 0);
  EXPECT_EQ(Get(job).state(), RECOVERING) << "shard 1 has not restored";
  EXPECT_EQ(Beat(shard_[1], 12, {order}).orders_size(), 0);
  st = Get(job);
  EXPECT_EQ(st.state(), RUNNING);
  EXPECT_EQ(st.recoveries(), 1u);

  const HeartbeatResponse a0 = Beat(w0, 1);
  ASSERT_EQ(a0.assignments_size(), 1);
  EXPECT_EQ(a0.assignments(0).generation(), 1u);
  EXPECT_EQ(a0.assignments(0).resume_clock(), 20u);
  EXPECT_EQ(a0.assignments(0).rank(), 0u);
  EXPECT_FALSE(Report(job, 0, 1, 22));
  EXPECT_FALSE(Report(job, 1, 1, 21));
  EXPECT_EQ(Get(job).clock(), 21u);
  EXPECT_TRUE(Report(job, 1, 0, 40)) << "generation 0 is stale now";
  EXPECT_EQ(Get(job).clock(), 21u);
}

TEST_F(CoordinatorTest, RefusedRestoreRollsBackToAnOlderCheckpoint) {
  StartShards();
  RegisterWorker(1);
  RegisterWorker(2);
  const std::string job = Submit(2);
  for (uint64_t clock : {20, 40, 60}) {
    ASSERT_TRUE(Checkpoint(job, 0, clock).ok());
    ASSERT_TRUE(Checkpoint(job, 1, clock).ok());
  }
  ASSERT_EQ(Get(job).complete_checkpoint(), 60u);
  shard_[0] = RegisterShard(0, 12);  // Restarted: roll back to 60.
  const ShardOrder first = Beat(shard_[1], 11).orders(0);
  ASSERT_EQ(first.restore_clock(), 60u);
  ASSERT_EQ(first.generation(), 1u);

  // Shard 1 lost checkpoint 60 and lists what it still holds.
  auto refuse = [&](int shard, uint64_t incarnation, const ShardOrder& order,
                    std::vector<uint64_t> clocks) {
    return BeatHolding(shard, incarnation, job, clocks, {order});
  };
  ShardOrder stale = first;
  stale.set_generation(0);
  refuse(1, 11, stale, {20, 40, 80});
  EXPECT_EQ(Get(job).clock(), 60u) << "a refusal of another generation is stale";

  HeartbeatResponse r = refuse(1, 11, first, {20, 40, 80});
  JobStatus st = Get(job);
  EXPECT_EQ(st.state(), RECOVERING);
  EXPECT_EQ(st.clock(), 40u) << "the newest clock below 60 that shard 1 holds";
  EXPECT_EQ(st.complete_checkpoint(), 40u);
  EXPECT_NE(st.reason().find("shard 1 cannot load its checkpoint at clock 60"), std::string::npos)
      << st.reason();
  ASSERT_EQ(r.orders_size(), 1);
  EXPECT_EQ(r.orders(0).restore_clock(), 40u);
  EXPECT_EQ(r.orders(0).generation(), 2u);
  ASSERT_EQ(r.complete_checkpoints_size(), 1);
  EXPECT_EQ(r.complete_checkpoints(0).clocks(0), 40u) << "what shards must keep now";
  EXPECT_EQ(st.clocks_redone(), 20u) << "60 to 40 (no progress was reported above 60)";

  // Shard 0 had applied generation 1 already; it lacks 40 too: down to the initial
  // state when it holds nothing older.
  EXPECT_EQ(Beat(shard_[0], 12, {first}).orders(0).generation(), 2u) << "an old ack";
  refuse(0, 12, r.orders(0), {60});
  st = Get(job);
  EXPECT_EQ(st.clock(), 0u);
  EXPECT_NE(st.reason().find("shard 0 cannot load its checkpoint at clock 40 and holds none older"),
            std::string::npos)
      << st.reason();
  const ShardOrder last = Beat(shard_[0], 12).orders(0);
  EXPECT_EQ(last.restore_clock(), 0u);
  EXPECT_EQ(last.generation(), 3u);
  refuse(0, 12, last, {});
  EXPECT_EQ(Get(job).clock(), 0u) << "nothing below the initial state";
  Beat(shard_[0], 12, {last});
  EXPECT_EQ(Get(job).state(), RECOVERING) << "shard 1 has not applied it";
  EXPECT_EQ(Beat(shard_[1], 11, {last}).orders_size(), 0);
  st = Get(job);
  EXPECT_EQ(st.state(), RUNNING);
  EXPECT_EQ(st.recoveries(), 1u);
}

TEST_F(CoordinatorTest, HeldCheckpointsMakeTheCatalogAndAreProtected) {
  StartShards();
  RegisterWorker(1);
  RegisterWorker(2);
  const std::string job = Submit(2);
  auto held = [&](int shard, uint64_t incarnation, std::vector<uint64_t> clocks) {
    return BeatHolding(shard, incarnation, job, clocks);
  };
  // Reports lost (the coordinator was down): heartbeats carry what each shard holds.
  held(0, 10, {20, 40, 60});
  EXPECT_EQ(Get(job).complete_checkpoint(), 0u) << "shard 1 has not said yet";
  const HeartbeatResponse r = held(1, 11, {40, 60, 80});
  JobStatus st = Get(job);
  EXPECT_EQ(st.complete_checkpoint(), 60u) << "the newest clock both hold";
  EXPECT_GT(st.complete_checkpoint_time_ms(), 0);
  // Shards hear the complete clock, which their pruning keeps.
  const HeartbeatResponse r0 = held(0, 10, {40, 60, 80, 100});
  ASSERT_EQ(r0.complete_checkpoints_size(), 1);
  EXPECT_EQ(r0.complete_checkpoints(0).job_id(), job);
  ASSERT_EQ(r0.complete_checkpoints(0).clocks_size(), 1);
  EXPECT_EQ(r0.complete_checkpoints(0).clocks(0), 80u) << "what this heartbeat made complete";
  EXPECT_EQ(Get(job).complete_checkpoint(), 80u);
  // It never goes back when a shard holds less (pruned).
  held(1, 11, {100});
  EXPECT_EQ(Get(job).complete_checkpoint(), 100u);
  held(0, 10, {20});
  EXPECT_EQ(Get(job).complete_checkpoint(), 100u);
}

TEST_F(CoordinatorTest, RecoveryFiguresAndMetrics) {
  auto metrics_server = MetricsServer::Start(MetricsServer::Options());
  ASSERT_TRUE(metrics_server.ok());
  auto metrics = CoordinatorMetrics::Create(metrics_server->get());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  const std::string job = Submit(2);
  Report(job, 0, 0, 30);
  Report(job, 1, 0, 28);
  ASSERT_TRUE(Checkpoint(job, 0, 20).ok());
  ASSERT_TRUE(Checkpoint(job, 1, 20).ok());
  shard_[1] = RegisterShard(1, 12);  // Restarted: roll back to 20.
  clock_.AdvanceMs(250);
  const HeartbeatResponse h = Beat(shard_[0], 10);
  ASSERT_EQ(h.orders_size(), 1);
  Beat(shard_[0], 10, {h.orders(0)});
  Beat(shard_[1], 12, {h.orders(0)});
  JobStatus st = Get(job);
  ASSERT_EQ(st.state(), RUNNING);
  EXPECT_EQ(st.clocks_redone(), 10u) << "rank 0 was at 30, back to 20";
  EXPECT_EQ(st.last_recovery_ms(), 250);
  (*metrics)->Refresh(*c_, 1000);
  std::map<std::string, double> values;
  for (const prometheus::MetricFamily& f : (*metrics_server)->registry().Collect()) {
    for (const prometheus::ClientMetric& m : f.metric) {
      std::string key = f.name;
      for (const prometheus::ClientMetric::Label& l : m.label) key += "," + l.name + "=" + l.value;
      values[key] = m.counter.value + m.gauge.value + static_cast<double>(m.histogram.sample_count);
    }
  }
  EXPECT_EQ(values["ps_coordinator_job_recoveries_total,job=" + job], 1);
  EXPECT_EQ(values["ps_coordinator_clocks_redone_total,job=" + job], 10);
  EXPECT_EQ(values["ps_coordinator_recovery_seconds"], 1) << "one recovery observed";
  EXPECT_EQ(values["ps_coordinator_jobs,state=RUNNING"], 1);
  EXPECT_EQ(values["ps_coordinator_members,healthy=true,role=shard"], 2);
  EXPECT_EQ(values["ps_coordinator_job_checkpoint_clock,job=" + job], 20);
  // A second refresh adds nothing that did not change.
  (*metrics)->Refresh(*c_, 2000);
  for (const prometheus::MetricFamily& f : (*metrics_server)->registry().Collect()) {
    if (f.name != "ps_coordinator_job_recoveries_total") continue;
    ASSERT_EQ(f.metric.size(), 1u);
    EXPECT_EQ(f.metric[0].counter.value, 1);
  }
}

TEST_F(CoordinatorTest, AsyncJobsResumeEachRankAtItsPositionWithoutRollback) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  JobSpec spec = Spec(2);
  spec.mutable_consistency()->set_mode(ASYNC);
  auto id = c_->SubmitJob(spec);
  ASSERT_TRUE(id.ok());
  const std::string job = *id;
  Report(job, 0, 0, 40);
  Report(job, 1, 0, 25);
  shard_[0] = RegisterShard(0, 99);  // Restarted.
  JobStatus st = Get(job);
  EXPECT_EQ(st.state(), RUNNING) << "no restore orders to wait for: " << st.reason();
  EXPECT_EQ(st.recoveries(), 1u);
  EXPECT_EQ(st.clocks_redone(), 0u);
  EXPECT_EQ(Beat(shard_[0], 99).orders_size(), 0);
  const HeartbeatResponse a0 = Beat(w0, 1), a1 = Beat(w1, 2);
  ASSERT_EQ(a0.assignments_size(), 1);
  ASSERT_EQ(a1.assignments_size(), 1);
  EXPECT_EQ(a0.assignments(0).generation(), 1u);
  EXPECT_EQ(a0.assignments(0).resume_clock(), 40u);
  EXPECT_EQ(a1.assignments(0).resume_clock(), 25u);
}

TEST_F(CoordinatorTest, DeadWorkerIsReplacedBySpare) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  const std::string job = Submit(2);
  const std::string spare = RegisterWorker(3);
  ASSERT_EQ(Get(job).state(), RUNNING);
  Report(job, 0, 0, 5);
  Report(job, 1, 0, 5);

  // Everyone but w1 keeps beating past the timeout.
  for (int i = 0; i < 6; ++i) {
    clock_.AdvanceMs(100);
    Beat(w0, 1);
    Beat(spare, 3);
    Beat(shard_[0], 10);
    Beat(shard_[1], 11);
    c_->Tick();
  }
  JobStatus st = Get(job);
  ASSERT_EQ(st.state(), RECOVERING);
  EXPECT_NE(st.reason().find("missed heartbeats"), std::string::npos) << st.reason();
  EXPECT_NE(st.reason().find("initial state"), std::string::npos) << st.reason();
  EXPECT_EQ(st.clock(), 0u);
  const GetClusterResponse cluster = c_->GetCluster();
  for (const Member& m : cluster.members()) {
    if (m.member_id() == w1) {
      EXPECT_FALSE(m.healthy());
    }
    if (m.member_id() == spare) {
      EXPECT_EQ(m.job_id(), job) << "spare took rank 1";
    }
  }
  const HeartbeatResponse h0 = Beat(shard_[0], 10);
  ASSERT_EQ(h0.orders_size(), 1);
  EXPECT_EQ(h0.orders(0).restore_clock(), 0u);
  Beat(shard_[0], 10, {h0.orders(0)});
  Beat(shard_[1], 11, {h0.orders(0)});
  st = Get(job);
  EXPECT_EQ(st.state(), RUNNING);
  EXPECT_EQ(st.recoveries(), 1u);
  const HeartbeatResponse hs = Beat(spare, 3);
  ASSERT_EQ(hs.assignments_size(), 1);
  EXPECT_EQ(hs.assignments(0).rank(), 1u);
  EXPECT_EQ(hs.assignments(0).generation(), 1u);
  // The dead worker comes back: it is idle, and its old work is stale.
  EXPECT_EQ(Beat(w1, 2).assignments_size(), 0);
  EXPECT_TRUE(Report(job, 1, 0, 6));
}

TEST_F(CoordinatorTest, RecoveryWaitsForAReplacementWorker) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  const std::string job = Submit(2);
  for (int i = 0; i < 6; ++i) {
    clock_.AdvanceMs(100);
    Beat(w0, 1);
    Beat(shard_[0], 10);
    Beat(shard_[1], 11);
    c_->Tick();
  }
  ASSERT_EQ(Get(job).state(), RECOVERING);
  const ShardOrder order = Beat(shard_[0], 10).orders(0);
  Beat(shard_[0], 10, {order});
  Beat(shard_[1], 11, {order});
  EXPECT_EQ(Get(job).state(), RECOVERING) << "rank 1 has no worker";
  EXPECT_EQ(Beat(w0, 1).assignments_size(), 0);
  const std::string w2 = RegisterWorker(4);
  EXPECT_EQ(Get(job).state(), RUNNING);
  EXPECT_EQ(Beat(w2, 4).assignments(0).rank(), 1u);
  EXPECT_EQ(Beat(w0, 1).assignments(0).generation(), 1u);
}

TEST_F(CoordinatorTest, CoordinatorRestartKeepsRunningJobs) {
  StartShards();
  const std::string w0 = RegisterWorker(1), w1 = RegisterWorker(2);
  const std::string job = Submit(2);
  Report(job, 0, 0, 7);
  Report(job, 1, 0, 6);
  Reopen();
  EXPECT_EQ(Get(job).state(), RUNNING);
  EXPECT_EQ(Get(job).clock(), 6u);
  HeartbeatRequest hb;
  hb.set_member_id(w0);
  hb.set_incarnation(1);
  EXPECT_EQ(c_->Heartbeat(hb).status().code(), absl::StatusCode::kNotFound);
  // Daemons register again: same shard incarnations, workers claim their ranks.
  StartShards();
  Member m;
  m.set_role(WORKER);
  m.set_incarnation(1);
  m.set_job_id(job);
  m.set_rank(0);
  m.set_generation(0);
  const std::string n0 = c_->Register(m)->member_id();
  EXPECT_NE(n0, w0) << "member ids differ across coordinator boots";
  m.set_incarnation(2);
  m.set_rank(1);
  const std::string n1 = c_->Register(m)->member_id();
  clock_.AdvanceMs(1000);
  Beat(n0, 1);
  Beat(n1, 2);
  Beat(shard_[0], 10);
  Beat(shard_[1], 11);
  c_->Tick();
  EXPECT_EQ(Get(job).state(), RUNNING);
  EXPECT_EQ(Beat(n1, 2).assignments(0).rank(), 1u);
  EXPECT_FALSE(Report(job, 1, 0, 8));
  EXPECT_EQ(Get(job).clock(), 6u) << "rank 0 has not reported since the restart";
  EXPECT_FALSE(Report(job, 0, 0, 9));
  EXPECT_EQ(Get(job).clock(), 8u);
}

TEST_F(CoordinatorTest, UnclaimedRankAfterRestartIsRecovered) {
  StartShards();
  RegisterWorker(1);
  const std::string job = Submit(1);
  Reopen();
  StartShards();
  const std::string spare = RegisterWorker(5);
  EXPECT_EQ(Get(job).state(), RUNNING) << "grace period for the old worker";
  EXPECT_EQ(Beat(spare, 5).assignments_size(), 0);
  // Grace after a restart: the timeout, an interval and a second for reconnecting.
  clock_.AdvanceMs(1300);
  Beat(spare, 5);
  Beat(shard_[0], 10);
  Beat(shard_[1], 11);
  c_->Tick();
  EXPECT_EQ(Get(job).state(), RUNNING) << "still in the grace period";
  clock_.AdvanceMs(400);
  Beat(spare, 5);
  Beat(shard_[0], 10);
  Beat(shard_[1], 11);
  c_->Tick();
  EXPECT_EQ(Get(job).state(), RECOVERING);
  EXPECT_NE(Get(job).reason().find("no worker claimed rank 0"), std::string::npos);
}

TEST_F(CoordinatorTest, ShardRestartWhileCoordinatorWasDown) {
  StartShards();
  RegisterWorker(1);
  const std::string job = Submit(1);
  Reopen();
  RegisterShard(0, 10);
  EXPECT_EQ(Get(job).state(), RUNNING);
  RegisterShard(1, 99);
  EXPECT_EQ(Get(job).state(), RECOVERING);
}

TEST_F(CoordinatorTest, MembershipErrors) {
  HeartbeatRequest hb;
  hb.set_member_id("worker-1.99");
  EXPECT_EQ(c_->Heartbeat(hb).status().code(), absl::StatusCode::kNotFound);
  const std::string w = RegisterWorker(7);
  hb.set_member_id(w);
  hb.set_incarnation(8);
  EXPECT_EQ(c_->Heartbeat(hb).status().code(), absl::StatusCode::kNotFound)
      << "another incarnation must register again";
  Member m;
  m.set_role(SHARD);
  m.set_shard_id(2);
  m.set_address("127.0.0.1:1");
  EXPECT_EQ(c_->Register(m).status().code(), absl::StatusCode::kInvalidArgument);
  m.set_shard_id(0);
  m.set_address("nowhere");
  EXPECT_EQ(c_->Register(m).status().code(), absl::StatusCode::kInvalidArgument);
  m.set_role(ROLE_UNSPECIFIED);
  EXPECT_EQ(c_->Register(m).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CoordinatorTest, WatchersHearOfChangesUntilUnwatched) {
  StartShards();
  RegisterWorker(1);
  const std::string job = Submit(1);
  std::atomic<int> calls{0};
  const uint64_t id = c_->Watch(job, [&calls] { ++calls; });
  Report(job, 0, 0, 1);
  EXPECT_EQ(calls.load(), 1);
  Report(job, 0, 0, 1, 0.7);  // Only the loss changed: not a watched change.
  EXPECT_EQ(calls.load(), 1);
  ASSERT_TRUE(Checkpoint(job, 0, 1).ok());
  ASSERT_TRUE(Checkpoint(job, 1, 1).ok());
  EXPECT_EQ(calls.load(), 2);
  c_->Unwatch(id);
  Report(job, 0, 0, 2);
  EXPECT_EQ(calls.load(), 2);
}

// Every entry point from several threads at once, the way gRPC threads, the timer
// and watchers call them; run under --config=tsan this checks the locking.
TEST_F(CoordinatorTest, ConcurrentCallsKeepTheStateConsistent) {
  StartShards();
  constexpr int kWorkers = 4;
  std::string workers[kWorkers];
  for (int i = 0; i < kWorkers; ++i) workers[i] = RegisterWorker(100 + i);
  std::vector<std::string> jobs;
  for (int i = 0; i < 4; ++i) jobs.push_back(Submit(2));
  std::atomic<int> notified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        HeartbeatRequest hb;
        hb.set_member_id(workers[t]);
        hb.set_incarnation(100 + t);
        auto r = c_->Heartbeat(hb);
        ASSERT_TRUE(r.ok()) << r.status();
        for (const WorkerAssignment& a : r->assignments()) {
          ProgressReport p;
          p.set_job_id(a.job_id());
          p.set_rank(a.rank());
          p.set_generation(a.generation());
          p.set_clock(i);
          p.set_total_clocks(150);
          p.set_finished(i >= 150);
          ASSERT_TRUE(c_->ReportProgress(p).ok());
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 200; ++i) {
      for (uint32_t s = 0; s < 2; ++s) {
        CheckpointReport r;
        r.set_job_id(jobs[i % jobs.size()]);
        r.set_shard_id(s);
        r.set_clock(i);
        ASSERT_TRUE(c_->ReportCheckpoint(r).ok());
        HeartbeatRequest hb;
        hb.set_member_id(shard_[s]);
        hb.set_incarnation(10 + s);
        ASSERT_TRUE(c_->Heartbeat(hb).ok());
      }
      c_->Tick();
    }
  });
  threads.emplace_back([&] {
    for (int i = 0; i < 100; ++i) {
      const uint64_t id = c_->Watch(jobs[i % jobs.size()], [&notified] { ++notified; });
      EXPECT_EQ(c_->ListJobs().size(), jobs.size());
      EXPECT_GE(c_->GetCluster().members_size(), 2 + kWorkers);
      c_->Unwatch(id);
    }
  });
  threads.emplace_back([&] {
    std::this_thread::yield();
    (void)c_->CancelJob(jobs.back()).ok();  // Races with its start and end: any outcome.
  });
  for (std::thread& t : threads) t.join();
  for (const JobStatus& st : c_->ListJobs()) {
    EXPECT_NE(st.state(), JOB_STATE_UNSPECIFIED);
    EXPECT_LE(st.clock(), 200u);
  }
  // The store holds what memory holds.
  const std::vector<JobStatus> before = c_->ListJobs();
  Reopen();
  const std::vector<JobStatus> after = c_->ListJobs();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(after[i].state(), before[i].state()) << after[i].job_id();
    EXPECT_EQ(after[i].complete_checkpoint(), before[i].complete_checkpoint());
  }
}

}  // namespace
}  // namespace ps
