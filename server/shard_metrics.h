// Prometheus metrics of a shard: per-RPC counts, bytes and latency, checkpoint
// duration, size and training pause, and per-job clocks, rows and memory.
//
// Thread-safe. The metrics live in the MetricsServer's registry (not owned; must
// outlive this object).
#ifndef PS_SERVER_SHARD_METRICS_H_
#define PS_SERVER_SHARD_METRICS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "common/sync.h"
#include "server/shard_core.h"
#include "server/shard_service.h"

namespace ps {

class ShardMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<ShardMetrics>> Create(MetricsServer* server,
                                                              uint32_t shard_id);

  // For ShardServiceImpl: records one finished call.
  CallObserver Observer();
  // For ShardCore::Options::on_checkpoint.
  void OnCheckpoint(const CheckpointInfo& info);
  // Samples memory and every job's clock and rows (call periodically).
  void Refresh(const ShardCore& core);

 private:
  struct Method {
    prometheus::Histogram* seconds;
    prometheus::Counter* bytes_in;
    prometheus::Counter* bytes_out;
  };
  ShardMetrics() = default;
  Method* MethodOf(const char* method);

  prometheus::Family<prometheus::Counter>* calls_ = nullptr;
  prometheus::Family<prometheus::Histogram>* seconds_ = nullptr;
  prometheus::Family<prometheus::Counter>* bytes_in_ = nullptr;
  prometheus::Family<prometheus::Counter>* bytes_out_ = nullptr;
  prometheus::Histogram* checkpoint_seconds_ = nullptr;
  prometheus::Histogram* checkpoint_pause_seconds_ = nullptr;
  prometheus::Counter* checkpoint_bytes_ = nullptr;
  prometheus::Family<prometheus::Gauge>* checkpoint_clock_ = nullptr;
  prometheus::Family<prometheus::Gauge>* job_clock_ = nullptr;
  prometheus::Family<prometheus::Gauge>* job_rows_ = nullptr;
  prometheus::Family<prometheus::Gauge>* job_memory_ = nullptr;
  prometheus::Gauge* memory_ = nullptr;
  prometheus::Gauge* memory_budget_ = nullptr;

  Mutex mu_;
  absl::flat_hash_map<std::string, Method> methods_ ABSL_GUARDED_BY(mu_);
};

}  // namespace ps

#endif  // PS_SERVER_SHARD_METRICS_H_
