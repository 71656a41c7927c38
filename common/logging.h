// Minimal leveled logging to stderr (abseil 20220623 has no absl/log).
//
//   PS_LOG(INFO) << "shard " << id << " listening on " << addr;
//   PS_LOG(FATAL) << "...";  // Logs, then aborts: only for broken invariants of our
//                            // own code, never for bad input.
//
// Each line: "I1127 20:31:05.123456 server.cc:42] message". Thread-safe: a line is
// written with one call.
#ifndef PS_COMMON_LOGGING_H_
#define PS_COMMON_LOGGING_H_

#include <sstream>

namespace ps {

enum class LogSeverity { kINFO, kWARNING, kERROR, kFATAL };

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;

  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Lines below this severity are dropped (default INFO).
void SetMinLogSeverity(LogSeverity severity);

}  // namespace ps

#define PS_LOG(severity) \
  ::ps::LogMessage(::ps::LogSeverity::k##severity, __FILE__, __LINE__).stream()

// Aborts with a message when an invariant of our own code does not hold.
#define PS_CHECK(cond) \
  if (!(cond)) PS_LOG(FATAL) << "check failed: " #cond " "

#endif  // PS_COMMON_LOGGING_H_
