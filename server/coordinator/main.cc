// ps_coordinator: the cluster's control plane (see server/coordinator/coordinator.h).
//
// Prints exactly one line, "listening on HOST:PORT", to stdout once serving; logs go
// to stderr. SIGTERM or SIGINT shut it down gracefully (exit 0). Exit 1 on bad flags
// or when it cannot start.
#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "common/auth.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/sync.h"
#include "common/tls.h"
#include "common/metrics.h"
#include "server/coordinator/coordinator_metrics.h"
#include "server/coordinator/server.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Interface to listen on (0.0.0.0: every one).");
ABSL_FLAG(int32_t, port, 7070, "Port to listen on; 0 picks a free one (see the printed line).");
ABSL_FLAG(std::string, data_dir, "",
          "Directory of the coordinator's RocksDB (jobs, checkpoint catalog, shard "
          "incarnations); created when missing. Required. Jobs survive restarts on it.");
ABSL_FLAG(std::string, data_root, ".",
          "Job data files must lie under this directory; relative paths in a JobSpec "
          "resolve under it. No \"..\" and no symlink escape.");
ABSL_FLAG(uint32_t, num_shards, 1,
          "Parameter-server shards of the cluster (ids 0..N-1); every job uses all of "
          "them and starts only when all are registered and healthy. 1 .. 4096.");
ABSL_FLAG(int32_t, max_message_mb, 16,
          "Largest gRPC message received, in MiB (1 .. 2047); a bigger one is refused with "
          "RESOURCE_EXHAUSTED.");
ABSL_FLAG(int, metrics_port, -1,
          "Port of the Prometheus /metrics endpoint (jobs, members, recoveries, "
          "checkpoints); -1 = none, 0 = any.");
ABSL_FLAG(uint32_t, heartbeat_interval_ms, 1000,
          "How often daemons are told to send heartbeats, in milliseconds.");
ABSL_FLAG(uint32_t, heartbeat_timeout_ms, 5000,
          "A member silent this long (ms) is dead: its worker rank is recovered on a "
          "spare worker. Must exceed --heartbeat_interval_ms.");

int main(int argc, char** argv) {
  ps::SkipMutexOrderChecksInReleaseBuilds();
  // --help lists the flags of this package (absl's default matches only files named
  // after the binary).
  const std::vector<std::string> args = ps::ParseFlags(
      argc, argv,
      "job registry, scheduling, checkpoint catalog and recovery of the "
      "parameter-server cluster.\n\n"
      "  ps_coordinator --data_dir=DIR [--port=7070] [--num_shards=N] ...\n\n"
      "Prints \"listening on HOST:PORT\" on stdout once serving. SIGTERM/SIGINT: "
      "graceful shutdown, exit 0. Exit 1: bad flags or cannot start.");
  if (args.size() > 1) {
    std::fprintf(stderr, "ps_coordinator: unexpected argument \"%s\" (see --help)\n",
                 args[1].c_str());
    return 1;
  }
  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ps::CoordinatorServerOptions options;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  options.coordinator.data_root = absl::GetFlag(FLAGS_data_root);
  options.coordinator.num_shards = absl::GetFlag(FLAGS_num_shards);
  options.coordinator.heartbeat_interval_ms = absl::GetFlag(FLAGS_heartbeat_interval_ms);
  options.coordinator.heartbeat_timeout_ms = absl::GetFlag(FLAGS_heartbeat_timeout_ms);
  const int32_t max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  if (max_message_mb < 1 || max_message_mb > 2047) {
    std::fprintf(stderr, "ps_coordinator: --max_message_mb: must be in [1, 2047], got %d\n",
                 max_message_mb);
    return 1;
  }
  options.max_message_bytes = max_message_mb << 20;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
      ps::MakeServerCredentials(ps::TlsFilesFromFlags());
  if (!creds.ok()) {
    std::fprintf(stderr, "ps_coordinator: %s\n", creds.status().ToString().c_str());
    return 1;
  }
  options.credentials = *std::move(creds);
  if (const std::string token_file = ps::AuthTokenFileFromFlag(); !token_file.empty()) {
    absl::StatusOr<std::string> token = ps::ReadTokenFile(token_file, "--auth_token_file");
    if (!token.ok()) {
      std::fprintf(stderr, "ps_coordinator: %s\n", token.status().ToString().c_str());
      return 1;
    }
    options.auth_token = *std::move(token);
  }
  ps::MetricsServer::Options metrics_options;
  metrics_options.port = absl::GetFlag(FLAGS_metrics_port);
  metrics_options.host = options.host;
  absl::StatusOr<std::unique_ptr<ps::MetricsServer>> metrics_server =
      ps::MetricsServer::Start(metrics_options);
  if (!metrics_server.ok()) {
    std::fprintf(stderr, "ps_coordinator: --metrics_port: %s\n",
                 metrics_server.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<ps::CoordinatorMetrics>> metrics =
      ps::CoordinatorMetrics::Create(metrics_server->get());
  if (!metrics.ok()) {
    std::fprintf(stderr, "ps_coordinator: %s\n", metrics.status().ToString().c_str());
    return 1;
  }
  if ((*metrics_server)->port() > 0) {
    std::printf("metrics on %s:%d\n", options.host.c_str(), (*metrics_server)->port());
  }
  auto server = ps::CoordinatorServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "ps_coordinator: %s\n", server.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*server)->address().c_str());
  std::fflush(stdout);

  // Refresh the metrics every second until a signal comes.
  int sig = -1;
  const timespec second{1, 0};
  while (sig < 0) {
    (*metrics)->Refresh(*(*server)->coordinator(), absl::ToUnixMillis(absl::Now()));
    sig = sigtimedwait(&signals, nullptr, &second);
  }
  PS_LOG(INFO) << "signal " << sig << ": shutting down";
  (*server)->Shutdown();
  server->reset();
  return 0;
}
