// Load with hostile input: 32 client threads send a mix of valid and malformed requests
// to a real ps_server and a real ps_coordinator for --duration_s seconds (default 60).
//
// Asserts: both daemons are alive at the end and answer the gRPC health check; every
// request got the code its kind expects (valid ones OK, each malformed one its error);
// the shard's own per-method, per-code request counters (/metrics) equal the client's;
// and each daemon's resident memory after the run is at most 2 x its resident memory
// after the warm-up + 64 MiB: room for the allocator's caching of 32 in-flight requests
// of up to 4 MiB, not for a leak of about 2 KiB or more per request at the ~1300
// requests/s of a 2-core machine. Prints p50/p99 latency and counts per request kind.
//
//   bazel test //tests/load:load_test --test_output=streamed [--test_arg=--duration_s=10]
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/packing.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;
using Code = grpc::StatusCode;

int g_duration_s = 60;
constexpr int kThreads = 32;
constexpr int kChannels = 4;  // Connections per daemon; threads share them round-robin.
constexpr uint64_t kDenseSize = 1 << 20;
constexpr uint32_t kDim = 16;
constexpr uint64_t kKeySpace = 1024;  // Sparse keys used: rows stop growing after warm-up.
constexpr int kMaxValidJobs = 100;    // Valid SubmitJobs in all (each job stays in the registry).
constexpr int kMaxMessageMb = 4;

const char* CodeName(Code c) {
  switch (c) {
    case Code::OK: return "OK";
    case Code::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case Code::NOT_FOUND: return "NOT_FOUND";
    case Code::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case Code::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case Code::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case Code::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case Code::UNAVAILABLE: return "UNAVAILABLE";
    default: return "OTHER";
  }
}

// Resident memory of `pid` in KiB (VmRSS), or -1.
int64_t RssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atoll(line.c_str() + 6);
  }
  return -1;
}

// One unary call of `method` with `req`; the status code.
template <typename Stub, typename Req, typename Resp>
grpc::Status Call(Stub* stub,
                  grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
                  const Req& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  Resp resp;
  return (stub->*method)(&ctx, req, &resp);
}

// True when the daemon at `address` answers the standard health check with SERVING.
bool Healthy(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1), response;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                    &response, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);  // status: SERVING
}

// What one kind of request did, over all threads.
struct KindStats {
  uint64_t sent = 0;
  uint64_t matched = 0;  // Got the expected code.
  std::map<std::string, uint64_t> codes;
  std::string first_mismatch;
  std::vector<uint32_t> latency_us;
};

// A kind of request: its name, the shard method it calls (for the /metrics check; empty
// for the coordinator), the code it must get, its weight in the mix, and the call.
struct Kind {
  std::string name;
  std::string shard_method;
  Code expected;
  int weight;
  std::function<grpc::Status(int thread, std::mt19937_64& rng)> call;
};

class LoadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/load";
    ::mkdir(dir_.c_str(), 0755);
    root_ = ps::testing::SourceRoot("tests/data/digits.csv.gz");
    ASSERT_TRUE(shard_
                    .Start({Runfile("server/ps_server"), "--port=0", "--shard_id=0",
                            "--num_shards=1", "--data_dir=" + dir_ + "/shard",
                            "--memory_budget_mb=512", "--metrics_port=0",
                            "--max_message_mb=" + std::to_string(kMaxMessageMb)},
                           dir_ + "/shard.log")
                    .ok());
    ASSERT_TRUE(coordinator_
                    .Start({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                            "--data_dir=" + dir_ + "/coord", "--data_root=" + root_,
                            "--num_shards=1"},
                           dir_ + "/coordinator.log")
                    .ok());
    for (int i = 0; i < kChannels; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("ps.load_channel", i);  // Distinct arguments: distinct connections.
      args.SetMaxReceiveMessageSize(-1);
      shard_stubs_.push_back(ShardService::NewStub(
          grpc::CreateCustomChannel(shard_.address(), grpc::InsecureChannelCredentials(), args)));
      coord_stubs_.push_back(CoordinatorService::NewStub(grpc::CreateCustomChannel(
          coordinator_.address(), grpc::InsecureChannelCredentials(), args)));
    }
  }

  void TearDown() override {
    if (shard_.running()) shard_.Kill(SIGTERM);
    if (coordinator_.running()) coordinator_.Kill(SIGTERM);
    if (HasFailure()) {
      ps::testing::KeepLog(dir_ + "/shard.log", "shard");
      ps::testing::KeepLog(dir_ + "/coordinator.log", "coordinator");
    }
  }

  ShardService::Stub* Shard(int thread) { return shard_stubs_[thread % kChannels].get(); }
  CoordinatorService::Stub* Coord(int thread) { return coord_stubs_[thread % kChannels].get(); }

  std::string dir_, root_;
  Daemon shard_, coordinator_;
  std::vector<std::unique_ptr<ShardService::Stub>> shard_stubs_;
  std::vector<std::unique_ptr<CoordinatorService::Stub>> coord_stubs_;
};

