// ps_server: one parameter-server shard. Parses flags and wires the objects; the work
// is in ShardCore (state) and ShardServiceImpl (RPCs).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/member_link.h"
#include "common/sync.h"
#include "common/tls.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "server/convert.h"
#include "common/metrics.h"
#include "server/shard_core.h"
#include "server/shard_metrics.h"
#include "server/shard_orders.h"
#include "server/shard_service.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (printed at start).");
ABSL_FLAG(int, shard_id, 0, "This shard's id, 0 .. num_shards-1.");
ABSL_FLAG(int, num_shards, 1, "Shards in the cluster; a job placed over another count is refused.");
ABSL_FLAG(std::string, data_dir, "", "Directory of this shard's RocksDB checkpoints (required).");
ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator; empty runs standalone.");
ABSL_FLAG(std::string, advertise_address, "",
          "host:port given to the coordinator for workers to dial instead of the listening "
          "address (e.g. a proxy in front of this shard); empty = the listening address.");
ABSL_FLAG(int64_t, memory_budget_mb, 0,
          "Memory for weights and slots; creating tables or rows past it answers "
          "RESOURCE_EXHAUSTED. 0 = unlimited.");
ABSL_FLAG(int, metrics_port, -1, "Port of the Prometheus /metrics endpoint; -1 = none, 0 = any.");
ABSL_FLAG(int, max_message_mb, 256,
          "Largest gRPC message received or sent, in MiB; a bigger one is refused with "
          "RESOURCE_EXHAUSTED. Workers send parts of at most 4 MiB.");
ABSL_FLAG(uint64_t, max_keys_per_call, uint64_t{1} << 22,
          "Most sparse keys in one pull or push, over all its slices (INVALID_ARGUMENT past it).");
ABSL_FLAG(uint32_t, max_tables_per_job, 1024,
          "Most tables one job may create on this shard (RESOURCE_EXHAUSTED past it).");
ABSL_FLAG(uint64_t, max_sparse_rows_per_table, uint64_t{1} << 28,
          "Most rows one sparse table may hold on this shard; a pull or push that would "
          "create more is refused with RESOURCE_EXHAUSTED.");

namespace ps {
namespace {

int Run() {
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) {
    std::fprintf(stderr, "ps_server: --data_dir is required\n");
    return 1;
  }
  if (const std::string advertise = absl::GetFlag(FLAGS_advertise_address); !advertise.empty()) {
    const absl::StatusOr<HostPort> parsed = ParseHostPort(advertise, "--advertise_address");
    if (!parsed.ok()) {
      std::fprintf(stderr, "ps_server: %s\n", parsed.status().ToString().c_str());
      return 1;
    }
  }
  const int shard_id = absl::GetFlag(FLAGS_shard_id);
  const int num_shards = absl::GetFlag(FLAGS_num_shards);
  if (num_shards < 1 || shard_id < 0 || shard_id >= num_shards) {
    std::fprintf(stderr, "ps_server: --shard_id must be in [0, --num_shards)\n");
    return 1;
  }

  const int max_message_mb = absl::GetFlag(FLAGS_max_message_mb);
  if (max_message_mb < 1 || max_message_mb > 2047) {
    std::fprintf(stderr, "ps_server: --max_message_mb must be in [1, 2047]\n");
    return 1;
  }
  const TlsFiles tls = TlsFilesFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> server_creds =
      MakeServerCredentials(tls);
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> channel_creds =
      MakeChannelCredentials(tls);
  if (!server_creds.ok() || !channel_creds.ok()) {
    std::fprintf(stderr, "ps_server: %s\n",
                 (server_creds.ok() ? channel_creds.status() : server_creds.status())
                     .ToString()
                     .c_str());
    return 1;
  }

