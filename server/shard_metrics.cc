#include "server/shard_metrics.h"

#include <string>

#include "absl/status/status.h"
#include "common/status.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"

namespace ps {
absl::StatusOr<std::unique_ptr<ShardMetrics>> ShardMetrics::Create(MetricsServer* server,
                                                                   uint32_t shard_id) {
  std::unique_ptr<ShardMetrics> m(new ShardMetrics());
  const prometheus::Labels shard = {{"shard", std::to_string(shard_id)}};
  PS_ASSIGN_OR_RETURN(m->calls_, server->AddCounterFamily("ps_shard_requests_total",
                                                          "RPCs answered, by method and status code.", shard));
  PS_ASSIGN_OR_RETURN(m->seconds_, server->AddHistogramFamily("ps_shard_request_seconds",
                                                              "RPC latency (pulls include waiting).", shard));
  PS_ASSIGN_OR_RETURN(m->bytes_in_, server->AddCounterFamily("ps_shard_received_bytes_total",
                                                             "Request bytes, by method.", shard));
  PS_ASSIGN_OR_RETURN(m->bytes_out_, server->AddCounterFamily("ps_shard_sent_bytes_total",
                                                              "Response tensor bytes, by method.", shard));
  PS_ASSIGN_OR_RETURN(auto* ck_seconds, server->AddHistogramFamily(
                                            "ps_shard_checkpoint_write_seconds",
                                            "Durable write time of a checkpoint.", shard));
  PS_ASSIGN_OR_RETURN(m->checkpoint_seconds_, MetricsServer::AddHistogram(ck_seconds));
  PS_ASSIGN_OR_RETURN(auto* ck_pause, server->AddHistogramFamily(
                                          "ps_shard_checkpoint_pause_seconds",
                                          "Time pushes were held for a checkpoint's snapshot (the job's lock).", shard));
  PS_ASSIGN_OR_RETURN(m->checkpoint_pause_seconds_, MetricsServer::AddHistogram(ck_pause));
  PS_ASSIGN_OR_RETURN(auto* ck_bytes, server->AddCounterFamily("ps_shard_checkpoint_bytes_total",
                                                               "Checkpoint bytes written.", shard));
  PS_ASSIGN_OR_RETURN(m->checkpoint_bytes_, MetricsServer::AddCounter(ck_bytes));
  PS_ASSIGN_OR_RETURN(m->checkpoint_clock_, server->AddGaugeFamily("ps_shard_checkpoint_clock",
                                                                   "Clock of the job's latest checkpoint.", shard));
  PS_ASSIGN_OR_RETURN(m->job_clock_, server->AddGaugeFamily("ps_shard_job_clock",
                                                            "Clocks applied, by job.", shard));
  PS_ASSIGN_OR_RETURN(m->job_rows_, server->AddGaugeFamily("ps_shard_job_sparse_rows",
                                                           "Sparse rows held, by job.", shard));
  PS_ASSIGN_OR_RETURN(m->job_memory_, server->AddGaugeFamily("ps_shard_job_memory_bytes",
                                                             "Weights and slots, by job.", shard));
  PS_ASSIGN_OR_RETURN(auto* memory, server->AddGaugeFamily("ps_shard_memory_bytes",
                                                           "Weights and slots of every job.", shard));
  PS_ASSIGN_OR_RETURN(m->memory_, MetricsServer::AddGauge(memory));
  PS_ASSIGN_OR_RETURN(auto* budget, server->AddGaugeFamily("ps_shard_memory_budget_bytes",
                                                           "--memory_budget_mb in bytes; 0 = none.", shard));
  PS_ASSIGN_OR_RETURN(m->memory_budget_, MetricsServer::AddGauge(budget));
  return m;
}

ShardMetrics::Method* ShardMetrics::MethodOf(const char* method) {
  MutexLock lock(&mu_);
  auto it = methods_.find(method);
  if (it != methods_.end()) return &it->second;
  const prometheus::Labels labels = {{"method", method}};
  Method m;
  m.seconds = *MetricsServer::AddHistogram(seconds_, labels);
  m.bytes_in = *MetricsServer::AddCounter(bytes_in_, labels);
  m.bytes_out = *MetricsServer::AddCounter(bytes_out_, labels);
  return &methods_.emplace(method, m).first->second;
}

CallObserver ShardMetrics::Observer() {
  return [this](const char* method, int code, size_t bytes_in, size_t bytes_out, double seconds) {
    Method* m = MethodOf(method);
    m->seconds->Observe(seconds);
    m->bytes_in->Increment(static_cast<double>(bytes_in));
    m->bytes_out->Increment(static_cast<double>(bytes_out));
    calls_->Add({{"method", method},
                 {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(code))}})
        .Increment();
  };
}

void ShardMetrics::OnCheckpoint(const CheckpointInfo& info) {
  checkpoint_seconds_->Observe(static_cast<double>(info.write_us) * 1e-6);
  checkpoint_pause_seconds_->Observe(static_cast<double>(info.pause_us) * 1e-6);
  checkpoint_bytes_->Increment(static_cast<double>(info.bytes));
  checkpoint_clock_->Add({{"job", info.job_id}}).Set(static_cast<double>(info.clock));
}

void ShardMetrics::Refresh(const ShardCore& core) {
  memory_->Set(static_cast<double>(core.budget().used()));
  memory_budget_->Set(static_cast<double>(core.budget().limit()));
  for (const auto& job : core.Jobs()) {
    const JobCounters c = job->Counters(/*with_digest=*/false);
    const prometheus::Labels labels = {{"job", job->config().job_id}};
    job_clock_->Add(labels).Set(static_cast<double>(c.clock));
    job_rows_->Add(labels).Set(static_cast<double>(c.sparse_rows));
    job_memory_->Add(labels).Set(static_cast<double>(c.memory_bytes));
  }
}

}  // namespace ps
