#include "server/coordinator/server.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/status.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/coordinator/job_store.h"
#include "server/coordinator/service.h"

namespace ps {

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorServerOptions& options) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data_dir: is required");
  if (options.max_message_bytes < 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_message_mb: must be positive, got ", options.max_message_bytes, " bytes"));
  }
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--port: must be in [0, 65535], got ", options.port));
  }
  std::unique_ptr<CoordinatorServer> s(new CoordinatorServer());
  s->host_ = options.host;
  const Clock* clock = options.clock != nullptr ? options.clock : &s->real_clock_;
  PS_ASSIGN_OR_RETURN(std::unique_ptr<JobStore> store, OpenRocksJobStore(options.data_dir));
  PS_ASSIGN_OR_RETURN(s->core_, Coordinator::Create(options.coordinator, std::move(store),
                                                    clock));
  s->service_ =
      std::make_unique<CoordinatorServiceImpl>(s->core_.get(), options.watch_min_interval,
                                               options.auth_token);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string listen = HostPort{options.host, static_cast<uint16_t>(options.port)}.ToString();
  builder.AddListeningPort(listen,
                           options.credentials != nullptr ? options.credentials
                                                          : grpc::InsecureServerCredentials(),
                           &s->port_);
  builder.RegisterService(s->service_.get());
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }

  s->tick_interval_ = options.tick_interval;
  if (s->tick_interval_ <= absl::ZeroDuration()) {
    s->tick_interval_ = std::clamp(
        absl::Milliseconds(options.coordinator.heartbeat_interval_ms) / 2,
        absl::Milliseconds(10), absl::Seconds(1));
  }
  s->ticker_ = std::thread([raw = s.get()] { raw->TickLoop(); });
  PS_LOG(INFO) << "coordinator serving on " << s->address() << ", data in "
               << options.data_dir << ", " << options.coordinator.num_shards << " shards";
  return s;
}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

std::string CoordinatorServer::address() const {
  return HostPort{host_, static_cast<uint16_t>(port_)}.ToString();
}

void CoordinatorServer::TickLoop() {
  const absl::Time start = absl::Now();
  for (int64_t n = 1;; ++n) {
    {
      MutexLock lock(&mu_);
      const absl::Time next = start + n * tick_interval_;
      while (!stop_ticking_ && absl::Now() < next) {
        stop_cv_.WaitWithTimeout(&mu_, next - absl::Now());
      }
      if (stop_ticking_) return;
    }
    core_->Tick();
  }
}

void CoordinatorServer::Shutdown(absl::Duration grace) {
  {
    MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  if (server_ != nullptr) {
    server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
    server_->Wait();
    service_->WaitForWatchers();
  }
  if (ticker_.joinable()) {
    {
      MutexLock lock(&mu_);
      stop_ticking_ = true;
    }
    stop_cv_.SignalAll();
    ticker_.join();
  }
  server_.reset();
  service_.reset();
  core_.reset();  // Closes the store.
}

}  // namespace ps
