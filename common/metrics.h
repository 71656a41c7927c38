// Prometheus metrics for a daemon: a thin wrapper over prometheus-cpp 1.0.
//
//   MetricsServer::Options options;
//   options.port = absl::GetFlag(FLAGS_metrics_port);  // -1 none, 0 any
//   PS_ASSIGN_OR_RETURN(std::unique_ptr<MetricsServer> metrics,
//                       MetricsServer::Start(options));
//   PS_ASSIGN_OR_RETURN(auto* calls, metrics->AddCounterFamily("ps_rpc_total", "RPCs."));
//   PS_ASSIGN_OR_RETURN(prometheus::Counter * pulls,
//                       MetricsServer::AddCounter(calls, {{"method", "Pull"}}));
//   pulls->Increment();
//
// prometheus-cpp reports bad names by throwing; this wrapper catches and returns
// INVALID_ARGUMENT instead, so a typo in a metric name never kills a daemon.
#ifndef PS_COMMON_METRICS_H_
#define PS_COMMON_METRICS_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/labels.h"
#include "prometheus/registry.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace ps {

// Latency buckets in seconds, 50 us to 10 s in 1-2.5-5 steps (17 bounds).
std::vector<double> DefaultLatencyBuckets();
// Size buckets in bytes, 64 B to 1 GiB in x4 steps (13 bounds).
std::vector<double> DefaultByteBuckets();

// Owns a metrics registry and, optionally, an HTTP endpoint serving it at /metrics in
// the Prometheus text format (civetweb threads inside prometheus-cpp's Exposer).
//
// Thread-safe: families and metrics may be added and updated from any thread (the
// prometheus-cpp registry, families and metrics lock or use atomics internally).
// Families and metrics returned by the Add* functions are owned by the registry and
// live as long as this object; the endpoint stops when it is destroyed.
class MetricsServer final {
 public:
  struct Options {
    // -1: no endpoint (registry only); 0: any free port; otherwise this port.
    int port = -1;
    // Address to bind: loopback by default; "0.0.0.0" (or "::") to serve all.
    std::string host = "127.0.0.1";
    // HTTP worker threads.
    size_t threads = 2;
  };

  // Creates the registry and, when options.port >= 0, starts serving. INVALID_ARGUMENT
  // for a port outside [-1, 65535] or zero threads; UNAVAILABLE when the address cannot
  // be bound (port in use, bad host).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const Options& options);

  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the real one when started with port 0), or 0 when not serving.
  int port() const { return port_; }
  prometheus::Registry& registry() { return *registry_; }

  // Adds (or returns the existing) family `name`, with labels fixed for all its
  // metrics. INVALID_ARGUMENT for a bad metric or label name, or a name already used by
  // a family of another type.
  absl::StatusOr<prometheus::Family<prometheus::Counter>*> AddCounterFamily(
      const std::string& name, const std::string& help,
      const prometheus::Labels& constant_labels = {});
  absl::StatusOr<prometheus::Family<prometheus::Gauge>*> AddGaugeFamily(
      const std::string& name, const std::string& help,
      const prometheus::Labels& constant_labels = {});
  absl::StatusOr<prometheus::Family<prometheus::Histogram>*> AddHistogramFamily(
      const std::string& name, const std::string& help,
      const prometheus::Labels& constant_labels = {});

  // Adds (or returns the existing) metric with `labels` to a family. INVALID_ARGUMENT
  // for a bad label name or a null family; for a histogram, bucket bounds must be
  // strictly increasing (an existing histogram keeps its own buckets).
  static absl::StatusOr<prometheus::Counter*> AddCounter(
      prometheus::Family<prometheus::Counter>* family, const prometheus::Labels& labels = {});
  static absl::StatusOr<prometheus::Gauge*> AddGauge(
      prometheus::Family<prometheus::Gauge>* family, const prometheus::Labels& labels = {});
  static absl::StatusOr<prometheus::Histogram*> AddHistogram(
      prometheus::Family<prometheus::Histogram>* family, const prometheus::Labels& labels = {},
      const std::vector<double>& buckets = DefaultLatencyBuckets());

 private:
  MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                std::unique_ptr<prometheus::Exposer> exposer, int port);

  // Declared before exposer_, so the endpoint stops before the registry goes.
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::unique_ptr<prometheus::Exposer> exposer_;  // null when not serving
  const int port_;
};

}  // namespace ps

#endif  // PS_COMMON_METRICS_H_