  // Signals are taken by sigwait below, not by handlers in random threads.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  MetricsServer::Options metrics_options;
  metrics_options.port = absl::GetFlag(FLAGS_metrics_port);
  metrics_options.host = absl::GetFlag(FLAGS_host);
  absl::StatusOr<std::unique_ptr<MetricsServer>> metrics_server = MetricsServer::Start(metrics_options);
  if (!metrics_server.ok()) {
    std::fprintf(stderr, "ps_server: --metrics_port: %s\n", metrics_server.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<ShardMetrics>> metrics =
      ShardMetrics::Create(metrics_server->get(), static_cast<uint32_t>(shard_id));
  if (!metrics.ok()) {
    std::fprintf(stderr, "ps_server: metrics: %s\n", metrics.status().ToString().c_str());
    return 1;
  }
  ShardMetrics* shard_metrics = metrics->get();

  ShardCore::Options options;
  options.shard_id = static_cast<uint32_t>(shard_id);
  options.memory_budget_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_memory_budget_mb)) << 20;
  options.limits.max_keys_per_call = absl::GetFlag(FLAGS_max_keys_per_call);
  options.limits.max_tables_per_job = absl::GetFlag(FLAGS_max_tables_per_job);
  options.limits.max_sparse_rows_per_table = absl::GetFlag(FLAGS_max_sparse_rows_per_table);
  options.data_dir = data_dir;
  options.coordinated = !absl::GetFlag(FLAGS_coordinator).empty();
  UseProtoConfigs(&options);
  // Set once the coordinator link exists; checkpoints written before are reported by
  // none (the coordinator learns the catalog from later ones).
  std::atomic<MemberLink*> link{nullptr};
  options.on_checkpoint = [shard_id, &link, shard_metrics](const CheckpointInfo& info) {
    shard_metrics->OnCheckpoint(info);
    PS_LOG(INFO) << "shard " << shard_id << " job " << info.job_id << ": checkpoint at clock "
                 << info.clock << ", " << info.bytes << " bytes, pause " << info.pause_us
                 << " us, write " << info.write_us << " us";
    MemberLink* l = link.load();
    if (l == nullptr) return;
    CheckpointReport report;
    report.set_job_id(info.job_id);
    report.set_shard_id(static_cast<uint32_t>(shard_id));
    report.set_clock(info.clock);
    ReportCheckpointResponse resp;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    const grpc::Status s = l->stub()->ReportCheckpoint(&ctx, report, &resp);
    if (!s.ok()) PS_LOG(WARNING) << "cannot report the checkpoint: " << s.error_message();
  };
  absl::StatusOr<std::unique_ptr<ShardCore>> core = ShardCore::Open(std::move(options));
  if (!core.ok()) {
    std::fprintf(stderr, "ps_server: %s\n", core.status().ToString().c_str());
    return 1;
  }

  ShardServiceImpl service(core->get(), shard_metrics->Observer());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen =
      HostPort{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(absl::GetFlag(FLAGS_port))}
          .ToString();
  builder.AddListeningPort(listen, *server_creds, &port);
  builder.RegisterService(&service);
  const int max_bytes = max_message_mb << 20;
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ps_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  if ((*metrics_server)->port() > 0) {
    std::printf("metrics on %s\n", HostPort{absl::GetFlag(FLAGS_host),
                                            static_cast<uint16_t>((*metrics_server)->port())}
                                       .ToString()
                                       .c_str());
  }
  std::printf("listening on %s\n",
              HostPort{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port)}.ToString().c_str());
  std::fflush(stdout);
  PS_LOG(INFO) << "shard " << shard_id << " of " << num_shards << " serving on port " << port
               << ", checkpoints in " << data_dir;

  ShardOrders orders(core->get());
  std::unique_ptr<MemberLink> member_link;
  const std::string coordinator = absl::GetFlag(FLAGS_coordinator);
  if (!coordinator.empty()) {
    Member me;
    me.set_role(SHARD);
    me.set_shard_id(static_cast<uint32_t>(shard_id));
    const std::string advertise = absl::GetFlag(FLAGS_advertise_address);
    me.set_address(advertise.empty()
                       ? HostPort{absl::GetFlag(FLAGS_host), static_cast<uint16_t>(port)}.ToString()
                       : advertise);
    ShardCore* shard = core->get();
    member_link = std::make_unique<MemberLink>(
        coordinator, me,
        [&orders](const HeartbeatResponse& resp) { return orders.Apply(resp); },
        [shard, &orders](HeartbeatRequest* req) {
          const uint64_t limit = shard->budget().limit();
          req->set_load(limit == 0 ? 0.0 : static_cast<double>(shard->budget().used()) / limit);
          orders.Fill(req);
        },
        *channel_creds);
    link.store(member_link.get());
    member_link->Start();
  }

  // Refresh the gauges every second until a signal comes.
  int sig = -1;
  const timespec second{1, 0};
  while (sig < 0) {
    shard_metrics->Refresh(**core);
    sig = sigtimedwait(&signals, nullptr, &second);
  }
  PS_LOG(INFO) << "shard " << shard_id << ": signal " << sig << ", draining";
  server->GetHealthCheckService()->SetServingStatus(false);
  (*core)->CloseAll();  // Waiting pulls answer UNAVAILABLE; clients retry elsewhere.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  (*core)->Drain();
  link.store(nullptr);
  member_link.reset();
  core->reset();
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ps::SkipMutexOrderChecksInReleaseBuilds();
  ps::ParseFlags(argc, argv,
                 "ps_server: one parameter-server shard.\n"
                 "usage: ps_server --port=P --shard_id=I --num_shards=S --data_dir=DIR "
                 "[--coordinator=HOST:PORT] [--memory_budget_mb=N] [--metrics_port=P]\n"
                 "       [--tls_cert=PEM --tls_key=PEM [--tls_ca=PEM]]");
  return ps::Run();
}
