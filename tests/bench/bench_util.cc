#include "tests/bench/bench_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <system_error>

#include <sys/resource.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace ps::bench {

namespace {

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

}  // namespace

std::string Row::ToJson() const {
  std::string out = "{";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i > 0) out += ", ";
    out += JsonString(fields_[i].first) + ": ";
    if (const double* d = std::get_if<double>(&fields_[i].second)) {
      out += JsonNumber(*d);
    } else {
      out += JsonString(std::get<std::string>(fields_[i].second));
    }
  }
  return out + "}";
}

std::string Row::ToText() const {
  std::string out;
  for (const auto& [k, v] : fields_) {
    if (!out.empty()) out += ' ';
    if (const double* d = std::get_if<double>(&v)) {
      out += absl::StrCat(k, "=", JsonNumber(*d));
    } else {
      out += absl::StrCat(k, "=", std::get<std::string>(v));
    }
  }
  return out;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return seconds(u.ru_utime) + seconds(u.ru_stime);
}

double Rounds::Best() const {
  return seconds.empty() ? 0 : *std::min_element(seconds.begin(), seconds.end());
}

double Rounds::Mean() const { return seconds.empty() ? 0 : Total() / seconds.size(); }

double Rounds::Total() const { return std::accumulate(seconds.begin(), seconds.end(), 0.0); }

Rounds TimeRounds(int warmup, int rounds, const std::function<bool()>& round) {
  for (int i = 0; i < warmup; ++i) {
    if (!round()) return Rounds();
  }
  Rounds r;
  const double cpu0 = CpuSeconds();
  for (int i = 0; i < rounds; ++i) {
    const auto t0 = Clock::now();
    if (!round()) return Rounds();
    r.seconds.push_back(SecondsSince(t0));
  }
  r.cpu_s = CpuSeconds() - cpu0;
  return r;
}

double Quantile(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  const size_t i = std::min(v->size() - 1, static_cast<size_t>(q * static_cast<double>(v->size())));
  return (*v)[i];
}

std::string BenchDir(const std::string& name) {
  const char* root = std::getenv("TEST_TMPDIR");
  if (root == nullptr) root = std::getenv("TMPDIR");
  if (root == nullptr) root = "/tmp";
  const std::string dir = absl::StrCat(root, "/ps_bench.", name);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  return dir;
}

double MemcpyGbps(size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    const auto t0 = Clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    const double s = SecondsSince(t0);
    if (b[bytes / 2] != 1) return 0;
    best = std::max(best, static_cast<double>(bytes) / s / 1e9);
    std::swap(a, b);
  }
  return best;
}

}  // namespace ps::bench
