// The chaos suite: real processes under deploy/local_cluster.sh's supervisor, killed
// with SIGKILL at random moments while a job trains.
//
//  * SYNC: ten kill events (single shards, single workers, the coordinator, every
//    shard at once, the coordinator during a recovery); the job succeeds with
//    parameters and optimizer slots bitwise equal to an uninterrupted run of the same
//    spec, and every shard's exactly-once record shows each (rank, clock) applied once.
//  * ASYNC: kills of each kind; the job succeeds within 2 points of test accuracy of an
//    uninterrupted run.
//  * A shard killed while it writes a checkpoint (its staging file exists) comes back
//    on the previous checkpoint and the job still ends bitwise equal; so does a job
//    whose every shard is killed at once.
//  * A shard that comes back without the job's complete checkpoint refuses the
//    restore, and the job rolls back further and still ends bitwise equal.
//  * Network faults: with 20 % of the workers' pulls and pushes (PushPull calls too)
//    dropped (before or after the shard saw them) or delayed past their deadline by a
//    proxy in front of each shard (fault_proxy.h), a SYNC job ends bitwise equal to a
//    run without them.
//
// The random choices are seeded (CHAOS_SEED in the environment, default 1) and
// printed, so a failing run can be repeated.
#include <dirent.h>
#include <sys/stat.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/export.h"
#include "client/npz_reader.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/checkpoint_store.h"
#include "tests/chaos/fault_proxy.h"
#include "tests/chaos/local_cluster.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::chaos::FaultProxy;
using ::ps::chaos::FaultRates;
using ::ps::chaos::FaultStats;
using ::ps::testing::LocalCluster;
using ::ps::testing::LocalClusterOptions;
using Ms = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// The calls that carry tensors, which the network faults hit.
constexpr const char* kTensorMethods[] = {"/ps.ShardService/Pull", "/ps.ShardService/Push",
                                          "/ps.ShardService/PushPull"};

double SecondsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double>(SteadyClock::now() - t).count();
}

uint64_t Seed() {
  const char* s = std::getenv("CHAOS_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : 1;
}

// An mlp on the digits (1,438 training rows, 359 test rows): `clocks_per_epoch` is
// 1438/2 workers/8 = 89.
JobSpec DigitsMlp(const std::string& mode, uint32_t epochs, uint32_t hidden,
                  const std::string& checkpoint) {
  JobSpec spec;
  const std::string text = absl::StrCat(R"(
    name: "chaos digits mlp"
    model { mlp { hidden: )", hidden, R"( } init { kind: UNIFORM scale: 0.1 } }
    data {
      format: CSV train_path: "tests/data/digits.csv.gz" test_every: 5
      num_features: 64 num_classes: 10 label_column: -1 feature_scale: 0.0625
    }
    optimizer { adam {} learning_rate: 0.002 }
    consistency { mode: )", mode, R"( }
    num_workers: 2
    batch_size: 8
    epochs: )", epochs, R"(
    checkpoint { )", checkpoint, R"( keep: 3 }
    seed: 11
    eval { every_clocks: 0 }
  )");
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &spec));
  return spec;
}

// Every table of `want` equal, byte for byte, in `got`.
void ExpectSameModel(const std::map<std::string, std::string>& want,
                     const std::map<std::string, std::string>& got) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [name, bytes] : want) {
    EXPECT_TRUE(got.count(name) && got.at(name) == bytes) << "table " << name << " differs";
  }
}

// The float32 arrays of an exported .npz, by name, as raw bytes.
std::map<std::string, std::string> ReadModel(const std::string& path) {
  std::map<std::string, std::string> out;
  absl::StatusOr<std::map<std::string, NpyArray>> arrays = ReadNpzForTest(path);
  EXPECT_TRUE(arrays.ok()) << arrays.status();
  if (!arrays.ok()) return out;
  for (const auto& [name, a] : *arrays) {
    out[name].assign(reinterpret_cast<const char*>(a.values.data()),
                     a.values.size() * sizeof(float));
  }
  return out;
}

bool Running(const JobStatus& s) { return s.state() == RUNNING; }
bool Succeeded(const JobStatus& s) { return s.state() == SUCCEEDED; }

