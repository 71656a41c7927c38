// A test-only gRPC proxy on 127.0.0.1 that forwards every method of every service to
// one target and injects network faults: the chaos suite's fault injector.
//
// Messages pass through as raw bytes (grpc::CallbackGenericService on the listening
// side, grpc::GenericStub towards the target), so any service works: unary,
// server-streaming and client-streaming calls (a call is forwarded once its client has
// half-closed, so interactive bidi streams, where the client waits for answers before
// it half-closes, are not supported). No thread is held per call: calls, held delays
// and forwarding are all reactions of the callback API and one timer thread.
//
// Per eligible call, a seeded RNG picks one of (probabilities in Options::rates):
//   kPass         forward with the client's deadline and metadata; answer what the
//                 target answers.
//   kDropRequest  answer UNAVAILABLE without forwarding: the target never sees it.
//   kDropReply    forward, wait for the target's answer, then answer UNAVAILABLE: the
//                 call took effect, the client does not know (the exactly-once path).
//   kDelay        hold the call for Options::delay, then forward it. When the client's
//                 deadline passed meanwhile (the intended use: delay > deadline), the
//                 client has seen DEADLINE_EXCEEDED and the late call is forwarded with
//                 a fresh deadline (Options::late_deadline) and its answer is dropped:
//                 a late duplicate that reaches the target after the client retried.
//                 Otherwise it is forwarded as a pass, only slower.
// The decision sequence depends only on the seed and the order in which eligible calls
// arrive (one draw per eligible call), so a sequential client sees the same faults on
// every run.
//
// Thread-safe.
#ifndef PS_TESTS_CHAOS_FAULT_PROXY_H_
#define PS_TESTS_CHAOS_FAULT_PROXY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace ps::chaos {

enum class Fault { kPass, kDropRequest, kDropReply, kDelay };

// Probabilities of the faults per eligible call; each in [0, 1], their sum at most 1
// (the rest passes).
struct FaultRates {
  double drop_request = 0;
  double drop_reply = 0;
  double delay = 0;
};

// Counts of calls, per fault kind.
struct FaultCounts {
  uint64_t calls = 0;          // Every call received (eligible or not).
  uint64_t passed = 0;         // Forwarded without a fault (ineligible calls included).
  uint64_t dropped_request = 0;
  uint64_t dropped_reply = 0;
  uint64_t delayed = 0;
  // Delayed calls forwarded after their client had given up, whose late call then
  // completed at the target (with any status).
  uint64_t late_delivered = 0;
  // Calls answered UNAVAILABLE because no target was set yet, or the proxy is closing.
  uint64_t no_target = 0;

  uint64_t faults() const { return dropped_request + dropped_reply + delayed; }
};

struct FaultStats {
  FaultCounts total;
  std::map<std::string, FaultCounts> by_method;  // Key: "/package.Service/Method".

  // The counts of `method`, zero when it was never called.
  FaultCounts Of(const std::string& method) const;
};

class FaultProxy {
 public:
  struct Options {
    // Where to listen: always loopback; port 0 picks a free one.
    std::string listen_host = "127.0.0.1";
    int listen_port = 0;
    // "host:port" to forward to; may be empty and set later with SetTarget (calls that
    // arrive before answer UNAVAILABLE, which clients retry).
    std::string target;
    FaultRates rates;
    // How long a delayed call is held before it is forwarded.
    absl::Duration delay = absl::Seconds(2);
    // The deadline of a late call (one forwarded after its client gave up).
    absl::Duration late_deadline = absl::Seconds(30);
    uint64_t seed = 1;
    // Full method names ("/ps.ShardService/Push") that may get faults; empty = all.
    // Other calls always pass.
    std::vector<std::string> methods;
    // Connections to the target; calls go round-robin over them.
    int target_channels = 2;
  };

  // Listens and starts forwarding. INVALID_ARGUMENT naming the field for bad options
  // (a rate outside [0, 1], rates summing over 1, a negative delay, a bad port or
  // target); UNAVAILABLE when it cannot listen.
  static absl::StatusOr<std::unique_ptr<FaultProxy>> Start(Options options);

  // Shuts down (as Shutdown).
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // "127.0.0.1:PORT" that clients dial, and its port.
  const std::string& address() const;
  int port() const;

  // Forwards calls that arrive from now on to `target` ("host:port"); calls already
  // forwarded keep their target. INVALID_ARGUMENT naming "target" when malformed.
  absl::Status SetTarget(const std::string& target);
  // Replaces the fault probabilities for calls that arrive from now on (the RNG
  // continues its sequence). INVALID_ARGUMENT naming the field when out of range.
  absl::Status SetRates(const FaultRates& rates);

  // A snapshot of the counters.
  FaultStats stats() const;

  // Waits until no delayed call is held or late in flight, up to `timeout`; returns
  // whether that happened. Lets a test know that every late duplicate has reached the
  // target (or failed there).
  bool WaitForLateCalls(absl::Duration timeout);

  // Stops accepting calls, cancels those in flight (held delays are dropped, forwarded
  // ones cancelled at the target) and waits for every call to finish. Idempotent.
  void Shutdown();

  class Impl;  // Internal.

 private:
  explicit FaultProxy(std::unique_ptr<Impl> impl);

  const std::unique_ptr<Impl> impl_;
};

}  // namespace ps::chaos

#endif  // PS_TESTS_CHAOS_FAULT_PROXY_H_
