// ps_server: one parameter-server shard. Parses flags and wires the objects; the work
// is in ShardCore (state) and ShardServiceImpl (RPCs).
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/convert.h"
#include "server/shard_core.h"
#include "server/shard_service.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (printed at start).");
ABSL_FLAG(int, shard_id, 0, "This shard's id, 0 .. num_shards-1.");
ABSL_FLAG(int, num_shards, 1, "Shards in the cluster; a job placed over another count is refused.");
ABSL_FLAG(std::string, data_dir, "", "Directory of this shard's RocksDB checkpoints (required).");
ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator; empty runs standalone.");
ABSL_FLAG(int64_t, memory_budget_mb, 0,
          "Memory for weights and slots; creating tables or rows past it answers "
          "RESOURCE_EXHAUSTED. 0 = unlimited.");
ABSL_FLAG(int, metrics_port, -1, "Port of the Prometheus /metrics endpoint; -1 = none, 0 = any.");
ABSL_FLAG(int, max_message_mb, 256, "Largest gRPC message accepted, in MiB.");

namespace ps {
namespace {

int Run() {
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) {
    std::fprintf(stderr, "ps_server: --data_dir is required\n");
    return 1;
  }
  const int shard_id = absl::GetFlag(FLAGS_shard_id);
  const int num_shards = absl::GetFlag(FLAGS_num_shards);
  if (num_shards < 1 || shard_id < 0 || shard_id >= num_shards) {
    std::fprintf(stderr, "ps_server: --shard_id must be in [0, --num_shards)\n");
    return 1;
  }

  // Signals are taken by sigwait below, not by handlers in random threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ShardCore::Options options;
  options.shard_id = static_cast<uint32_t>(shard_id);
  options.memory_budget_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_memory_budget_mb)) << 20;
  options.data_dir = data_dir;
  options.decode_job = JobConfigFromBlob;
  options.decode_table = TableConfigFromBlob;
  options.on_checkpoint = [shard_id](const CheckpointInfo& info) {
    PS_LOG(INFO) << "shard " << shard_id << " job " << info.job_id << ": checkpoint at clock "
                 << info.clock << ", " << info.bytes << " bytes, pause " << info.pause_us
                 << " us, write " << info.write_us << " us";
  };
  absl::StatusOr<std::unique_ptr<ShardCore>> core = ShardCore::Open(std::move(options));
  if (!core.ok()) {
    std::fprintf(stderr, "ps_server: %s\n", core.status().ToString().c_str());
    return 1;
  }

  ShardServiceImpl service(core->get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen =
      HostPort{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(absl::GetFlag(FLAGS_port))}
          .ToString();
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  const int max_bytes = absl::GetFlag(FLAGS_max_message_mb) << 20;
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ps_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("listening on %s\n",
              HostPort{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port)}.ToString().c_str());
  std::fflush(stdout);
  PS_LOG(INFO) << "shard " << shard_id << " of " << num_shards << " serving on port " << port
               << ", checkpoints in " << data_dir;

  int sig = 0;
  sigwait(&signals, &sig);
  PS_LOG(INFO) << "shard " << shard_id << ": signal " << sig << ", draining";
  server->GetHealthCheckService()->SetServingStatus(false);
  (*core)->CloseAll();  // Waiting pulls answer UNAVAILABLE; clients retry elsewhere.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  (*core)->Drain();
  core->reset();
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ps::ParseFlags(argc, argv,
                 "ps_server: one parameter-server shard.\n"
                 "usage: ps_server --port=P --shard_id=I --num_shards=S --data_dir=DIR "
                 "[--coordinator=HOST:PORT] [--memory_budget_mb=N] [--metrics_port=P]");
  return ps::Run();
}
