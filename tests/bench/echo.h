// The raw baseline: a bare bytes-in/bytes-out gRPC service (generic callback API, no
// protobuf, no table logic) and clients that drive it as fast as gRPC allows: the
// payload is built once into a grpc::ByteBuffer and sent by reference, every call of a
// batch is in flight at once, spread round-robin over separate TCP connections.
#ifndef PS_TESTS_BENCH_ECHO_H_
#define PS_TESTS_BENCH_ECHO_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "tests/bench/bench_util.h"

namespace ps::bench {

class EchoServer {
 public:
  EchoServer();  // Listens on 127.0.0.1 at a free port; aborts if it cannot.
  ~EchoServer();
  EchoServer(const EchoServer&) = delete;
  EchoServer& operator=(const EchoServer&) = delete;
  const std::string& address() const { return address_; }

 private:
  std::unique_ptr<grpc::CallbackGenericService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

// `channels` connections to an echo server. Not thread-safe (one caller at a time).
class EchoClient {
 public:
  EchoClient(const std::string& address, int channels);

  // Moves `bytes` to the server and back in calls of `chunk` bytes, all in flight at
  // once, `iters` times after one warm-up round; empty rounds on a failed call.
  Rounds TimeRounds(size_t bytes, size_t chunk, int iters);
  // Appends the round-trip times (µs) of `n` sequential calls of `bytes` each to `us`;
  // false on a failed call.
  bool RoundTripsUs(size_t bytes, int n, std::vector<double>* us);

 private:
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
};

struct EchoBest {
  double gbps = 0;       // Request + reply bytes per second, 1e9: of the best round.
  double mean_gbps = 0;  // The same over all rounds of that chunk size and channel count.
  double cpu_s_per_gb = 0;  // CPU seconds (all threads) per 1e9 bytes, over those rounds.
  double cpu_cores = 0;     // CPU seconds per wall second over those rounds.
  size_t chunk = 0;
  int channels = 0;
};

// The fastest raw echo of `bytes` (request + reply counted together, so comparable
// with push + pull of `bytes`) over chunk sizes `chunks` and channel counts `channels`:
// the configuration with the best round.
EchoBest BestEcho(const EchoServer& server, size_t bytes, const std::vector<size_t>& chunks,
                  const std::vector<int>& channels, int iters);

}  // namespace ps::bench

#endif  // PS_TESTS_BENCH_ECHO_H_
