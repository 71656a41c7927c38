// The coordinator as a running gRPC server: store, core, service, health, reflection
// and the timer that detects missed heartbeats. Used by main.cc and by tests.
#ifndef PS_SERVER_COORDINATOR_SERVER_H_
#define PS_SERVER_COORDINATOR_SERVER_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/coordinator/clock.h"
#include "server/coordinator/coordinator.h"
#include "common/sync.h"

namespace grpc {
class Server;
class ServerCredentials;
}  // namespace grpc

namespace ps {

class CoordinatorServiceImpl;

struct CoordinatorServerOptions {
  std::string host = "127.0.0.1";  // Interface to listen on.
  int port = 0;                    // 0 = pick a free port (see port()).
  std::string data_dir;            // RocksDB directory of the registry; required.
  CoordinatorOptions coordinator;
  const Clock* clock = nullptr;    // Not owned; nullptr = the system clock.
  // How often Coordinator::Tick runs; 0 = half the heartbeat interval, within
  // [10 ms, 1 s].
  absl::Duration tick_interval = absl::ZeroDuration();
  absl::Duration watch_min_interval = absl::Milliseconds(100);
  // Of the listener (common/tls.h); nullptr = plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Non-empty: client-facing calls need "authorization: Bearer <auth_token>".
  std::string auth_token;
  // Largest message received; bigger ones are refused with RESOURCE_EXHAUSTED.
  int max_message_bytes = 16 << 20;
};

// Owns everything the daemon runs. Thread-safe; Shutdown may be called from any
// thread, more than once.
class CoordinatorServer {
 public:
  // Opens the store, loads the registry, binds and starts serving. FAILED_PRECONDITION
  // when the store cannot be opened (e.g. another coordinator holds it), UNAVAILABLE
  // when the address cannot be bound, INVALID_ARGUMENT for bad options.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(
      const CoordinatorServerOptions& options);

  CoordinatorServer(const CoordinatorServer&) = delete;
  CoordinatorServer& operator=(const CoordinatorServer&) = delete;
  ~CoordinatorServer();  // Shuts down.

  int port() const { return port_; }
  // "host:port" clients can dial ("[v6]:port" for IPv6 hosts).
  std::string address() const;
  Coordinator* coordinator() { return core_.get(); }

  // Stops accepting calls, cancels those still running after `grace` (watch streams
  // end), stops the timer and closes the store.
  void Shutdown(absl::Duration grace = absl::Seconds(2));

 private:
  CoordinatorServer() = default;
  void TickLoop();

  std::string host_;
  int port_ = 0;
  absl::Duration tick_interval_;
  RealClock real_clock_;
  std::unique_ptr<Coordinator> core_;
  std::unique_ptr<CoordinatorServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::thread ticker_;
  Mutex mu_;
  CondVar stop_cv_;
  bool stop_ticking_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_SERVER_H_
