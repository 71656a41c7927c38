#include "common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

// GET http://127.0.0.1:port/path over a plain socket (HTTP/1.0: the server closes the
// connection after the response). Returns the whole response, or "" on error.
std::string HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) response.append(buf, n);
    }
  }
  ::close(fd);
  return response;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(MetricsTest, ServesCountersGaugesAndHistogramsOverHttp) {
  MetricsServer::Options options;
  options.port = 0;
  auto server = MetricsServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  ASSERT_GT(port, 0);

  auto calls = (*server)->AddCounterFamily("ps_test_requests_total", "Requests.",
                                           {{"shard", "3"}});
  ASSERT_TRUE(calls.ok()) << calls.status();
  auto pulls = MetricsServer::AddCounter(*calls, {{"method", "Pull"}});
  ASSERT_TRUE(pulls.ok()) << pulls.status();
  (*pulls)->Increment();
  (*pulls)->Increment(2);

  auto gauges = (*server)->AddGaugeFamily("ps_test_inflight", "In flight.");
  ASSERT_TRUE(gauges.ok()) << gauges.status();
  auto inflight = MetricsServer::AddGauge(*gauges);
  ASSERT_TRUE(inflight.ok()) << inflight.status();
  (*inflight)->Set(42);

  auto latencies = (*server)->AddHistogramFamily("ps_test_latency_seconds", "Latency.");
  ASSERT_TRUE(latencies.ok()) << latencies.status();
  auto latency = MetricsServer::AddHistogram(*latencies, {{"method", "Pull"}});
  ASSERT_TRUE(latency.ok()) << latency.status();
  (*latency)->Observe(0.25);
  (*latency)->Observe(2);

  std::string page = HttpGet(port, "/metrics");
  ASSERT_TRUE(Contains(page, " 200 OK")) << page;
  EXPECT_TRUE(Contains(page, "# TYPE ps_test_requests_total counter")) << page;
  EXPECT_TRUE(Contains(page, "ps_test_requests_total{shard=\"3\",method=\"Pull\"} 3\n"))
      << page;
  EXPECT_TRUE(Contains(page, "ps_test_inflight 42\n")) << page;
  EXPECT_TRUE(Contains(page, "# TYPE ps_test_latency_seconds histogram")) << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_bucket{method=\"Pull\",le=\"0.1\"} 0\n"))
      << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_bucket{method=\"Pull\",le=\"0.25\"} 1\n"))
      << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_bucket{method=\"Pull\",le=\"2.5\"} 2\n"))
      << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_bucket{method=\"Pull\",le=\"+Inf\"} 2\n"))
      << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_count{method=\"Pull\"} 2\n")) << page;
  EXPECT_TRUE(Contains(page, "ps_test_latency_seconds_sum{method=\"Pull\"} 2.25\n")) << page;

  // The same labels give the same metric; the page follows the updates.
  auto again = MetricsServer::AddCounter(*calls, {{"method", "Pull"}});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *pulls);
  (*again)->Increment();
  page = HttpGet(port, "/metrics");
  EXPECT_TRUE(Contains(page, "ps_test_requests_total{shard=\"3\",method=\"Pull\"} 4\n"))
      << page;
}

TEST(MetricsTest, BadNamesAreInvalidArgumentNotExceptions) {
  auto server = MetricsServer::Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->port(), 0);  // port -1: registry only
  EXPECT_EQ((*server)->AddCounterFamily("bad name", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*server)->AddGaugeFamily("ok_name", "x", {{"bad-label", "v"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto counters = (*server)->AddCounterFamily("ps_dup", "x");
  ASSERT_TRUE(counters.ok()) << counters.status();
  EXPECT_EQ((*server)->AddGaugeFamily("ps_dup", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto same = (*server)->AddCounterFamily("ps_dup", "x");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(*same, *counters);
  EXPECT_EQ(MetricsServer::AddCounter(*counters, {{"0bad", "v"}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsServer::AddCounter(nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto histograms = (*server)->AddHistogramFamily("ps_h", "x");
  ASSERT_TRUE(histograms.ok());
  EXPECT_EQ(MetricsServer::AddHistogram(*histograms, {}, {1, 1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetricsTest, BadPortsAndBusyPorts) {
  MetricsServer::Options options;
  options.port = 70000;
  EXPECT_EQ(MetricsServer::Start(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.port = 0;
  auto first = MetricsServer::Start(options);
  ASSERT_TRUE(first.ok()) << first.status();
  options.port = (*first)->port();
  EXPECT_EQ(MetricsServer::Start(options).status().code(), absl::StatusCode::kUnavailable);
}

TEST(MetricsTest, DefaultBuckets) {
  const std::vector<double> latency = DefaultLatencyBuckets();
  ASSERT_EQ(latency.size(), 17u);
  EXPECT_DOUBLE_EQ(latency.front(), 50e-6);
  EXPECT_DOUBLE_EQ(latency.back(), 10);
  const std::vector<double> bytes = DefaultByteBuckets();
  ASSERT_EQ(bytes.size(), 13u);
  EXPECT_EQ(bytes.front(), 64);
  EXPECT_EQ(bytes.back(), double{1 << 30});
  for (size_t i = 1; i < latency.size(); ++i) EXPECT_LT(latency[i - 1], latency[i]);
}

}  // namespace
}  // namespace ps
