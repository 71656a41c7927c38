// The worker's view of the parameter-server shards: set up a job, pull parameters,
// push gradients, and a few control calls for tests and tools.
//
// Two implementations: GrpcPsClient (worker/grpc_ps_client.h) talks to real shards,
// LocalPsClient (worker/local_ps_client.h) calls in-process ShardCore objects, so the
// trainer's tests need no sockets. Both route with common/partition.h through
// worker/ps_routing.h and therefore send the shards exactly the same slices and parts.
//
// This header has no gRPC types; the job and table specs are the wire contract's
// messages (proto/shard.proto, proto/job.proto), which every side already speaks.
#ifndef PS_WORKER_PS_CLIENT_H_
#define PS_WORKER_PS_CLIENT_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/lendable.h"
#include "proto/shard.pb.h"

namespace ps {

// A range of a dense table and the caller's buffer for it.
//   Pull: `data` receives elements [begin, begin + count) of `table`.
//   Push: `data` holds their gradients (only read).
// `data` is not owned and must hold `count` floats until the call returns. A count of
// 0 is allowed and does nothing.
//
// Push, optional: `lendable`, the memory `data` lies in (common/lendable.h). A client
// that sends over a network then sends the gradients from there, lent to gRPC, instead
// of copying them into a message: the loans keep the memory allocated, and are usually
// back when the push returns, but gRPC may hold one longer (a write stuck on a stopped
// shard). Write the buffer again only when !lendable->lent(); keep two buffers, or wait.
// float32 gradients only (a bfloat16 job converts, which is a copy anyway).
struct DenseRef {
  DenseRef() = default;
  DenseRef(std::string table, uint64_t begin, uint64_t count, float* data,
           std::shared_ptr<LendableFloats> lendable = nullptr)
      : table(std::move(table)),
        begin(begin),
        count(count),
        data(data),
        lendable(std::move(lendable)) {}

  std::string table;
  uint64_t begin = 0;
  uint64_t count = 0;
  float* data = nullptr;  // Not owned.
  std::shared_ptr<LendableFloats> lendable;
};

// Rows of a sparse table and the caller's buffer for them, row i (dim floats at
// data + i * dim) for keys[i], in key order. Keys may repeat: a pull fills every
// occurrence; in a push the gradients of a repeated key add up on the shard.
//   Pull: `data` receives the rows; missing rows are created by the table's initialiser.
//   Push: `data` holds the rows' gradients (only read).
// `keys` and `data` are not owned and must stay valid until the call returns. `dim`
// must equal the table's row width.
struct SparseRef {
  std::string table;
  const uint64_t* keys = nullptr;  // Not owned; num_keys of them.
  size_t num_keys = 0;
  uint32_t dim = 0;
  float* data = nullptr;  // Not owned; num_keys * dim floats.
};

// Counters of one job on one shard (proto JobStats without the proto).
struct ShardJobStats {
  uint32_t shard = 0;
  uint64_t clock = 0;                  // Clocks fully applied.
  std::vector<uint64_t> worker_clocks; // Per rank: clocks of that rank applied.
  uint64_t pushes_applied = 0;         // Parts applied (or buffered, then applied).
  uint64_t pushes_duplicate = 0;       // Parts acknowledged as retries.
  uint64_t dense_elements = 0;
  uint64_t sparse_rows = 0;
  uint64_t memory_bytes = 0;
  // Pushes to dense blocks still being sent by a pull, which copied them first.
  uint64_t dense_copies_on_write = 0;
  uint64_t last_checkpoint_clock = 0;
  uint64_t state_digest = 0;  // Set when asked for: equal digests, byte-equal state.
};

// One shard's answer to a checkpoint request.
struct ShardCheckpoint {
  uint32_t shard = 0;
  uint64_t clock = 0;
  uint64_t bytes = 0;
  uint64_t pause_us = 0;
  uint64_t write_us = 0;
};

// Client of one cluster of shards (fixed addresses or objects, shard i at index i).
//
// Thread-safe: any number of threads may call any method concurrently (the trainer's
// ranks in tests, a pull and a push of different clocks). Pull and Push are the hot
// path; the others are control calls.
//
// Errors: the shards' codes (proto/shard.proto) pass through unchanged, prefixed with
// the shard, e.g. "shard 1 (127.0.0.1:4567): slices[0].begin: ...". Errors the client
// finds before sending (unknown table, range outside the table, wrong dim) name the
// argument, e.g. "dense[0].table: ...". When one shard fails a call, the others' parts
// are cancelled; the call returns only after every part has finished, so the caller's
// buffers are never written after it returns (but a failed pull may have filled some
// of them).
class PsClient {
 public:
  virtual ~PsClient() = default;

  // Number of shards this client talks to.
  virtual uint32_t num_shards() const = 0;

