#include "tests/chaos/fault_proxy.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/flags.h"
#include "common/sync.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

namespace ps::chaos {

FaultCounts FaultStats::Of(const std::string& method) const {
  auto it = by_method.find(method);
  return it == by_method.end() ? FaultCounts() : it->second;
}

namespace {

// Metadata that the transport sets itself and must not be copied between calls.
bool Forwardable(absl::string_view key) {
  return !key.empty() && key[0] != ':' && !absl::StartsWith(key, "grpc-") &&
         key != "user-agent" && key != "te" && key != "content-type" && key != "host" &&
         key != "accept-encoding" && key != "content-encoding";
}

using Metadata = std::vector<std::pair<std::string, std::string>>;

Metadata CopyMetadata(const std::multimap<grpc::string_ref, grpc::string_ref>& from) {
  Metadata out;
  for (const auto& [key, value] : from) {
    const absl::string_view k(key.data(), key.size());
    if (Forwardable(k)) out.emplace_back(std::string(k), std::string(value.data(), value.size()));
  }
  return out;
}

absl::Status CheckRates(const FaultRates& r) {
  for (const auto& [name, p] : {std::pair<const char*, double>{"rates.drop_request", r.drop_request},
                                {"rates.drop_reply", r.drop_reply},
                                {"rates.delay", r.delay}}) {
    if (!(p >= 0 && p <= 1)) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": must be in [0, 1], got ", p));
    }
  }
  const double sum = r.drop_request + r.drop_reply + r.delay;
  if (sum > 1 + 1e-9) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rates: drop_request + drop_reply + delay must be at most 1, got ", sum));
  }
  return absl::OkStatus();
}

// Runs callbacks at their time on one thread of its own; Stop runs the pending ones at
// once with `fired` false. Thread-safe.
class Timer {
 public:
  Timer() : thread_([this] { Loop(); }) {}
  ~Timer() { Stop(); }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs fn(true) at `when`, or fn(false) at Stop (inline when already stopped).
  void At(absl::Time when, std::function<void(bool)> fn) {
    {
      MutexLock lock(&mu_);
      if (!stopped_) {
        pending_.emplace(when, std::move(fn));
        cv_.SignalAll();
        return;
      }
    }
    fn(false);
  }

  void Stop() {
    {
      MutexLock lock(&mu_);
      if (stopped_) return;
      stopped_ = true;
      cv_.SignalAll();
    }
    thread_.join();
  }

 private:
  void Loop() {
    MutexLock lock(&mu_);
    while (true) {
      if (stopped_) break;
      if (pending_.empty()) {
        cv_.Wait(&mu_);
        continue;
      }
      const absl::Duration left = pending_.begin()->first - absl::Now();
      if (left > absl::ZeroDuration()) {
        cv_.WaitWithTimeout(&mu_, left);
        continue;
      }
      std::function<void(bool)> fn = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      mu_.Unlock();
      fn(true);
      fn = nullptr;  // Its captures go before the lock is taken again.
      mu_.Lock();
    }
    std::multimap<absl::Time, std::function<void(bool)>> left;
    left.swap(pending_);
    mu_.Unlock();
    for (auto& [when, fn] : left) fn(false);
    left.clear();
    mu_.Lock();
  }

  Mutex mu_;
  CondVar cv_;
  std::multimap<absl::Time, std::function<void(bool)>> pending_ ABSL_GUARDED_BY(mu_);
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts after the fields above exist.
};

// The connections to one target. Constant after construction, except `next`.
struct Target {
  std::string address;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs;
  std::atomic<uint32_t> next{0};

  grpc::GenericStub* Next() { return stubs[next.fetch_add(1) % stubs.size()].get(); }
};

absl::StatusOr<std::shared_ptr<Target>> Connect(const std::string& address, int channels) {
  absl::StatusOr<HostPort> hp = ParseHostPort(address, "target");
  if (!hp.ok()) return hp.status();
  if (hp->port == 0) return absl::InvalidArgumentError("target: the port must not be 0");
  auto target = std::make_shared<Target>();
  target->address = address;
  for (int c = 0; c < channels; ++c) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // Each channel its own TCP connection (as the PS client does).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("ps.fault_proxy_channel", c);
    target->stubs.push_back(std::make_unique<grpc::GenericStub>(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args)));
  }
  return target;
}

class ProxyCall;

}  // namespace