Slice Dense(uint64_t begin, uint64_t count, const std::string& table = "w") {
  Slice s;
  s.set_table(table);
  s.set_begin(begin);
  s.set_count(count);
  return s;
}

Slice Sparse(const std::vector<uint64_t>& keys) {
  Slice s;
  s.set_table("emb");
  s.set_keys(PackKeys(keys));
  return s;
}

std::vector<float> Gradient(size_t n, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> u(-0.01f, 0.01f);
  std::vector<float> g(n);
  for (float& v : g) v = u(rng);
  return g;
}

TEST_F(LoadTest, MixedValidAndMalformedRequests) {
  // The shard's job: ASYNC, one rank per client thread, NaN gradients rejected.
  CreateJobRequest create_job;
  ShardJobConfig* config = create_job.mutable_config();
  config->set_job_id("load");
  config->mutable_consistency()->set_mode(ASYNC);
  config->set_num_workers(kThreads);
  config->set_num_shards(1);
  config->set_nonfinite(NONFINITE_REJECT);
  ASSERT_TRUE(Call(Shard(0), &ShardService::Stub::CreateJob, create_job).ok());
  CreateTableRequest dense_table, sparse_table;
  dense_table.set_job_id("load");
  dense_table.mutable_table()->set_name("w");
  dense_table.mutable_table()->set_kind(TableSpec::DENSE);
  dense_table.mutable_table()->set_size(kDenseSize);
  dense_table.mutable_table()->mutable_optimizer()->mutable_sgd();
  dense_table.mutable_table()->mutable_optimizer()->set_learning_rate(0.01f);
  sparse_table.set_job_id("load");
  sparse_table.mutable_table()->set_name("emb");
  sparse_table.mutable_table()->set_kind(TableSpec::SPARSE);
  sparse_table.mutable_table()->set_dim(kDim);
  sparse_table.mutable_table()->mutable_init()->set_kind(Initializer::UNIFORM);
  sparse_table.mutable_table()->mutable_init()->set_scale(0.01f);
  sparse_table.mutable_table()->mutable_optimizer()->mutable_adagrad();
  sparse_table.mutable_table()->mutable_optimizer()->set_learning_rate(0.1f);
  ASSERT_TRUE(Call(Shard(0), &ShardService::Stub::CreateTable, dense_table).ok());
  ASSERT_TRUE(Call(Shard(0), &ShardService::Stub::CreateTable, sparse_table).ok());

  // The coordinator's valid spec: the bundled digits job.
  SubmitJobRequest good_submit;
  {
    std::ifstream in(Runfile("deploy/jobs/digits_softmax.textproto"));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, good_submit.mutable_spec()));
  }
  GetJobRequest known_job;
  {
    grpc::ClientContext ctx;
    SubmitJobResponse resp;
    const grpc::Status s = Coord(0)->SubmitJob(&ctx, good_submit, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
    known_job.set_job_id(resp.job_id());
  }
  std::atomic<int> valid_jobs{1};

  std::vector<uint64_t> next_clock(kThreads, 0);  // Per thread (= rank): its next push clock.
  const auto keys = [](std::mt19937_64& rng, size_t n) {
    std::vector<uint64_t> k(n);
    for (uint64_t& v : k) v = rng() % kKeySpace;
    return k;
  };

  // A valid push of thread t's next clock: 4096 dense elements and 32 sparse rows.
  const auto valid_push = [&](int t, std::mt19937_64& rng) {
    PushRequest r;
    r.set_job_id("load");
    r.set_rank(static_cast<uint32_t>(t));
    r.set_clock(next_clock[t]);
    r.set_num_parts(1);
    *r.add_slices() = Dense(rng() % (kDenseSize - 4096), 4096);
    *r.add_slices() = Sparse(keys(rng, 32));
    r.set_values(PackFloats(Gradient(4096 + 32 * kDim, rng)));
    return r;
  };

  std::vector<Kind> kinds = {
      // --- The shard, valid.
      {"shard CreateJob (again)", "CreateJob", Code::OK, 1,
       [&](int t, std::mt19937_64&) { return Call(Shard(t), &ShardService::Stub::CreateJob, create_job); }},
      {"shard CreateTable (again)", "CreateTable", Code::OK, 1,
       [&](int t, std::mt19937_64&) { return Call(Shard(t), &ShardService::Stub::CreateTable, sparse_table); }},
      {"shard Pull", "Pull", Code::OK, 12,
       [&](int t, std::mt19937_64& rng) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         r.set_clock(next_clock[t]);
         *r.add_slices() = Dense(rng() % (kDenseSize - 4096), 4096);
         *r.add_slices() = Sparse(keys(rng, 32));
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Push", "Push", Code::OK, 12,
       [&](int t, std::mt19937_64& rng) {
         grpc::Status s = Call(Shard(t), &ShardService::Stub::Push, valid_push(t, rng));
         if (s.ok()) ++next_clock[t];
         return s;
       }},
      {"shard PushPull", "PushPull", Code::OK, 6,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r = valid_push(t, rng);
         *r.add_pull_slices() = Dense(rng() % (kDenseSize - 4096), 4096);
         *r.add_pull_slices() = Sparse(keys(rng, 32));
         grpc::Status s = Call(Shard(t), &ShardService::Stub::PushPull, r);
         if (s.ok()) ++next_clock[t];
         return s;
       }},
      // --- The shard, malformed.
      {"shard PushPull: unknown pull table", "PushPull", Code::NOT_FOUND, 1,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r = valid_push(t, rng);
         *r.add_pull_slices() = Dense(0, 1, "no_such_table");
         return Call(Shard(t), &ShardService::Stub::PushPull, r);
       }},
      {"shard Push: with pull slices", "Push", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r = valid_push(t, rng);
         *r.add_pull_slices() = Dense(0, 10);
         return Call(Shard(t), &ShardService::Stub::Push, r);
       }},
      {"shard Pull: unknown table", "Pull", Code::NOT_FOUND, 2,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         *r.add_slices() = Dense(0, 1, "no_such_table");
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: bad table name", "Pull", Code::NOT_FOUND, 1,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         *r.add_slices() = Dense(0, 1, std::string("w\0../..", 7));
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: unknown job", "Pull", Code::NOT_FOUND, 2,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("no_such_job");
         *r.add_slices() = Dense(0, 1);
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: range past the table", "Pull", Code::OUT_OF_RANGE, 2,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         *r.add_slices() = Dense(kDenseSize - 10, 11);
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: keys not whole uint64", "Pull", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         Slice s;
         s.set_table("emb");
         s.set_keys(std::string(13, '\x01'));
         *r.add_slices() = s;
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: no keys", "Pull", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         *r.add_slices() = Sparse({});
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Pull: keys for a dense table", "Pull", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64&) {
         PullRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         Slice s = Dense(0, 1);
         s.set_keys(PackKeys({1, 2}));
         *r.add_slices() = s;
         return Call(Shard(t), &ShardService::Stub::Pull, r);
       }},
      {"shard Push: wrong byte length", "Push", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         r.set_clock(next_clock[t]);
         r.set_num_parts(1);
         *r.add_slices() = Dense(0, 100);
         r.set_values(PackFloats(Gradient(100, rng)).substr(1));
         return Call(Shard(t), &ShardService::Stub::Push, r);
       }},
      {"shard Push: NaN value", "Push", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         r.set_clock(next_clock[t]);
         r.set_num_parts(1);
         *r.add_slices() = Dense(0, 100);
         std::vector<float> g = Gradient(100, rng);
         g[rng() % 100] = std::numeric_limits<float>::quiet_NaN();
         r.set_values(PackFloats(g));
         return Call(Shard(t), &ShardService::Stub::Push, r);
       }},
      {"shard Push: rank past num_workers", "Push", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64& rng) {
         PushRequest r;
         r.set_job_id("load");
         r.set_rank(kThreads + static_cast<uint32_t>(t));
         r.set_num_parts(1);
         *r.add_slices() = Dense(0, 10);
         r.set_values(PackFloats(Gradient(10, rng)));
         return Call(Shard(t), &ShardService::Stub::Push, r);
       }},
      {"shard Push: oversize message", "", Code::RESOURCE_EXHAUSTED, 1,
       [&](int t, std::mt19937_64&) {
         PushRequest r;
         r.set_job_id("load");
         r.set_rank(static_cast<uint32_t>(t));
         r.set_num_parts(1);
         *r.add_slices() = Dense(0, (kMaxMessageMb << 20) / 4 + 1024);
         r.set_values(std::string(((kMaxMessageMb << 20) / 4 + 1024) * 4, '\0'));
         return Call(Shard(t), &ShardService::Stub::Push, r);
       }},
      {"shard CreateTable: past the memory budget", "CreateTable", Code::RESOURCE_EXHAUSTED, 1,
       [&](int t, std::mt19937_64&) {
         CreateTableRequest r = dense_table;
         r.mutable_table()->set_name("huge");
         r.mutable_table()->set_size(uint64_t{1} << 34);
         return Call(Shard(t), &ShardService::Stub::CreateTable, r);
       }},
      {"shard CreateTable: bad name", "CreateTable", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64&) {
         CreateTableRequest r = dense_table;
         r.mutable_table()->set_name("w/../x");
         return Call(Shard(t), &ShardService::Stub::CreateTable, r);
       }},
      {"shard CreateJob: empty config", "CreateJob", Code::INVALID_ARGUMENT, 1,
       [&](int t, std::mt19937_64&) {
         return Call(Shard(t), &ShardService::Stub::CreateJob, CreateJobRequest());
       }},
      // --- The coordinator, valid.
      {"coord SubmitJob+CancelJob (100, then GetJob)", "", Code::OK, 1,
       [&](int t, std::mt19937_64&) {
         if (valid_jobs.fetch_add(1) >= kMaxValidJobs) {
           return Call(Coord(t), &CoordinatorService::Stub::GetJob, known_job);
         }
         grpc::ClientContext ctx;
         SubmitJobResponse resp;
         grpc::Status s = Coord(t)->SubmitJob(&ctx, good_submit, &resp);
         if (s.ok()) {
           CancelJobRequest cancel;
           cancel.set_job_id(resp.job_id());
           grpc::Status c = Call(Coord(t), &CoordinatorService::Stub::CancelJob, cancel);
           if (!c.ok()) return c;
         }
         return s;
       }},
      {"coord GetJob", "", Code::OK, 4,
       [&](int t, std::mt19937_64&) { return Call(Coord(t), &CoordinatorService::Stub::GetJob, known_job); }},
      {"coord ListJobs", "", Code::OK, 2,
       [&](int t, std::mt19937_64&) {
         return Call(Coord(t), &CoordinatorService::Stub::ListJobs, ListJobsRequest());
       }},
      {"coord GetCluster", "", Code::OK, 4,
       [&](int t, std::mt19937_64&) {
         return Call(Coord(t), &CoordinatorService::Stub::GetCluster, GetClusterRequest());
       }},
      // --- The coordinator, malformed.
      {"coord SubmitJob: empty spec", "", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64&) {
         return Call(Coord(t), &CoordinatorService::Stub::SubmitJob, SubmitJobRequest());
       }},
      {"coord SubmitJob: NaN learning rate", "", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64&) {
         SubmitJobRequest r = good_submit;
         r.mutable_spec()->mutable_optimizer()->set_learning_rate(std::nanf(""));
         return Call(Coord(t), &CoordinatorService::Stub::SubmitJob, r);
       }},
      {"coord SubmitJob: path outside the data root", "", Code::INVALID_ARGUMENT, 2,
       [&](int t, std::mt19937_64&) {
         SubmitJobRequest r = good_submit;
         r.mutable_spec()->mutable_data()->set_train_path("../../../../etc/passwd");
         return Call(Coord(t), &CoordinatorService::Stub::SubmitJob, r);
       }},
      {"coord GetJob: unknown job", "", Code::NOT_FOUND, 2,
       [&](int t, std::mt19937_64&) {
         GetJobRequest r;
         r.set_job_id("job-999999");
         return Call(Coord(t), &CoordinatorService::Stub::GetJob, r);
       }},
      {"coord CancelJob: unknown job", "", Code::NOT_FOUND, 1,
       [&](int t, std::mt19937_64&) {
         CancelJobRequest r;
         r.set_job_id(std::string(300, 'x'));
         return Call(Coord(t), &CoordinatorService::Stub::CancelJob, r);
       }},
  };
  int total_weight = 0;
  for (const Kind& k : kinds) total_weight += k.weight;

  // Each thread keeps its own stats; merged after the run.
  std::vector<std::vector<KindStats>> per_thread(kThreads, std::vector<KindStats>(kinds.size()));
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto warm_end = start + std::chrono::seconds(std::max(3, g_duration_s / 10));
  const auto end = start + std::chrono::seconds(g_duration_s);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      while (Clock::now() < end) {
        int pick = static_cast<int>(rng() % total_weight);
        size_t k = 0;
        while (pick >= kinds[k].weight) pick -= kinds[k++].weight;
        const auto t0 = Clock::now();
        const grpc::Status s = kinds[k].call(t, rng);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t0);
        KindStats& st = per_thread[t][k];
        ++st.sent;
        ++st.codes[CodeName(s.error_code())];
        if (s.error_code() == kinds[k].expected) {
          ++st.matched;
        } else if (st.first_mismatch.empty()) {
          st.first_mismatch = absl::StrCat(CodeName(s.error_code()), ": ", s.error_message());
        }
        st.latency_us.push_back(static_cast<uint32_t>(us.count()));
      }
    });
  }
  std::this_thread::sleep_until(warm_end);
  const int64_t shard_rss_warm = RssKb(shard_.pid());
  const int64_t coord_rss_warm = RssKb(coordinator_.pid());
  for (std::thread& th : threads) th.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const int64_t shard_rss_end = RssKb(shard_.pid());
  const int64_t coord_rss_end = RssKb(coordinator_.pid());

  // Merge and report.
  std::vector<KindStats> all(kinds.size());
  uint64_t total = 0, mismatched = 0;
  std::map<std::pair<std::string, std::string>, uint64_t> shard_codes;  // (method, code)
  std::printf("\n%-46s %7s %-18s %8s %8s  %s\n", "request kind", "sent", "expected", "p50 us",
              "p99 us", "codes");
  for (size_t k = 0; k < kinds.size(); ++k) {
    KindStats& a = all[k];
    for (int t = 0; t < kThreads; ++t) {
      KindStats& s = per_thread[t][k];
      a.sent += s.sent;
      a.matched += s.matched;
      for (const auto& [code, n] : s.codes) a.codes[code] += n;
      if (a.first_mismatch.empty()) a.first_mismatch = s.first_mismatch;
      a.latency_us.insert(a.latency_us.end(), s.latency_us.begin(), s.latency_us.end());
    }
    std::sort(a.latency_us.begin(), a.latency_us.end());
    const auto pct = [&](double p) -> uint32_t {
      if (a.latency_us.empty()) return 0;
      return a.latency_us[std::min(a.latency_us.size() - 1,
                                   static_cast<size_t>(p * static_cast<double>(a.latency_us.size())))];
    };
    std::string codes;
    for (const auto& [code, n] : a.codes) absl::StrAppend(&codes, code, "=", n, " ");
    std::printf("%-46s %7llu %-18s %8u %8u  %s\n", kinds[k].name.c_str(),
                static_cast<unsigned long long>(a.sent), CodeName(kinds[k].expected), pct(0.50),
                pct(0.99), codes.c_str());
    total += a.sent;
    mismatched += a.sent - a.matched;
    if (!kinds[k].shard_method.empty()) {
      for (const auto& [code, n] : a.codes) shard_codes[{kinds[k].shard_method, code}] += n;
    }
    EXPECT_EQ(a.matched, a.sent) << kinds[k].name << ": first unexpected answer: " << a.first_mismatch;
    EXPECT_GT(a.sent, 0u) << kinds[k].name;
  }
  std::printf("%llu requests in %.1f s (%.0f/s) from %d threads; %llu unexpected answers\n",
              static_cast<unsigned long long>(total), seconds, static_cast<double>(total) / seconds,
              kThreads, static_cast<unsigned long long>(mismatched));
  std::printf("RSS KiB: shard %lld after warm-up, %lld at the end; coordinator %lld, %lld\n",
              static_cast<long long>(shard_rss_warm), static_cast<long long>(shard_rss_end),
              static_cast<long long>(coord_rss_warm), static_cast<long long>(coord_rss_end));
  std::fflush(stdout);

  // No crash: both alive and serving.
  EXPECT_GT(shard_rss_end, 0) << "ps_server is gone";
  EXPECT_GT(coord_rss_end, 0) << "ps_coordinator is gone";
  EXPECT_TRUE(Healthy(shard_.address())) << "ps_server does not answer the health check";
  EXPECT_TRUE(Healthy(coordinator_.address())) << "ps_coordinator does not answer the health check";

  // Bounded memory: 2x + 64 MiB leaves room for allocator caching of the 32 in-flight
  // requests (up to 4 MiB each), not for a per-request leak.
  EXPECT_LE(shard_rss_end, 2 * shard_rss_warm + 64 * 1024);
  EXPECT_LE(coord_rss_end, 2 * coord_rss_warm + 64 * 1024);

  // The shard counted the same answers (the oversize messages never reach it).
  absl::StatusOr<std::string> metrics = ps::testing::HttpGet(shard_.metrics_address(), "/metrics");
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::regex line(R"(^ps_shard_requests_total\{([^}]*)\} ([0-9.e+]+)$)");
  const std::regex label(R"re((\w+)="([^"]*)")re");
  std::map<std::pair<std::string, std::string>, uint64_t> served;
  std::istringstream in(*metrics);
  std::string l;
  while (std::getline(in, l)) {
    std::smatch m;
    if (!std::regex_match(l, m, line)) continue;
    std::string method, code;
    const std::string labels = m[1];
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label);
         it != std::sregex_iterator(); ++it) {
      if ((*it)[1] == "method") method = (*it)[2];
      if ((*it)[1] == "code") code = (*it)[2];
    }
    served[{method, code}] += static_cast<uint64_t>(std::stod(m[2]));
  }
  // Setup calls: one CreateJob and two CreateTables, all OK.
  shard_codes[{"CreateJob", "OK"}] += 1;
  shard_codes[{"CreateTable", "OK"}] += 2;
  for (const auto& [key, n] : shard_codes) {
    EXPECT_EQ(served[key], n) << "shard counted " << key.first << " " << key.second;
  }
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--duration_s=", 0) == 0) ps::g_duration_s = std::max(1, std::atoi(a.c_str() + 13));
  }
  if (const char* env = std::getenv("PS_LOAD_DURATION_S")) {
    ps::g_duration_s = std::max(1, std::atoi(env));
  }
  return RUN_ALL_TESTS();
}
