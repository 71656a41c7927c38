// PsClient over in-process shards: calls ShardCore/ShardJob directly, no sockets.
//
// For unit tests of the trainer and tools. It routes and chunks exactly like
// GrpcPsClient (worker/ps_routing.h), so the shards see the same slices and parts, and
// it converts specs with the shard's own conversion (server/convert.h), so configs are
// validated and stored the same way. A pull that must wait registers a wake-up with the
// job (ShardJob::TryPull) and blocks the calling thread on it, up to `rpc_timeout`, then
// DEADLINE_EXCEEDED. Errors name the shard as "shard 1 (local): ...".
//
// Thread-safe.
#ifndef PS_WORKER_LOCAL_PS_CLIENT_H_
#define PS_WORKER_LOCAL_PS_CLIENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/shard_core.h"
#include "worker/ps_client.h"
#include "worker/ps_routing.h"

namespace ps {

class LocalPsClient final : public PsClient {
 public:
  struct Options {
    uint64_t chunk_bytes = kDefaultChunkBytes;
    absl::Duration rpc_timeout = absl::Seconds(120);  // Longest wait of one pull.
  };

  // `shards[i]` is shard i; not owned, and must outlive the client. INVALID_ARGUMENT for
  // no shards, a null one, or one whose shard_id() is not its index.
  static absl::StatusOr<std::unique_ptr<LocalPsClient>> Create(std::vector<ShardCore*> shards,
                                                               Options options);
  static absl::StatusOr<std::unique_ptr<LocalPsClient>> Create(std::vector<ShardCore*> shards) {
    return Create(std::move(shards), Options());
  }

  LocalPsClient(const LocalPsClient&) = delete;
  LocalPsClient& operator=(const LocalPsClient&) = delete;

  uint32_t num_shards() const override { return static_cast<uint32_t>(shards_.size()); }
  absl::StatusOr<uint64_t> SetupJob(const ShardJobConfig& config,
                                    const std::vector<TableSpec>& tables) override;
  absl::Status AttachJob(const std::string& job_id) override;
  absl::Status Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override;
  absl::Status Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override;
  absl::StatusOr<uint64_t> Read(const std::string& job_id, absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse) override;
  absl::StatusOr<std::vector<ShardJobStats>> GetStats(const std::string& job_id,
                                                      bool with_digest) override;
  absl::StatusOr<std::vector<ShardCheckpoint>> Checkpoint(const std::string& job_id) override;
  absl::Status Restore(const std::string& job_id, uint64_t clock) override;
  absl::StatusOr<std::vector<std::vector<uint64_t>>> ListCheckpoints(
      const std::string& job_id) override;
  absl::Status DropJob(const std::string& job_id, bool delete_checkpoints) override;

 private:
  LocalPsClient(std::vector<ShardCore*> shards, Options options);

  absl::StatusOr<std::shared_ptr<const JobRoute>> RouteOf(const std::string& job_id);
  absl::StatusOr<Plan> PlanCall(const std::string& job_id, absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse, Plan::Kind kind);
  absl::Status PullPlanned(const std::string& job_id, uint32_t rank, uint64_t clock,
                           bool no_wait, absl::Span<const DenseRef> dense,
                           absl::Span<const SparseRef> sparse, uint64_t* min_clock);
  // The shard's job; NOT_FOUND naming the shard.
  absl::StatusOr<std::shared_ptr<ShardJob>> JobOn(uint32_t shard, const std::string& job_id);

  // Constant after construction.
  const std::vector<ShardCore*> shards_;  // Not owned.
  const Options options_;

  RouteCache routes_;
};

}  // namespace ps

#endif  // PS_WORKER_LOCAL_PS_CLIENT_H_
