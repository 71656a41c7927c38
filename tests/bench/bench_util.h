// Small pieces shared by ps_bench's modes: JSON rows, timing, percentiles, and an
// in-process shard cluster served over real gRPC on 127.0.0.1.
#ifndef PS_TESTS_BENCH_BENCH_UTIL_H_
#define PS_TESTS_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>


namespace ps::bench {

// One JSON object with keys in insertion order; values are numbers or strings.
class Row {
 public:
  Row& Set(std::string key, double value) {
    fields_.emplace_back(std::move(key), value);
    return *this;
  }
  Row& Set(std::string key, std::string value) {
    fields_.emplace_back(std::move(key), std::move(value));
    return *this;
  }
  Row& Set(std::string key, const char* value) { return Set(std::move(key), std::string(value)); }
  std::string ToJson() const;
  // Human-readable "k=v k=v" for the log.
  std::string ToText() const;

 private:
  std::vector<std::pair<std::string, std::variant<double, std::string>>> fields_;
};

using Clock = std::chrono::steady_clock;

inline double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds (user + system) this process has used, on all its threads: the shards,
// clients and echo server of a run all live in it.
double CpuSeconds();

// Times of repeated rounds of one measurement, and the CPU they took.
struct Rounds {
  std::vector<double> seconds;  // Wall seconds of each round.
  double cpu_s = 0;             // CPU seconds of all of them together.
  double Best() const;          // The shortest round; 0 when there is none.
  double Mean() const;          // 0 when there is none.
  double Total() const;
};

// `warmup` untimed rounds, then `rounds` timed ones, of `round`; a round returning false
// failed, and so does the measurement (no rounds).
Rounds TimeRounds(int warmup, int rounds, const std::function<bool()>& round);

// The q-quantile (0..1) of `v` (sorted in place); 0 for an empty vector.
double Quantile(std::vector<double>* v, double q);

// A fresh, empty directory for bench data: under $TEST_TMPDIR, else $TMPDIR, else /tmp.
std::string BenchDir(const std::string& name);

// GB/s (1e9 bytes) of memcpy between two warm buffers of `bytes`, best of a few runs.
double MemcpyGbps(size_t bytes);

}  // namespace ps::bench

#endif  // PS_TESTS_BENCH_BENCH_UTIL_H_
