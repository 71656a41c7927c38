// A cluster of real processes on 127.0.0.1 for multi-process tests: ps_coordinator,
// ps_server shards and ps_worker processes started directly (no supervisor), and psctl
// run against it. Logs go to "<dir>.<daemon>.log". Not thread-safe.
#ifndef PS_TESTS_UTIL_PROCESS_CLUSTER_H_
#define PS_TESTS_UTIL_PROCESS_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tests/util/subprocess.h"

namespace ps::testing {

class ProcessCluster {
 public:
  // `dir` holds the daemons' data directories (created); `data_root` is the
  // coordinator's and workers' --data_root.
  ProcessCluster(std::string dir, std::string data_root);
  ~ProcessCluster();  // SIGTERM to every process still running.
  ProcessCluster(const ProcessCluster&) = delete;
  ProcessCluster& operator=(const ProcessCluster&) = delete;

  // The coordinator on a free port, `shards` shards registered with it, and `workers`
  // workers (CPU) started; returns once the daemons listen (workers register on
  // their own).
  absl::Status Start(int shards, int workers);
  // (Re)starts the coordinator on `port` (0: a free one) with the same data directory.
  absl::Status StartCoordinator(int port);

  Daemon& coordinator() { return *coordinator_; }
  // Runs psctl against the coordinator; returns its exit code (-1 if it did not exit)
  // and its stdout in `*out`.
  int Psctl(std::vector<std::string> args, std::string* out);

 private:
  const std::string dir_;
  const std::string data_root_;
  int num_shards_ = 0;
  std::unique_ptr<Daemon> coordinator_;
  std::vector<std::unique_ptr<Daemon>> shards_;
  std::vector<pid_t> workers_;
};

// The last line of `s` without its trailing newlines (psctl submit prints the job id
// there).
std::string LastLine(const std::string& s);

}  // namespace ps::testing

#endif  // PS_TESTS_UTIL_PROCESS_CLUSTER_H_
