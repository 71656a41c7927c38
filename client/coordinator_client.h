// A typed C++ client of the coordinator's client-facing calls (what psctl uses).
#ifndef PS_CLIENT_COORDINATOR_CLIENT_H_
#define PS_CLIENT_COORDINATOR_CLIENT_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/credentials.h"
#include "proto/coordinator.pb.h"
#include "proto/job.pb.h"

namespace ps {

struct CoordinatorClientOptions {
  std::string address = "127.0.0.1:7070";  // host:port of ps_coordinator.
  absl::Duration timeout = absl::Seconds(30);  // Deadline of each unary call.
  // Sent with every call. A coordinator run with --auth_token_file needs
  // {"authorization", "Bearer <token>"} here (common/auth.h BearerValue). Keys must be
  // lowercase.
  std::vector<std::pair<std::string, std::string>> metadata;
  // Of the channel (common/tls.h MakeChannelCredentials); nullptr = plaintext. Also
  // used by ExportJob for its channels to the shards (credentials()).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
};

// The coordinator's client-facing RPCs. Errors are the server's status (for example
// INVALID_ARGUMENT naming the spec field, NOT_FOUND for an unknown job,
// FAILED_PRECONDITION for cancelling a finished job) or UNAVAILABLE /
// DEADLINE_EXCEEDED when the coordinator cannot be reached; the message then names
// the address. Thread-safe: calls may run concurrently.
class CoordinatorClient {
 public:
  // Creates a client over a lazily connected channel (no call is made here).
  // INVALID_ARGUMENT when `options.address` is not host:port.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(
      const CoordinatorClientOptions& options);

  virtual ~CoordinatorClient() = default;

  // The channel credentials the client was made with (nullptr = plaintext), for
  // channels to the cluster's other daemons.
  virtual std::shared_ptr<grpc::ChannelCredentials> credentials() const { return nullptr; }

  // Returns the new job's id.
  virtual absl::StatusOr<std::string> SubmitJob(const JobSpec& spec) = 0;
  virtual absl::StatusOr<JobStatus> GetJob(const std::string& job_id) = 0;
  // Oldest first.
  virtual absl::StatusOr<std::vector<JobStatus>> ListJobs() = 0;
  // Returns the status after cancelling.
  virtual absl::StatusOr<JobStatus> CancelJob(const std::string& job_id) = 0;
  virtual absl::StatusOr<GetClusterResponse> GetCluster() = 0;

  // Streams the job's status, calling `on_update` (on this thread) for each one,
  // until the job reaches a final state; returns that last status. No deadline: it
  // waits as long as the job runs. If the stream breaks before a final state
  // (UNAVAILABLE, e.g. the coordinator restarted) it is re-opened up to
  // `max_reconnects` times, one second apart; then the error is returned.
  virtual absl::StatusOr<JobStatus> WatchJob(
      const std::string& job_id, const std::function<void(const JobStatus&)>& on_update,
      int max_reconnects = 30) = 0;
};

}  // namespace ps

#endif  // PS_CLIENT_COORDINATOR_CLIENT_H_
