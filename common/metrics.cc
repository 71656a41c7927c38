#include "common/metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace ps {
namespace {

template <typename T>
absl::StatusOr<prometheus::Family<T>*> AddFamily(prometheus::detail::Builder<T> builder,
                                                 prometheus::Registry& registry,
                                                 const std::string& name,
                                                 const std::string& help,
                                                 const prometheus::Labels& labels) {
  try {
    return &builder.Name(name).Help(help).Labels(labels).Register(registry);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("metric family '", name, "': ", e.what()));
  }
}

template <typename T, typename... Args>
absl::StatusOr<T*> AddMetric(prometheus::Family<T>* family, const prometheus::Labels& labels,
                             Args&&... args) {
  if (family == nullptr) return absl::InvalidArgumentError("null metric family");
  try {
    return &family->Add(labels, std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric '", family->GetName(), "': ", e.what()));
  }
}

}  // namespace

std::vector<double> DefaultLatencyBuckets() {
  return {50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
          50e-3, 100e-3, 250e-3, 500e-3, 1,    2.5,    5,    10};
}

std::vector<double> DefaultByteBuckets() {
  std::vector<double> b;
  for (double v = 64; v <= double{1 << 30}; v *= 4) b.push_back(v);
  return b;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const Options& options) {
  if (options.port < -1 || options.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics port must be -1 (none) or in [0, 65535], got ", options.port));
  }
  if (options.threads == 0) return absl::InvalidArgumentError("metrics threads must be > 0");
  auto registry = std::make_shared<prometheus::Registry>();
  if (options.port < 0) {
    return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(registry), nullptr, 0));
  }
  // civetweb's "listening_ports" syntax: host:port, IPv6 hosts in brackets.
  const bool ipv6 = options.host.find(':') != std::string::npos;
  const std::string address = ipv6 ? absl::StrCat("[", options.host, "]:", options.port)
                                   : absl::StrCat(options.host, ":", options.port);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(address, options.threads);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics endpoint on ", address, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("metrics endpoint on ", address, ": not bound"));
  }
  exposer->RegisterCollectable(registry);  // the Exposer keeps a weak_ptr
  const int port = ports.front();
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(registry), std::move(exposer), port));
}

MetricsServer::MetricsServer(std::shared_ptr<prometheus::Registry> registry,
                             std::unique_ptr<prometheus::Exposer> exposer, int port)
    : registry_(std::move(registry)), exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

absl::StatusOr<prometheus::Family<prometheus::Counter>*> MetricsServer::AddCounterFamily(
    const std::string& name, const std::string& help, const prometheus::Labels& constant_labels) {
  return AddFamily(prometheus::BuildCounter(), *registry_, name, help, constant_labels);
}

absl::StatusOr<prometheus::Family<prometheus::Gauge>*> MetricsServer::AddGaugeFamily(
    const std::string& name, const std::string& help, const prometheus::Labels& constant_labels) {
  return AddFamily(prometheus::BuildGauge(), *registry_, name, help, constant_labels);
}

absl::StatusOr<prometheus::Family<prometheus::Histogram>*> MetricsServer::AddHistogramFamily(
    const std::string& name, const std::string& help, const prometheus::Labels& constant_labels) {
  return AddFamily(prometheus::BuildHistogram(), *registry_, name, help, constant_labels);
}

absl::StatusOr<prometheus::Counter*> MetricsServer::AddCounter(
    prometheus::Family<prometheus::Counter>* family, const prometheus::Labels& labels) {
  return AddMetric(family, labels);
}

absl::StatusOr<prometheus::Gauge*> MetricsServer::AddGauge(
    prometheus::Family<prometheus::Gauge>* family, const prometheus::Labels& labels) {
  return AddMetric(family, labels);
}

absl::StatusOr<prometheus::Histogram*> MetricsServer::AddHistogram(
    prometheus::Family<prometheus::Histogram>* family, const prometheus::Labels& labels,
    const std::vector<double>& buckets) {
  for (size_t i = 1; i < buckets.size(); ++i) {
    if (!(buckets[i - 1] < buckets[i])) {
      return absl::InvalidArgumentError("histogram buckets must be strictly increasing");
    }
  }
  return AddMetric(family, labels, buckets);
}

}  // namespace ps