class FaultProxy::Impl final : public grpc::CallbackGenericService {
 public:
  explicit Impl(Options options)
      : options_(std::move(options)), rng_(options_.seed), rates_(options_.rates) {}

  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

  absl::Status Listen() {
    grpc::ServerBuilder builder;
    const std::string listen =
        HostPort{options_.listen_host, static_cast<uint16_t>(options_.listen_port)}.ToString();
    int port = 0;
    builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterCallbackGenericService(this);
    builder.SetMaxReceiveMessageSize(-1);
    builder.SetMaxSendMessageSize(-1);
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat("fault proxy: cannot listen on ", listen));
    }
    port_ = port;
    address_ = HostPort{options_.listen_host, static_cast<uint16_t>(port)}.ToString();
    return absl::OkStatus();
  }

  absl::Status SetTarget(const std::string& address) {
    absl::StatusOr<std::shared_ptr<Target>> target = Connect(address, options_.target_channels);
    if (!target.ok()) return target.status();
    MutexLock lock(&mu_);
    target_ = *std::move(target);
    return absl::OkStatus();
  }

  absl::Status SetRates(const FaultRates& rates) {
    absl::Status s = CheckRates(rates);
    if (!s.ok()) return s;
    MutexLock lock(&mu_);
    rates_ = rates;
    return absl::OkStatus();
  }

  FaultStats stats() const {
    MutexLock lock(&mu_);
    return stats_;
  }

  bool WaitForLateCalls(absl::Duration timeout) {
    const absl::Time until = absl::Now() + timeout;
    MutexLock lock(&mu_);
    while (late_pending_ > 0) {
      const absl::Duration left = until - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      cv_.WaitWithTimeout(&mu_, left);
    }
    return true;
  }

  void Shutdown();

  // For the calls.
  const Options& options() const { return options_; }
  Timer* timer() { return &timer_; }
  // Whether a call may still be forwarded (false once the proxy closes).
  bool open() const {
    MutexLock lock(&mu_);
    return !closing_;
  }
  void Count(const std::string& method, uint64_t FaultCounts::*field) {
    MutexLock lock(&mu_);
    ++(stats_.total.*field);
    ++(stats_.by_method[method].*field);
  }
  // A held or late call ended; `delivered` when its late call completed at the target.
  void LateDone(const std::string& method, bool delivered) {
    MutexLock lock(&mu_);
    if (delivered) {
      ++stats_.total.late_delivered;
      ++stats_.by_method[method].late_delivered;
    }
    --late_pending_;
    cv_.SignalAll();
  }
  void Forget(uint64_t id) {
    MutexLock lock(&mu_);
    live_.erase(id);
    cv_.SignalAll();
  }

  const std::string& address() const { return address_; }
  int port() const { return port_; }

 private:
  // Constant after construction (address_ and port_ after Listen).
  const Options options_;
  std::string address_;
  int port_ = 0;

  mutable Mutex mu_;
  CondVar cv_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  FaultRates rates_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Target> target_ ABSL_GUARDED_BY(mu_);
  FaultStats stats_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::weak_ptr<ProxyCall>> live_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  int late_pending_ ABSL_GUARDED_BY(mu_) = 0;  // Held delays and late calls in flight.
  bool closing_ ABSL_GUARDED_BY(mu_) = false;

  Timer timer_;
  std::unique_ptr<grpc::Server> server_;
};

namespace {

// A reactor that answers at once.
class FinishedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit FinishedReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// One proxied call: its client's side (a server reactor, "down"), and its forwarded
// call to the target (a client reactor, "up"). Owned jointly by the two reactors and a
// pending timer; the reactions of both sides may run concurrently, so the state is
// under mu_, and no gRPC operation is started while mu_ is held (gRPC may run a
// reaction inline).
class ProxyCall final : public std::enable_shared_from_this<ProxyCall> {
 public:
  ProxyCall(FaultProxy::Impl* proxy, uint64_t id, grpc::GenericCallbackServerContext* ctx,
            Fault fault, std::shared_ptr<Target> target)
      : proxy_(proxy),
        id_(id),
        method_(ctx->method()),
        deadline_(ctx->deadline()),
        metadata_(CopyMetadata(ctx->client_metadata())),
        fault_(fault),
        target_(std::move(target)),
        down_ctx_(ctx),
        pending_(fault == Fault::kDelay) {}
  ~ProxyCall() {
    ReleasePending(/*delivered=*/false);  // Normally released already.
    proxy_->Forget(id_);
  }
  ProxyCall(const ProxyCall&) = delete;
  ProxyCall& operator=(const ProxyCall&) = delete;