  // Sets up a job on every shard: CreateJob(config), then CreateTable for each table.
  // Idempotent for equal specs, so every worker may call it; a different config or
  // table spec under the same name is FAILED_PRECONDITION. config.num_shards of 0 is
  // taken to be num_shards(); another value than num_shards() is INVALID_ARGUMENT.
  // Remembers the tables for routing. Returns the highest clock the shards report
  // (non-zero when the job was restored from a checkpoint).
  virtual absl::StatusOr<uint64_t> SetupJob(const ShardJobConfig& config,
                                            const std::vector<TableSpec>& tables) = 0;

  // Learns the tables of an existing job from the shards (ListTables), for routing
  // (exports, resuming a job set up by someone else). Pull, Push and Read call it
  // themselves for a job they do not know yet. NOT_FOUND when a shard lacks the job;
  // FAILED_PRECONDITION when the shards disagree or were placed over another count.
  virtual absl::Status AttachJob(const std::string& job_id) = 0;

  // Reads the ranges and rows into the callers' buffers for worker `rank` about to
  // compute clock `clock`. Waits as the job's consistency model says (SYNC: until
  // clock - 1 is applied on every shard) up to the client's per-call timeout, then
  // DEADLINE_EXCEEDED.
  virtual absl::Status Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                            absl::Span<const DenseRef> dense,
                            absl::Span<const SparseRef> sparse) = 0;

  // Sends the gradients of (rank, clock). Every shard gets at least one part (an empty
  // one when it holds none of the data), because a SYNC shard counts a rank's clock only
  // when all its parts arrived. Parts are numbered deterministically from the arguments,
  // so pushing the same (rank, clock) again is acknowledged by the shards as a duplicate
  // and not applied twice. Returns once every shard has applied or buffered its parts.
  virtual absl::Status Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                            absl::Span<const DenseRef> dense,
                            absl::Span<const SparseRef> sparse) = 0;

  // Push(clock) of the gradients, then Pull(clock + 1) of the values, as one call that
  // may overlap the two (GrpcPsClient sends later gradients while earlier values come
  // back, and asks for a part's values in the RPC that pushes it: PushPull). A pull's
  // ranges are read after this worker's own push to them was applied.
  // Both halves are idempotent: after an error the whole call may be repeated.
  virtual absl::Status PushPull(const std::string& job_id, uint32_t rank, uint64_t clock,
                                absl::Span<const DenseRef> push_dense,
                                absl::Span<const SparseRef> push_sparse,
                                absl::Span<const DenseRef> pull_dense,
                                absl::Span<const SparseRef> pull_sparse) {
    if (absl::Status s = Push(job_id, rank, clock, push_dense, push_sparse); !s.ok()) return s;
    return Pull(job_id, rank, clock + 1, pull_dense, pull_sparse);
  }

  // Reads what is applied now, without waiting and without creating sparse rows (missing
  // rows read as their initial values): exports and inspection. Returns the lowest clock
  // the shards had applied when they read.
  virtual absl::StatusOr<uint64_t> Read(const std::string& job_id,
                                        absl::Span<const DenseRef> dense,
                                        absl::Span<const SparseRef> sparse) = 0;

  // Counters of the job on every shard, index = shard; with the state digest if asked.
  virtual absl::StatusOr<std::vector<ShardJobStats>> GetStats(const std::string& job_id,
                                                              bool with_digest) = 0;

  // Checkpoints the job on every shard now; returns when every write is durable.
  virtual absl::StatusOr<std::vector<ShardCheckpoint>> Checkpoint(const std::string& job_id) = 0;

  // Rolls the job back to its checkpoint at `clock` on every shard (clock 0 without a
  // checkpoint: the initial state). NOT_FOUND naming the shard that lacks it.
  virtual absl::Status Restore(const std::string& job_id, uint64_t clock) = 0;

  // The checkpoint clocks of the job on every shard (index = shard), each ascending.
  virtual absl::StatusOr<std::vector<std::vector<uint64_t>>> ListCheckpoints(
      const std::string& job_id) = 0;

  // Drops the job on every shard (and its checkpoints when asked) and forgets its
  // routing. NOT_FOUND naming the shard when a shard lacks it.
  virtual absl::Status DropJob(const std::string& job_id, bool delete_checkpoints) = 0;
};

// The clocks at which every shard has a checkpoint (a consistent cut in SYNC/BOUNDED
// jobs), ascending. `per_shard` as ListCheckpoints returns it.
inline std::vector<uint64_t> CompleteCheckpoints(
    const std::vector<std::vector<uint64_t>>& per_shard) {
  if (per_shard.empty()) return {};
  std::vector<uint64_t> out = per_shard[0];
  for (size_t s = 1; s < per_shard.size(); ++s) {
    std::vector<uint64_t> both;
    std::set_intersection(out.begin(), out.end(), per_shard[s].begin(), per_shard[s].end(),
                          std::back_inserter(both));
    out = std::move(both);
  }
  return out;
}

}  // namespace ps

#endif  // PS_WORKER_PS_CLIENT_H_