class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LocalClusterOptions o;
    o.dir = std::string(std::getenv("TEST_TMPDIR")) + "/" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    o.data_root = ps::testing::SourceRoot("tests/data/digits.csv.gz");
    cluster_ = std::make_unique<LocalCluster>(o);
    ASSERT_TRUE(cluster_->Start().ok());
    std::printf("chaos seed %lu (set CHAOS_SEED to change it)\n",
                static_cast<unsigned long>(Seed()));
  }
  void TearDown() override {
    if (HasFailure()) {
      const std::string test_name =
          ::testing::UnitTest::GetInstance()->current_test_info()->name();
      for (const char* name : {"coordinator", "shard0", "shard1", "worker0", "worker1"}) {
        ps::testing::KeepLog(cluster_->Log(name), absl::StrCat(test_name, ".", name));
      }
    }
    cluster_.reset();
  }

  // Runs `spec` without faults to the end; returns its id.
  std::string RunUninterrupted(const JobSpec& spec) {
    absl::StatusOr<std::string> id = cluster_->Submit(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    const auto start = SteadyClock::now();
    absl::StatusOr<JobStatus> st = cluster_->WaitFor(*id, Succeeded, Ms(300000), Ms(100));
    EXPECT_TRUE(st.ok()) << st.status();
    if (st.ok()) {
      std::printf("uninterrupted %s: %lu clocks in %.1f s, test accuracy %.4f\n", id->c_str(),
                  static_cast<unsigned long>(st->clock()), SecondsSince(start),
                  st->eval().accuracy());
    }
    return *id;
  }

  std::map<std::string, std::string> Export(const std::string& job_id) {
    const std::string path = cluster_->options().dir + "/" + job_id + ".npz";
    absl::StatusOr<std::vector<ExportedTable>> tables =
        ExportJob(cluster_->client(), job_id, path);
    EXPECT_TRUE(tables.ok()) << tables.status();
    return ReadModel(path);
  }

  // Waits until the job is RUNNING and `clocks` past `from`; false when it ended.
  bool WaitForProgress(const std::string& id, uint64_t from, uint64_t clocks) {
    absl::StatusOr<JobStatus> st = cluster_->WaitFor(
        id, [&](const JobStatus& s) { return Running(s) && s.clock() >= from + clocks; },
        Ms(180000));
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok();
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// What one kill event did, for the report.
struct Event {
  std::string what;
  uint64_t clock_at_kill = 0;
  uint64_t resumed_from = 0;
  double seconds_to_resume = 0;
};

// Kills according to `plan` while job `id` runs; each event waits for random progress
// first, and for training to resume afterwards (running, past the clock it resumed
// from). Returns the events.
std::vector<Event> RunChaos(LocalCluster* cluster, const std::string& id,
                            const std::vector<std::string>& plan, std::mt19937_64* rng,
                            int* kills) {
  std::vector<Event> events;
  uint64_t last = 0;
  const int first_victim = std::uniform_int_distribution<int>(0, 1)(*rng);
  std::map<std::string, int> kills_of;
  for (size_t k = 0; k < plan.size(); ++k) {
    const std::string& kind = plan[k];
    const bool last_event = k + 1 == plan.size();
    std::uniform_int_distribution<uint64_t> progress(5, 60);
    const uint64_t wait_clocks = progress(*rng);
    absl::StatusOr<JobStatus> st = cluster->WaitFor(
        id, [&](const JobStatus& s) { return Running(s) && s.clock() >= last + wait_clocks; },
        Ms(180000));
    EXPECT_TRUE(st.ok()) << "before " << kind << ": " << st.status();
    if (!st.ok()) return events;
    std::this_thread::sleep_for(Ms(std::uniform_int_distribution<int>(0, 200)(*rng)));
    Event e;
    e.clock_at_kill = st->clock();
    const uint32_t recoveries = st->recoveries();
    const auto t0 = SteadyClock::now();
    auto kill = [&](const std::string& name) {
      // A daemon the supervisor is restarting has no process yet: try for a while.
      for (int i = 0; i < 100; ++i) {
        if (cluster->Kill(name)) {
          ++*kills;
          e.what += (e.what.empty() ? "" : "+") + name;
          return;
        }
        std::this_thread::sleep_for(Ms(50));
      }
      ADD_FAILURE() << "could not kill " << name;
    };
    // Successive kills of one kind alternate between the two instances, from a
    // random first one, so both shards and both workers are hit.
    const int victim = (first_victim + kills_of[kind]++) % 2;
    bool expect_recovery = true;
    if (kind == "worker") {
      kill(absl::StrCat("worker", victim));
    } else if (kind == "shard") {
      kill(absl::StrCat("shard", victim));
    } else if (kind == "all_shards") {
      kill("shard0");
      kill("shard1");
    } else if (kind == "coordinator") {
      kill("coordinator");
      expect_recovery = false;  // Workers claim their ranks back; nothing rolls back.
    } else if (kind == "coordinator_during_recovery") {
      kill(absl::StrCat("shard", victim));
      absl::StatusOr<JobStatus> r = cluster->WaitFor(
          id, [](const JobStatus& s) { return s.state() == RECOVERING; }, Ms(60000), Ms(5));
      EXPECT_TRUE(r.ok()) << r.status();
      kill("coordinator");
    }
    // Resumed: running again (after a recovery when one is due) and past the clock
    // it resumed from.
    uint64_t resumed_from = 0;
    bool seen_resume = false;
    st = cluster->WaitFor(
        id,
        [&](const JobStatus& s) {
          // After the last kill the job may well finish before a poll sees it run.
          if (last_event && Succeeded(s)) return true;
          if (!Running(s) || (expect_recovery && s.recoveries() <= recoveries)) return false;
          if (!seen_resume) {
            seen_resume = true;
            resumed_from = s.clock();
          }
          return s.clock() > resumed_from;
        },
        Ms(180000), Ms(10));
    EXPECT_TRUE(st.ok()) << "after " << e.what << ": " << st.status();
    if (!st.ok()) return events;
    e.resumed_from = resumed_from;
    e.seconds_to_resume = SecondsSince(t0);
    last = st->clock();
    std::printf("kill %-28s at clock %5lu: resumed from clock %5lu after %.2f s (%s)\n",
                e.what.c_str(), static_cast<unsigned long>(e.clock_at_kill),
                static_cast<unsigned long>(e.resumed_from), e.seconds_to_resume,
                st->reason().c_str());
    std::fflush(stdout);
    events.push_back(e);
  }
  return events;
}

TEST_F(ChaosTest, SyncJobEndsBitwiseEqualAfterTenKillEvents) {
  // Long enough (17,800 clocks) that training outlasts ten kills: the job keeps
  // training while a killed coordinator restarts (3,000 clocks and more each time).
  // With 10,680 clocks the ten events took 10,600 once the workers computed on one
  // thread each (local_cluster.sh --cpu_threads) and the last kill came after the end.
  const JobSpec spec = DigitsMlp("SYNC", 200, 32, "interval_clocks: 20");
  const std::string ref = RunUninterrupted(spec);
  ASSERT_FALSE(ref.empty());
  const std::map<std::string, std::string> want = Export(ref);
  ASSERT_FALSE(want.empty());
  absl::StatusOr<std::vector<JobStats>> want_stats = cluster_->ShardStats(ref);
  ASSERT_TRUE(want_stats.ok()) << want_stats.status();

  std::mt19937_64 rng(Seed());
  std::vector<std::string> plan = {"worker",      "worker",     "shard",
                                   "shard",       "shard",      "coordinator",
                                   "coordinator", "all_shards", "coordinator_during_recovery",
                                   "worker"};
  std::shuffle(plan.begin(), plan.end(), rng);
  absl::StatusOr<std::string> id = cluster_->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  int kills = 0;
  const std::vector<Event> events = RunChaos(cluster_.get(), *id, plan, &rng, &kills);
  ASSERT_EQ(events.size(), plan.size());
  EXPECT_GE(kills, 10);
  absl::StatusOr<JobStatus> done = cluster_->WaitFor(*id, Succeeded, Ms(300000), Ms(100));
  ASSERT_TRUE(done.ok()) << done.status();
  std::printf("chaos run: %d SIGKILLs, %u recoveries, test accuracy %.4f\n", kills,
              done->recoveries(), done->eval().accuracy());

  // The model: every table bitwise equal to the uninterrupted run's.
  ExpectSameModel(want, Export(*id));
  // Weights and optimizer slots (the digest covers both) on every shard, and the
  // exactly-once record: every rank applied every clock, and as many parts as the
  // uninterrupted run applied (a part applied twice would make it larger).
  absl::StatusOr<std::vector<JobStats>> stats = cluster_->ShardStats(*id);
  ASSERT_TRUE(stats.ok()) << stats.status();
  for (size_t s = 0; s < stats->size(); ++s) {
    const JobStats& g = (*stats)[s];
    const JobStats& w = (*want_stats)[s];
    EXPECT_EQ(g.state_digest(), w.state_digest()) << "shard " << s;
    EXPECT_EQ(g.clock(), done->total_clocks()) << "shard " << s;
    ASSERT_EQ(g.worker_clocks_size(), 2);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(g.worker_clocks(r), done->total_clocks()) << "shard " << s << " rank " << r;
    }
    EXPECT_EQ(g.pushes_applied(), w.pushes_applied()) << "shard " << s;
    EXPECT_EQ(g.pushes_applied(), 2 * done->total_clocks()) << "shard " << s;
    std::printf("shard %zu: clock %lu, parts applied %lu (uninterrupted %lu), duplicates "
                "acknowledged %lu\n",
                s, static_cast<unsigned long>(g.clock()),
                static_cast<unsigned long>(g.pushes_applied()),
                static_cast<unsigned long>(w.pushes_applied()),
                static_cast<unsigned long>(g.pushes_duplicate()));
  }
}

TEST_F(ChaosTest, AsyncJobEndsWithinTwoPointsAfterKills) {
  // Softmax regression: a convex problem, so the final accuracy barely depends on the
  // order ASYNC pushes land in (an mlp's runs spread over 2.5 points with no fault).
  // 180 epochs, about 16000 clocks: five kills with about 2 s of recovery each must
  // fit in the job (90 epochs ran 6 s once pushes and pulls went as one call, and the
  // job ended before the fifth kill).
  JobSpec spec = DigitsMlp("ASYNC", 180, 32, "interval_seconds: 1");
  spec.mutable_model()->mutable_softmax();
  const std::string ref = RunUninterrupted(spec);
  ASSERT_FALSE(ref.empty());
  absl::StatusOr<JobStatus> want = cluster_->GetJob(ref);
  ASSERT_TRUE(want.ok());

  std::mt19937_64 rng(Seed() + 1);
  std::vector<std::string> plan = {"worker", "shard", "coordinator", "worker", "shard"};
  std::shuffle(plan.begin(), plan.end(), rng);
  absl::StatusOr<std::string> id = cluster_->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  int kills = 0;
  const std::vector<Event> events = RunChaos(cluster_.get(), *id, plan, &rng, &kills);
  ASSERT_EQ(events.size(), plan.size());
  absl::StatusOr<JobStatus> done = cluster_->WaitFor(*id, Succeeded, Ms(300000), Ms(100));
  ASSERT_TRUE(done.ok()) << done.status();
  std::printf("ASYNC: uninterrupted accuracy %.4f, after %d SIGKILLs %.4f\n",
              want->eval().accuracy(), kills, done->eval().accuracy());
  // The test set has 359 examples, so a point is under 4 of them. Uninterrupted runs of
  // this job ended at 0.9638-0.9694 and runs with the kills at 0.9554-0.9666 (343-348
  // right), once 1.4 points under the uninterrupted run it was compared with.
  EXPECT_NEAR(done->eval().accuracy(), want->eval().accuracy(), 0.02);
}

// True when a checkpoint staging file exists under `dir` (a write in progress).
bool StagingFileIn(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    if (name.size() > 4 && name.substr(name.size() - 4) == ".sst" &&
        dir.find("staging") != std::string::npos) {
      found = true;
      break;
    }
    if (e->d_type == DT_DIR && StagingFileIn(path)) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

TEST_F(ChaosTest, ShardKilledDuringCheckpointWriteAndAllShardsAtOnce) {
  // A bigger model, so a checkpoint takes long enough to be caught in the middle. 8
  // epochs, 712 clocks, a few seconds here: with 2 (178 clocks in 1.1 s), once the
  // SYNC sums were vectorised, the job ended 0.7 s after the first recovery, before
  // the test saw it running again.
  const JobSpec spec = DigitsMlp("SYNC", 8, 2048, "interval_clocks: 5");
  const std::string ref = RunUninterrupted(spec);
  ASSERT_FALSE(ref.empty());
  const std::map<std::string, std::string> want = Export(ref);

  absl::StatusOr<std::string> id = cluster_->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(WaitForProgress(*id, 0, 12));
  // Kill shard 0 the moment a checkpoint write of it is seen in progress.
  const std::string dir = cluster_->options().dir + "/data/shard0";
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  bool caught = false;
  while (SteadyClock::now() < deadline && !caught) {
    if (StagingFileIn(dir)) caught = cluster_->Kill("shard0");
  }
  ASSERT_TRUE(caught) << "no checkpoint write of shard 0 was seen";
  std::printf("killed shard0 during a checkpoint write\n");
  absl::StatusOr<JobStatus> st =
      cluster_->WaitFor(*id, [](const JobStatus& s) { return Running(s) && s.recoveries() >= 1; },
                        Ms(120000));
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_TRUE(WaitForProgress(*id, st->clock(), 8));
  ASSERT_TRUE(cluster_->Kill("shard0"));
  ASSERT_TRUE(cluster_->Kill("shard1"));
  std::printf("killed every shard at once\n");
  absl::StatusOr<JobStatus> done = cluster_->WaitFor(*id, Succeeded, Ms(300000), Ms(100));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_GE(done->recoveries(), 2u);
  ExpectSameModel(want, Export(*id));
}

// A shard that comes back without the job's complete checkpoint (lost from its disk
// while it was down) refuses the restore; the coordinator rolls back to an older
// checkpoint every shard holds, and the job still ends bitwise equal.
TEST_F(ChaosTest, ShardMissingTheCompleteCheckpointRollsTheJobBackFurther) {
  // 16 epochs, about 1400 clocks: a few seconds here, so the test sees the job running
  // (workers report every 0.5 s) and kills shard 1 well before its end. With 4 epochs
  // the job ended in 0.7 s once pushes and pulls went as one call, before it was seen.
  JobSpec spec = DigitsMlp("SYNC", 16, 32, "interval_clocks: 10");
  spec.mutable_checkpoint()->set_keep(6);  // Older checkpoints to fall back to.
  const std::string ref = RunUninterrupted(spec);
  ASSERT_FALSE(ref.empty());
  const std::map<std::string, std::string> want = Export(ref);

  absl::StatusOr<std::string> id = cluster_->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(WaitForProgress(*id, 0, 60));
  // Kill shard 1 and take its store before the supervisor restarts it (1 s later; a
  // restart that wins the race is killed again).
  const std::string dir = cluster_->options().dir + "/data/shard1";
  std::unique_ptr<CheckpointStore> store;
  for (int attempt = 0; attempt < 10 && store == nullptr; ++attempt) {
    cluster_->Kill("shard1");
    const auto deadline = SteadyClock::now() + std::chrono::seconds(3);
    while (store == nullptr && SteadyClock::now() < deadline) {
      CheckpointStore::Options o;
      o.dir = dir;
      absl::StatusOr<std::unique_ptr<CheckpointStore>> opened = CheckpointStore::Open(o);
      if (opened.ok()) store = std::move(*opened);
    }
  }
  ASSERT_NE(store, nullptr) << "could not take shard 1's checkpoint store";
  // With shard 1 down, nothing more completes.
  absl::StatusOr<JobStatus> st = cluster_->GetJob(*id);
  ASSERT_TRUE(st.ok()) << st.status();
  const uint64_t complete = st->complete_checkpoint();
  absl::StatusOr<std::vector<uint64_t>> held = store->List(*id);
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(std::find(held->begin(), held->end(), complete) != held->end());
  ASSERT_LT(held->front(), complete) << "no older checkpoint to fall back to";
  const uint64_t older = *(std::lower_bound(held->begin(), held->end(), complete) - 1);
  ASSERT_TRUE(store->DeleteNewer(*id, older).ok());
  store.reset();
  std::printf("shard 1 lost its checkpoints above clock %lu (complete: %lu)\n",
              static_cast<unsigned long>(older), static_cast<unsigned long>(complete));

  absl::StatusOr<JobStatus> done = cluster_->WaitFor(*id, Succeeded, Ms(300000), Ms(100));
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_GE(done->recoveries(), 1u);
  const std::string log = ps::testing::ReadFile(cluster_->Log("coordinator"));
  // A checkpoint report shard 1 sent just before the kill can still land after the read
  // above, so the clock the coordinator asks for is the one read or a newer one shard 1
  // held: all of them were deleted.
  bool named_a_lost_clock = false;
  for (uint64_t clock : *held) {
    named_a_lost_clock |=
        clock >= complete &&
        log.find(absl::StrCat("shard 1 cannot load its checkpoint at clock ", clock, "\n")) !=
            std::string::npos;
  }
  EXPECT_TRUE(named_a_lost_clock) << "complete was " << complete << " when read";
  EXPECT_NE(log.find(absl::StrCat("rolling back to checkpoint at clock ", older)),
            std::string::npos);
  ExpectSameModel(want, Export(*id));
}

// Both shards SIGKILLed after the job ended (before anyone exported it) come back
// with the finished model: the job's last clock is not a multiple of its checkpoint
// interval, so only the shards' final checkpoint holds it, and the workers ended only
// once it was on disk.
TEST_F(ChaosTest, ShardsKilledAfterTheEndServeTheFinishedModel) {
  const JobSpec spec = DigitsMlp("SYNC", 2, 32, "interval_clocks: 7");
  const std::string id = RunUninterrupted(spec);
  ASSERT_FALSE(id.empty());
  absl::StatusOr<JobStatus> done = cluster_->GetJob(id);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_NE(done->total_clocks() % 7, 0u) << "the last clock must fall between checkpoints";
  const std::map<std::string, std::string> want = Export(id);
  ASSERT_FALSE(want.empty());
  absl::StatusOr<std::vector<JobStats>> before = cluster_->ShardStats(id);
  ASSERT_TRUE(before.ok()) << before.status();

  for (const char* shard : {"shard0", "shard1"}) ASSERT_TRUE(cluster_->Kill(shard)) << shard;
  // The supervisor restarts them; each loads its newest checkpoint (ShardStats and the
  // export wait for them to listen again).
  absl::StatusOr<std::vector<JobStats>> after = cluster_->ShardStats(id);
  ASSERT_TRUE(after.ok()) << after.status();
  for (size_t s = 0; s < after->size(); ++s) {
    EXPECT_EQ((*after)[s].clock(), done->total_clocks()) << "shard " << s;
    EXPECT_EQ((*after)[s].state_digest(), (*before)[s].state_digest()) << "shard " << s;
  }
  ExpectSameModel(want, Export(id));
}

// Daemons started one by one, so each shard can sit behind its own fault proxy: the
// shard advertises the proxy's address to the coordinator, and workers dial that.
TEST(NetworkFaultTest, SyncJobEndsBitwiseEqualWithTwentyPercentOfCallsFaulted) {
  using ps::testing::Daemon;
  using ps::testing::Runfile;
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/network";
  ::mkdir(dir.c_str(), 0755);
  const std::string root = ps::testing::SourceRoot("tests/data/digits.csv.gz");
  Daemon coordinator;
  ASSERT_TRUE(coordinator
                  .Start({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                          "--data_dir=" + dir + "/coord", "--data_root=" + root,
                          "--num_shards=2", "--heartbeat_interval_ms=200",
                          "--heartbeat_timeout_ms=3000"},
                         dir + "/coordinator.log")
                  .ok());
  std::vector<std::unique_ptr<FaultProxy>> proxies;
  std::vector<std::unique_ptr<Daemon>> shards;
  for (int i = 0; i < 2; ++i) {
    FaultProxy::Options o;
    o.seed = Seed() + i;
    o.delay = absl::Milliseconds(1500);  // Past the workers' 1 s deadline.
    o.methods.assign(std::begin(kTensorMethods), std::end(kTensorMethods));
    auto proxy = FaultProxy::Start(o);
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxies.push_back(*std::move(proxy));
    shards.push_back(std::make_unique<Daemon>());
    ASSERT_TRUE(shards.back()
                    ->Start({Runfile("server/ps_server"), "--port=0",
                             absl::StrCat("--shard_id=", i), "--num_shards=2",
                             absl::StrCat("--data_dir=", dir, "/shard", i),
                             "--coordinator=" + coordinator.address(),
                             "--advertise_address=" + proxies.back()->address()},
                            absl::StrCat(dir, "/shard", i, ".log"))
                    .ok());
    ASSERT_TRUE(proxies.back()->SetTarget(shards.back()->address()).ok());
  }
  std::vector<pid_t> workers;
  for (int i = 0; i < 2; ++i) {
    workers.push_back(ps::testing::Spawn(
        {Runfile("worker/ps_worker"), "--coordinator=" + coordinator.address(), "--device=cpu",
         "--data_root=" + root, "--rpc_timeout_s=1"},
        absl::StrCat(dir, "/worker", i, ".log")));
  }
  CoordinatorClientOptions co;
  co.address = coordinator.address();
  auto client = CoordinatorClient::Connect(co);
  ASSERT_TRUE(client.ok());
  // About 110 clocks: every delayed call costs a deadline and a retry.
  JobSpec spec = DigitsMlp("SYNC", 5, 32, "interval_clocks: 20");
  spec.set_batch_size(32);
  auto run = [&](const char* what) -> std::string {
    absl::StatusOr<std::string> id = (*client)->SubmitJob(spec);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return "";
    const auto start = SteadyClock::now();
    while (SecondsSince(start) < 400) {
      absl::StatusOr<JobStatus> st = (*client)->GetJob(*id);
      if (st.ok() && st->state() == SUCCEEDED) {
        std::printf("%s: %s succeeded in %.1f s, test accuracy %.4f\n", what, id->c_str(),
                    SecondsSince(start), st->eval().accuracy());
        return *id;
      }
      if (st.ok() && st->state() != PENDING && st->state() != RUNNING &&
          st->state() != RECOVERING) {
        ADD_FAILURE() << what << ": " << JobState_Name(st->state()) << ": " << st->reason();
        return "";
      }
      std::this_thread::sleep_for(Ms(100));
    }
    ADD_FAILURE() << what << " did not finish";
    return "";
  };
  auto model = [&](const std::string& id) {
    const std::string path = dir + "/" + id + ".npz";
    EXPECT_TRUE(ExportJob(client->get(), id, path).ok());
    return ReadModel(path);
  };
  const std::string ref = run("without faults");
  ASSERT_FALSE(ref.empty());
  const std::map<std::string, std::string> want = model(ref);
  uint64_t calls_before = 0;
  for (auto& p : proxies) {
    const FaultStats st = p->stats();
    for (const char* m : kTensorMethods) calls_before += st.Of(m).calls;
  }
  FaultRates rates;
  rates.drop_request = 0.09;  // 21 % in all, so a run does not fall short of 20 %.
  rates.drop_reply = 0.08;
  rates.delay = 0.04;
  for (auto& p : proxies) ASSERT_TRUE(p->SetRates(rates).ok());
  const std::string id = run("with 20 % faults");
  for (auto& p : proxies) {
    ASSERT_TRUE(p->SetRates(FaultRates()).ok());
    p->WaitForLateCalls(absl::Seconds(30));
  }
  ASSERT_FALSE(id.empty());
  uint64_t faults = 0, calls = 0;
  for (auto& p : proxies) {
    const FaultStats st = p->stats();
    for (const char* m : kTensorMethods) {
      faults += st.Of(m).faults();
      calls += st.Of(m).calls;
      std::printf("%s: %lu calls, %lu requests dropped, %lu replies dropped, %lu delayed\n", m,
                  static_cast<unsigned long>(st.Of(m).calls),
                  static_cast<unsigned long>(st.Of(m).dropped_request),
                  static_cast<unsigned long>(st.Of(m).dropped_reply),
                  static_cast<unsigned long>(st.Of(m).delayed));
    }
  }
  std::printf("faulted run: %lu faults on %lu pulls and pushes (%.1f %%)\n",
              static_cast<unsigned long>(faults),
              static_cast<unsigned long>(calls - calls_before),
              100.0 * static_cast<double>(faults) / static_cast<double>(calls - calls_before));
  EXPECT_GE(static_cast<double>(faults), 0.15 * static_cast<double>(calls - calls_before))
      << "about 20 % of the faulted run's calls must have been faulted";
  ExpectSameModel(want, model(id));
  for (pid_t w : workers) {
    ::kill(w, SIGTERM);
    ps::testing::Wait(w);
  }
}

}  // namespace
}  // namespace ps
