#include "common/logging.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace ps {
namespace {

std::atomic<int> min_severity{0};

const char* Basename(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash == nullptr ? path : slash + 1;
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) {
  min_severity.store(static_cast<int>(severity), std::memory_order_relaxed);
}

LogMessage::LogMessage(LogSeverity severity, const char* file, int line)
    : severity_(severity) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  localtime_r(&tv.tv_sec, &tm);
  char prefix[64];
  std::snprintf(prefix, sizeof(prefix), "%c%02d%02d %02d:%02d:%02d.%06ld ",
                "IWEF"[static_cast<int>(severity)], tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<long>(tv.tv_usec));
  stream_ << prefix << Basename(file) << ':' << line << "] ";
}

LogMessage::~LogMessage() {
  if (static_cast<int>(severity_) >= min_severity.load(std::memory_order_relaxed) ||
      severity_ == LogSeverity::kFATAL) {
    stream_ << '\n';
    const std::string line = stream_.str();
    // One write keeps concurrent lines whole.
    if (::write(STDERR_FILENO, line.data(), line.size()) < 0) {
      // Nothing sensible to do when stderr is gone.
    }
  }
  if (severity_ == LogSeverity::kFATAL) std::abort();
}

}  // namespace ps
