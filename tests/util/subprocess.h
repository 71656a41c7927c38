// Real daemons for multi-process tests: start a binary, wait for its
// "listening on HOST:PORT" line, kill it with a real signal.
#ifndef PS_TESTS_UTIL_SUBPROCESS_H_
#define PS_TESTS_UTIL_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace ps::testing {

// Path of a binary in the test's runfiles, e.g. Runfile("server/ps_server").
std::string Runfile(const std::string& path);

// The source folder a runfile's symlink points into, minus `path` itself: the real
// workspace root, for daemons whose --data_root confines symlink targets.
std::string SourceRoot(const std::string& path);

// A child process whose stdout is read until it prints its address. Its stderr goes to
// `log_path` (appended) when given, else to the test's stderr. The destructor sends
// SIGKILL if it still runs. Not thread-safe.
class Daemon {
 public:
  Daemon() = default;
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Starts `argv` and waits up to `timeout` for "listening on HOST:PORT" on its stdout.
  absl::Status Start(const std::vector<std::string>& argv, const std::string& log_path = "",
                     std::chrono::milliseconds timeout = std::chrono::seconds(60));
  const std::string& address() const { return address_; }
  // The "metrics on HOST:PORT" address, when the daemon printed one before listening.
  const std::string& metrics_address() const { return metrics_address_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Sends `sig` and waits for the exit; returns the wait status (as waitpid gives it).
  int Kill(int sig);

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string address_;
  std::string metrics_address_;
};

// For a test that failed: prints the last `tail_bytes` of the log at `path` to stdout
// and copies the whole of it to Bazel's undeclared outputs (outputs.zip beside
// test.log) as `name`.log.
void KeepLog(const std::string& path, const std::string& name, size_t tail_bytes = 3000);

// GET http://`address``path` on loopback; returns the body, or an error.
absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path);

// Runs `argv` to completion with stdout captured (stderr appended to `log_path` when
// given). Returns the wait status; `*out` gets stdout.
int RunCommand(const std::vector<std::string>& argv, std::string* out,
               const std::string& log_path = "");

// Starts `argv` without waiting (stdout and stderr to `log_path`); returns the pid.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path);

// Waits for `pid`; returns the wait status.
int Wait(pid_t pid);

}  // namespace ps::testing

#endif  // PS_TESTS_UTIL_SUBPROCESS_H_
