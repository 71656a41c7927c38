// Throughput of GrpcPsClient's data path: push then pull of one dense table, ASYNC, one
// worker, against in-process shards (real gRPC on 127.0.0.1) or running ps_server
// processes.
//
//   bazel run -c opt //worker:ps_client_bench -- --floats=16777216 --shards=2
//   bazel run -c opt //worker:ps_client_bench -- --addresses=127.0.0.1:7001,127.0.0.1:7002
//
// Prints GB/s of push, pull and both together (bytes of values moved / wall time).
// --echo measures the baseline instead: a bare gRPC echo (generic callback service, no
// protobuf) moving the same bytes in messages of --chunk_kb, request and reply counted
// together, over --channels connections.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "worker/grpc_ps_client.h"
#include "worker/ps_client_testing.h"

namespace ps {
namespace {

struct Args {
  uint64_t floats = uint64_t{16} << 20;
  int shards = 2;
  int iters = 10;
  uint64_t chunk_kb = 4096;
  int channels = 2;
  std::vector<std::string> addresses;
  bool echo = false;
};

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    std::vector<std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    if (kv.size() != 2) return false;
    const std::string& k = kv[0];
    const std::string& v = kv[1];
    bool ok = true;
    if (k == "--floats") {
      ok = absl::SimpleAtoi(v, &a->floats);
    } else if (k == "--shards") {
      ok = absl::SimpleAtoi(v, &a->shards);
    } else if (k == "--iters") {
      ok = absl::SimpleAtoi(v, &a->iters);
    } else if (k == "--chunk_kb") {
      ok = absl::SimpleAtoi(v, &a->chunk_kb);
    } else if (k == "--channels") {
      ok = absl::SimpleAtoi(v, &a->channels);
    } else if (k == "--echo") {
      a->echo = v == "1" || v == "true";
    } else if (k == "--addresses") {
      a->addresses = absl::StrSplit(v, ',');
    } else {
      ok = false;
    }
    if (!ok) return false;
  }
  return true;
}

// Echoes one message per call.
class EchoReactor final : public grpc::ServerGenericBidiReactor {
 public:
  EchoReactor() { StartRead(&buffer_); }
  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);
    StartWrite(&buffer_);
  }
  void OnWriteDone(bool ok) override {
    Finish(ok ? grpc::Status::OK : grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer buffer_;
};

class EchoService final : public grpc::CallbackGenericService {
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    return new EchoReactor();
  }
};

int RunEcho(const Args& a) {
  EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(&service);
  builder.SetMaxReceiveMessageSize(256 << 20);
  builder.SetMaxSendMessageSize(256 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return 1;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  for (int c = 0; c < a.channels; ++c) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(256 << 20);
    args.SetMaxSendMessageSize(256 << 20);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ps.channel_index", c);
    stubs.push_back(std::make_unique<grpc::GenericStub>(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials(), args)));
  }
  const size_t chunk = a.chunk_kb << 10;
  const size_t calls = (a.floats * sizeof(float) + chunk - 1) / chunk;
  std::string payload(chunk, 'x');
  grpc::Slice slice(payload.data(), payload.size());
  grpc::ByteBuffer request(&slice, 1);
  using Clock = std::chrono::steady_clock;
  double seconds = 0;
  for (int i = -1; i < a.iters; ++i) {
    std::vector<grpc::ClientContext> contexts(calls);
    std::vector<grpc::ByteBuffer> replies(calls);
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    bool failed = false;
    const auto t0 = Clock::now();
    for (size_t c = 0; c < calls; ++c) {
      stubs[c % stubs.size()]->UnaryCall(&contexts[c], "/bench.Echo/Echo", grpc::StubOptions(),
                                         &request, &replies[c], [&](grpc::Status s) {
                                           std::lock_guard<std::mutex> lock(mu);
                                           if (!s.ok()) failed = true;
                                           if (++done == calls) cv.notify_one();
                                         });
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done == calls; });
    }
    if (failed) return 1;
    if (i >= 0) seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  }
  const double bytes = 2.0 * static_cast<double>(calls * chunk) * a.iters;
  std::printf("echo: %zu calls of %zu KiB over %d channels: %.2f GB/s (request + reply)\n", calls,
              chunk >> 10, a.channels, bytes / seconds / 1e9);
  server->Shutdown();
  return 0;
}

int Run(const Args& a) {
  if (a.echo) return RunEcho(a);
  std::unique_ptr<TestCluster> cluster;
  std::vector<std::string> addresses = a.addresses;
  if (addresses.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    const std::string dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/ps_client_bench";
    std::string cmd = "rm -rf '" + dir + "'";
    if (std::system(cmd.c_str()) != 0) return 1;
    cluster = TestCluster::Start(a.shards, dir);
    addresses = cluster->addresses();
  }
  GrpcPsClient::Options o;
  o.chunk_bytes = a.chunk_kb << 10;
  o.channels_per_shard = a.channels;
  auto client = GrpcPsClient::Connect(addresses, o);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  ShardJobConfig config;
  config.set_job_id("bench");
  config.mutable_consistency()->set_mode(ASYNC);
  config.set_num_workers(1);
  TableSpec w;
  w.set_name("w");
  w.set_kind(TableSpec::DENSE);
  w.set_size(a.floats);
  w.mutable_optimizer()->mutable_sgd();
  w.mutable_optimizer()->set_learning_rate(0.001f);
  if (auto s = (*client)->SetupJob(config, {w}); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
    return 1;
  }
  std::vector<float> buf(a.floats, 0.5f);
  std::vector<DenseRef> dense = {{"w", 0, a.floats, buf.data()}};
  using Clock = std::chrono::steady_clock;
  double push_s = 0, pull_s = 0;
  for (int i = -1; i < a.iters; ++i) {  // Iteration -1 warms up.
    const uint64_t clock = static_cast<uint64_t>(i + 1) * 2;
    const auto t0 = Clock::now();
    if (auto s = (*client)->Push("bench", 0, clock, dense, {}); !s.ok()) {
      std::fprintf(stderr, "push: %s\n", s.ToString().c_str());
      return 1;
    }
    const auto t1 = Clock::now();
    if (auto s = (*client)->Pull("bench", 0, clock + 1, dense, {}); !s.ok()) {
      std::fprintf(stderr, "pull: %s\n", s.ToString().c_str());
      return 1;
    }
    const auto t2 = Clock::now();
    if (i < 0) continue;
    push_s += std::chrono::duration<double>(t1 - t0).count();
    pull_s += std::chrono::duration<double>(t2 - t1).count();
  }
  const double bytes = static_cast<double>(a.floats) * sizeof(float) * a.iters;
  std::printf(
      "floats=%llu shards=%zu chunk=%lluKiB channels=%d: push %.2f GB/s (%.1f ms), pull %.2f "
      "GB/s (%.1f ms), push+pull %.2f GB/s\n",
      static_cast<unsigned long long>(a.floats), addresses.size(),
      static_cast<unsigned long long>(a.chunk_kb), a.channels, bytes / push_s / 1e9,
      push_s * 1e3 / a.iters, bytes / pull_s / 1e9, pull_s * 1e3 / a.iters,
      2 * bytes / (push_s + pull_s) / 1e9);
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ps::Args args;
  if (!ps::Parse(argc, argv, &args)) {
    std::fprintf(stderr,
                 "usage: ps_client_bench [--floats=N] [--shards=S] [--iters=I] [--chunk_kb=K] "
                 "[--channels=C] [--addresses=H:P,H:P] [--echo=1]\n");
    return 2;
  }
  return ps::Run(args);
}
