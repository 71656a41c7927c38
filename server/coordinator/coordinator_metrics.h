// The coordinator's Prometheus metrics: jobs by state, members, and per job its clock,
// recoveries (count, duration, clocks redone) and checkpoint progress. Refreshed from
// the coordinator's public view, so the core stays free of metrics code.
#ifndef PS_SERVER_COORDINATOR_COORDINATOR_METRICS_H_
#define PS_SERVER_COORDINATOR_COORDINATOR_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/metrics.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "server/coordinator/coordinator.h"

namespace ps {

class CoordinatorMetrics {
 public:
  // Registers the families in `server` (not owned, must outlive this).
  static absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> Create(MetricsServer* server);

  // Sets the gauges from `c` and adds what changed since the last call to the counters
  // and the recovery histogram. `now_ms` is Unix milliseconds. Call periodically from
  // one thread.
  void Refresh(const Coordinator& c, int64_t now_ms);

 private:
  CoordinatorMetrics() = default;
  struct JobSeen {
    uint32_t recoveries = 0;
    uint64_t clocks_redone = 0;
  };

  prometheus::Family<prometheus::Gauge>* jobs_ = nullptr;
  prometheus::Family<prometheus::Gauge>* members_ = nullptr;
  prometheus::Family<prometheus::Gauge>* job_clock_ = nullptr;
  prometheus::Family<prometheus::Counter>* recoveries_ = nullptr;
  prometheus::Family<prometheus::Counter>* clocks_redone_ = nullptr;
  prometheus::Family<prometheus::Gauge>* checkpoint_clock_ = nullptr;
  prometheus::Family<prometheus::Gauge>* checkpoint_age_ = nullptr;
  prometheus::Histogram* recovery_seconds_ = nullptr;
  std::map<std::string, JobSeen> seen_;
};

}  // namespace ps

#endif  // PS_SERVER_COORDINATOR_COORDINATOR_METRICS_H_