  // The client's side.
  class Down final : public grpc::ServerGenericBidiReactor {
   public:
    explicit Down(std::shared_ptr<ProxyCall> call) : call_(std::move(call)) {}
    void OnReadDone(bool ok) override { call_->OnDownRead(ok); }
    void OnWriteDone(bool ok) override { call_->OnDownWrite(ok); }
    void OnCancel() override { call_->OnDownCancel(); }
    void OnDone() override { delete this; }

   private:
    const std::shared_ptr<ProxyCall> call_;
  };

  // The forwarded call.
  class Up final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
   public:
    explicit Up(std::shared_ptr<ProxyCall> call) : call_(std::move(call)) {}
    void OnWriteDone(bool ok) override { call_->OnUpWrite(ok); }
    void OnReadDone(bool ok) override { call_->OnUpRead(ok); }
    void OnDone(const grpc::Status& s) override {
      call_->OnUpDone(s);
      delete this;
    }

   private:
    const std::shared_ptr<ProxyCall> call_;
  };

  // Makes the client's reactor and starts reading the request.
  Down* Begin() {
    down_ = new Down(shared_from_this());
    down_->StartRead(&read_buf_);
    return down_;
  }

  void OnDownRead(bool ok) {
    if (ok) {
      requests_.push_back(std::move(read_buf_));
      read_buf_.Clear();
      down_->StartRead(&read_buf_);
      return;
    }
    // Half-closed (or cancelled): the request is complete.
    bool finished = false;
    {
      MutexLock lock(&mu_);
      finished = down_finished_;
    }
    if (finished && fault_ != Fault::kDelay) return;  // The client gave up first.
    if (fault_ == Fault::kDelay) {
      std::shared_ptr<ProxyCall> self = shared_from_this();
      proxy_->timer()->At(absl::Now() + proxy_->options().delay,
                          [self](bool fired) { self->OnTimer(fired); });
      return;
    }
    Forward(/*late=*/false);
  }

  void OnDownWrite(bool ok) {
    {
      MutexLock lock(&mu_);
      if (!ok) down_broken_ = true;
    }
    up_->StartRead(&resp_buf_);  // The next answer (relayed or drained).
  }

  void OnDownCancel() {
    bool finish = false;
    grpc::ClientContext* cancel_up = nullptr;
    {
      MutexLock lock(&mu_);
      down_broken_ = true;
      if (down_finished_) return;
      if (!up_started_) {
        // Still reading, or held: answer now; a held call is forwarded late.
        finish = true;
        down_finished_ = true;
      } else if (!late_) {
        cancel_up = up_ctx_.get();
      }
    }
    if (finish) down_->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    if (cancel_up != nullptr) cancel_up->TryCancel();
  }

  // The held call's time is up (`fired`), or the proxy closes (not `fired`).
  void OnTimer(bool fired) {
    if (fired) {
      Forward(/*late=*/false);
      return;
    }
    bool finish = false;
    {
      MutexLock lock(&mu_);
      finish = !down_finished_;
      down_finished_ = true;
    }
    if (finish) down_->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fault proxy: closing"));
    ReleasePending(/*delivered=*/false);
  }

  void OnUpWrite(bool ok) {
    if (!ok) return;  // The call failed; OnDone tells how.
    ++next_write_;
    if (next_write_ < requests_.size()) {
      up_->StartWrite(&requests_[next_write_]);
    } else {
      up_->StartWritesDone();
    }
  }

  void OnUpRead(bool ok) {
    if (!ok) {
      up_->RemoveHold();
      return;
    }
    bool relay = false;
    bool first = false;
    {
      MutexLock lock(&mu_);
      relay = !late_ && fault_ != Fault::kDropReply && !down_finished_ && !down_broken_;
      if (relay) {
        first = !relayed_any_;
        relayed_any_ = true;
      }
    }
    if (!relay) {
      resp_buf_.Clear();
      up_->StartRead(&resp_buf_);
      return;
    }
    if (first) {
      for (const auto& [key, value] : CopyMetadata(up_ctx_->GetServerInitialMetadata())) {
        down_ctx_->AddInitialMetadata(key, value);
      }
    }
    out_buf_ = std::move(resp_buf_);
    resp_buf_.Clear();
    down_->StartWrite(&out_buf_);
  }

