// A cluster started by deploy/local_cluster.sh (coordinator, shards and workers, each
// under the script's supervisor, which restarts what dies), for the chaos suites: kill
// its processes with SIGKILL, follow a job through the C++ coordinator client, read the
// shards' counters.
#ifndef PS_TESTS_CHAOS_LOCAL_CLUSTER_H_
#define PS_TESTS_CHAOS_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/coordinator_client.h"
#include "proto/coordinator.pb.h"
#include "proto/job.pb.h"
#include "proto/shard.pb.h"

namespace ps::testing {

struct LocalClusterOptions {
  std::string dir;        // RUNDIR of the script; created.
  std::string data_root;  // --data_root of the coordinator and the workers.
  int shards = 2;
  int workers = 2;
  int max_backoff_s = 1;  // Supervisor restart backoff cap.
  std::string coordinator_flags = "--heartbeat_interval_ms=200 --heartbeat_timeout_ms=1500";
  std::string shard_flags;
  std::string worker_flags = "--rpc_timeout_s=20";
};

class LocalCluster {
 public:
  explicit LocalCluster(LocalClusterOptions options);
  ~LocalCluster();  // Stops the cluster.
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // `local_cluster.sh start`; binaries come from the test's runfiles.
  absl::Status Start();
  // `local_cluster.sh stop`.
  void Stop();

  const std::string& coordinator() const { return coordinator_; }
  CoordinatorClient* client() { return client_.get(); }
  const LocalClusterOptions& options() const { return options_; }

  // The running process of daemon `name` ("coordinator", "shard0", "worker1"), as
  // its supervisor recorded it; -1 when unknown.
  pid_t Pid(const std::string& name) const;
  // SIGKILLs daemon `name`; false when it was not running (e.g. being restarted).
  bool Kill(const std::string& name);
  // The address shard `i` listens on (its log's last "listening on" line).
  std::string ShardAddress(int i) const;
  // Every shard's stats of `job_id` (GetStats with the digest), by shard id.
  absl::StatusOr<std::vector<JobStats>> ShardStats(const std::string& job_id) const;

  // The job's status, retrying while the coordinator is unreachable (it may be
  // restarting), for up to `timeout`.
  absl::StatusOr<JobStatus> GetJob(const std::string& job_id,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Polls the job until `done(status)` or `timeout`; returns the last status.
  // A final state that does not satisfy `done` ends the wait with FAILED_PRECONDITION.
  absl::StatusOr<JobStatus> WaitFor(const std::string& job_id,
                                    const std::function<bool(const JobStatus&)>& done,
                                    std::chrono::milliseconds timeout,
                                    std::chrono::milliseconds poll = std::chrono::milliseconds(20));
  absl::StatusOr<std::string> Submit(const JobSpec& spec);

  std::string Log(const std::string& name) const;  // The daemon's log file.

 private:
  const LocalClusterOptions options_;
  std::string coordinator_;
  std::unique_ptr<CoordinatorClient> client_;
  bool started_ = false;
};

// Reads a whole file; empty when it cannot be read.
std::string ReadFile(const std::string& path);

}  // namespace ps::testing

#endif  // PS_TESTS_CHAOS_LOCAL_CLUSTER_H_
