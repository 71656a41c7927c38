#include "tests/bench/echo.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpcpp/generic/async_generic_service.h"
#include "tests/bench/bench_util.h"

namespace ps::bench {
namespace {

constexpr int kMaxMessage = 256 << 20;
constexpr char kMethod[] = "/ps.bench.Echo/Echo";

// Echoes one message per call, from and into the same ByteBuffer (no copy).
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

// A payload of `bytes` in one slice, built once.
grpc::ByteBuffer Payload(size_t bytes) {
  std::string data(bytes, 'x');
  grpc::Slice slice(data.data(), data.size());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace

EchoServer::EchoServer() : service_(std::make_unique<EchoService>()) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterCallbackGenericService(service_.get());
  builder.SetMaxReceiveMessageSize(kMaxMessage);
  builder.SetMaxSendMessageSize(kMaxMessage);
  server_ = builder.BuildAndStart();
  PS_CHECK(server_ != nullptr && port != 0) << "echo server cannot listen on 127.0.0.1";
  address_ = absl::StrCat("127.0.0.1:", port);
}

EchoServer::~EchoServer() { server_->Shutdown(); }

EchoClient::EchoClient(const std::string& address, int channels) {
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxMessage);
    args.SetMaxSendMessageSize(kMaxMessage);
    // Its own subchannel pool and a distinct argument: its own TCP connection.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ps.channel_index", c);
    stubs_.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
}

Rounds EchoClient::TimeRounds(size_t bytes, size_t chunk, int iters) {
  const size_t calls = (bytes + chunk - 1) / chunk;
  const size_t last = bytes - (calls - 1) * chunk;
  const grpc::ByteBuffer full = Payload(std::min(chunk, bytes));
  const grpc::ByteBuffer tail = Payload(last);
  return bench::TimeRounds(1, iters, [&] {
    std::vector<grpc::ClientContext> contexts(calls);
    std::vector<grpc::ByteBuffer> replies(calls);
    std::mutex mu;
    std::condition_variable cv;
    size_t done = 0;
    bool failed = false;
    for (size_t c = 0; c < calls; ++c) {
      stubs_[c % stubs_.size()]->UnaryCall(
          &contexts[c], kMethod, grpc::StubOptions(), c + 1 == calls ? &tail : &full, &replies[c],
          [&](grpc::Status s) {
            std::lock_guard<std::mutex> lock(mu);
            if (!s.ok()) failed = true;
            if (++done == calls) cv.notify_one();
          });
    }
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == calls; });
    return !failed;
  });
}

bool EchoClient::RoundTripsUs(size_t bytes, int n, std::vector<double>* us) {
  const grpc::ByteBuffer request = Payload(bytes);
  std::mutex mu;
  std::condition_variable cv;
  for (int i = 0; i < n; ++i) {
    grpc::ClientContext ctx;
    grpc::ByteBuffer reply;
    bool done = false;
    bool ok = false;
    const auto t0 = Clock::now();
    stubs_[0]->UnaryCall(&ctx, kMethod, grpc::StubOptions(), &request, &reply,
                         [&](grpc::Status s) {
                           std::lock_guard<std::mutex> lock(mu);
                           ok = s.ok();
                           done = true;
                           cv.notify_one();
                         });
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    if (!ok) return false;
    us->push_back(SecondsSince(t0) * 1e6);
  }
  return true;
}

EchoBest BestEcho(const EchoServer& server, size_t bytes, const std::vector<size_t>& chunks,
                  const std::vector<int>& channels, int iters) {
  EchoBest best;
  for (int c : channels) {
    EchoClient client(server.address(), c);
    for (size_t chunk : chunks) {
      if (chunk > bytes && chunk != chunks.front()) continue;  // Same as a smaller chunk.
      const Rounds r = client.TimeRounds(bytes, chunk, iters);
      if (r.seconds.empty()) continue;
      const double moved = 2.0 * static_cast<double>(bytes);
      const double gbps = moved / r.Best() / 1e9;
      PS_LOG(INFO) << "echo " << bytes << " B in " << (chunk >> 10) << " KiB calls over " << c
                   << " channels: " << gbps << " GB/s (best round)";
      if (gbps > best.gbps) {
        best = EchoBest{gbps,
                        moved / r.Mean() / 1e9,
                        r.cpu_s / (moved * r.seconds.size() / 1e9),
                        r.cpu_s / r.Total(),
                        chunk,
                        c};
      }
    }
  }
  return best;
}

}  // namespace ps::bench