  void OnUpDone(const grpc::Status& status) {
    bool finish = false;
    {
      MutexLock lock(&mu_);
      if (!down_finished_) {
        finish = true;
        down_finished_ = true;
      }
    }
    ReleasePending(/*delivered=*/true);
    if (!finish) return;
    if (fault_ == Fault::kDropReply) {
      down_->Finish(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrCat("fault proxy: reply dropped (the target answered ",
                       static_cast<int>(status.error_code()), ")")));
      return;
    }
    for (const auto& [key, value] : CopyMetadata(up_ctx_->GetServerTrailingMetadata())) {
      down_ctx_->AddTrailingMetadata(key, value);
    }
    down_->Finish(status);
  }

  // Cancels the forwarded call (the proxy is closing).
  void Abort() {
    grpc::ClientContext* ctx = nullptr;
    {
      MutexLock lock(&mu_);
      if (up_started_) ctx = up_ctx_.get();
    }
    if (ctx != nullptr) ctx->TryCancel();
  }

 private:
  // Sends the request to the target; `late` when the client has given up (a fresh
  // deadline, the answer dropped).
  void Forward(bool late) {
    bool finish = false;
    bool start = false;
    {
      MutexLock lock(&mu_);
      // A held call whose client gave up meanwhile goes late.
      late = late || (fault_ == Fault::kDelay && down_finished_);
      if (!proxy_->open() || (!late && down_finished_)) {
        // Closing, or the client gave up before its call was forwarded.
        finish = !down_finished_;
        down_finished_ = true;
      } else {
        start = true;
        late_ = late;
        up_ctx_ = std::make_unique<grpc::ClientContext>();
        up_ctx_->set_deadline(late ? absl::ToChronoTime(absl::Now() +
                                                        proxy_->options().late_deadline)
                                   : deadline_);
        for (const auto& [key, value] : metadata_) up_ctx_->AddMetadata(key, value);
        up_started_ = true;
      }
    }
    // Only a late call keeps counting as pending until its answer.
    if (!start || !late) ReleasePending(/*delivered=*/false);
    if (!start) {
      if (finish) {
        down_->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fault proxy: closing"));
      }
      return;
    }
    up_ = new Up(shared_from_this());
    target_->Next()->PrepareBidiStreamingCall(up_ctx_.get(), method_, grpc::StubOptions(), up_);
    up_->AddHold();  // Released when the reads end: up_ stays valid for StartRead.
    if (requests_.empty()) {
      up_->StartWritesDone();
    } else {
      up_->StartWrite(&requests_[0]);
    }
    up_->StartRead(&resp_buf_);
    up_->StartCall();
  }

  // Once per delayed call: it is no longer held or late in flight.
  void ReleasePending(bool delivered) {
    {
      MutexLock lock(&mu_);
      if (!pending_) return;
      pending_ = false;
      delivered = delivered && late_;
    }
    proxy_->LateDone(method_, delivered);
  }

  // Constant after construction.
  FaultProxy::Impl* const proxy_;  // Not owned.
  const uint64_t id_;
  const std::string method_;
  const std::chrono::system_clock::time_point deadline_;
  const Metadata metadata_;
  const Fault fault_;
  const std::shared_ptr<Target> target_;
  grpc::GenericCallbackServerContext* const down_ctx_;  // Not owned; valid until Finish.

  // Set before the reactions that use them can run.
  Down* down_ = nullptr;  // Owns itself; valid until Finish.
  Up* up_ = nullptr;      // Owns itself; valid while the hold is held.
  // Read side of the client's call, then read-only once forwarding starts.
  grpc::ByteBuffer read_buf_;
  std::vector<grpc::ByteBuffer> requests_;
  size_t next_write_ = 0;  // Up's write side only.
  // Up's read side and the relay: one message in flight at a time.
  grpc::ByteBuffer resp_buf_;
  grpc::ByteBuffer out_buf_;

  // Set once in Forward (under mu_, with up_started_) before the call starts.
  std::unique_ptr<grpc::ClientContext> up_ctx_;

  Mutex mu_;
  bool up_started_ ABSL_GUARDED_BY(mu_) = false;
  bool late_ ABSL_GUARDED_BY(mu_) = false;
  bool pending_ ABSL_GUARDED_BY(mu_);  // A delayed call, held or late in flight.
  bool down_finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish was called (or is due).
  bool down_broken_ ABSL_GUARDED_BY(mu_) = false;    // Cancelled, or a write failed.
  bool relayed_any_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerGenericBidiReactor* FaultProxy::Impl::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  const std::string& method = ctx->method();
  Fault fault = Fault::kPass;
  std::shared_ptr<Target> target;
  uint64_t id = 0;
  {
    MutexLock lock(&mu_);
    ++stats_.total.calls;
    FaultCounts& counts = stats_.by_method[method];
    ++counts.calls;
    if (closing_ || target_ == nullptr) {
      ++stats_.total.no_target;
      ++counts.no_target;
      return new FinishedReactor(grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          closing_ ? "fault proxy: closing" : "fault proxy: no target set yet"));
    }
    target = target_;
    const bool eligible =
        options_.methods.empty() ||
        std::find(options_.methods.begin(), options_.methods.end(), method) !=
            options_.methods.end();
    if (eligible) {
      const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
      if (u < rates_.drop_request) {
        fault = Fault::kDropRequest;
      } else if (u < rates_.drop_request + rates_.drop_reply) {
        fault = Fault::kDropReply;
      } else if (u < rates_.drop_request + rates_.drop_reply + rates_.delay) {
        fault = Fault::kDelay;
      }
    }
    uint64_t FaultCounts::*field = &FaultCounts::passed;
    if (fault == Fault::kDropRequest) field = &FaultCounts::dropped_request;
    if (fault == Fault::kDropReply) field = &FaultCounts::dropped_reply;
    if (fault == Fault::kDelay) field = &FaultCounts::delayed;
    ++(stats_.total.*field);
    ++(counts.*field);
    if (fault == Fault::kDropRequest) {
      return new FinishedReactor(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "fault proxy: request dropped"));
    }
    if (fault == Fault::kDelay) ++late_pending_;
    id = ++next_id_;
  }
  auto call = std::make_shared<ProxyCall>(this, id, ctx, fault, std::move(target));
  {
    MutexLock lock(&mu_);
    live_[id] = call;
  }
  return call->Begin();
}

void FaultProxy::Impl::Shutdown() {
  {
    MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
  }
  timer_.Stop();  // Held calls are answered UNAVAILABLE and not forwarded.
  std::vector<std::shared_ptr<ProxyCall>> live;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, weak] : live_) {
      if (std::shared_ptr<ProxyCall> call = weak.lock()) live.push_back(std::move(call));
    }
  }
  for (const auto& call : live) call->Abort();
  live.clear();
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  {
    MutexLock lock(&mu_);
    while (!live_.empty()) cv_.Wait(&mu_);
  }
  server_.reset();
  MutexLock lock(&mu_);
  target_.reset();
}

absl::StatusOr<std::unique_ptr<FaultProxy>> FaultProxy::Start(Options options) {
  if (options.listen_port < 0 || options.listen_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen_port: must be 0 .. 65535, got ", options.listen_port));
  }
  if (options.listen_host.empty()) return absl::InvalidArgumentError("listen_host: empty");
  absl::Status s = CheckRates(options.rates);
  if (!s.ok()) return s;
  if (options.delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("delay: must not be negative");
  }
  if (options.late_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("late_deadline: must be positive");
  }
  if (options.target_channels < 1 || options.target_channels > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_channels: must be 1 .. 64, got ", options.target_channels));
  }
  const std::string target = options.target;
  auto impl = std::make_unique<Impl>(std::move(options));
  if (!target.empty()) {
    s = impl->SetTarget(target);
    if (!s.ok()) return s;
  }
  s = impl->Listen();
  if (!s.ok()) return s;
  return std::unique_ptr<FaultProxy>(new FaultProxy(std::move(impl)));
}

FaultProxy::FaultProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FaultProxy::~FaultProxy() { impl_->Shutdown(); }

const std::string& FaultProxy::address() const { return impl_->address(); }
int FaultProxy::port() const { return impl_->port(); }
absl::Status FaultProxy::SetTarget(const std::string& target) { return impl_->SetTarget(target); }
absl::Status FaultProxy::SetRates(const FaultRates& rates) { return impl_->SetRates(rates); }
FaultStats FaultProxy::stats() const { return impl_->stats(); }
bool FaultProxy::WaitForLateCalls(absl::Duration timeout) {
  return impl_->WaitForLateCalls(timeout);
}
void FaultProxy::Shutdown() { impl_->Shutdown(); }

}  // namespace ps::chaos
