// PsClient over gRPC: the worker's data path to the shards.
//
// A call is planned by worker/ps_routing.h (per-shard runs, chunked into parts of at
// most Options::chunk_bytes), and every part is its own RPC, all issued at once with
// the callback API (stub->async()) over several TCP connections per shard; the calling
// thread waits for them (no thread per call) and retries what failed on the transport.
// PushPull puts a pull part and a push part into one PushPull RPC where the job's
// consistency model allows (see there): one round trip instead of two.
//
// Pull, Push and PushPull go out as bytes through a generic stub on the same
// connections (common/wire.h), so a tensor is copied only where a copy is needed.
// Push, client side: 1 copy (caller buffer -> a pooled buffer, one memcpy per dense
// slice or sparse row), which gRPC writes to the socket as it is; then the kernel's
// socket copy. Keys: 1 (caller keys -> request `keys`, gathered). The pooled buffer,
// not the caller's memory, is sent because gRPC may hold a slice after its call ends;
// dense float32 gradients in a caller's LendableFloats (DenseRef::lendable) are sent
// from there, without the copy, and their loans hold the memory as long as gRPC does.
// Pull, client side: the kernel's socket copy, then 1 (the received slices -> caller
// buffers, one memcpy per dense slice or sparse row, on the gRPC thread that completed
// the part, so parts of several shards are copied in parallel); protobuf parses only
// the small fields. The shard's side is in server/shard_service.h. Reused buffers are
// written without page faults (fresh pages cost more than the copy itself on this
// machine kind, DESIGN.md "Performance facts").
//
// Retries: UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED raised by the transport
// (not the shard's memory budget, not a message over the size limit) are retried with
// exponential backoff, the same request again: a retried push part keeps its (rank,
// clock, part) and the shard acknowledges it as a duplicate if it had arrived. Other
// codes fail the call at once, naming the shard: "shard 1 (127.0.0.1:4567): ...".
//
// Thread-safe.
#ifndef PS_WORKER_GRPC_PS_CLIENT_H_
#define PS_WORKER_GRPC_PS_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/wire.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "proto/shard.grpc.pb.h"
#include "worker/ps_client.h"
#include "worker/ps_routing.h"

namespace ps {

class RpcCall;  // Internal: one RPC of a client call.

class GrpcPsClient final : public PsClient {
 public:
  struct Options {
    // Largest share of one shard carried by one request (4 bytes per value, 8 per key).
    uint64_t chunk_bytes = kDefaultChunkBytes;
    // TCP connections per shard; parts are spread over them round-robin.
    int channels_per_shard = 2;
    // Deadline of each attempt of each RPC. SYNC pulls wait for the slowest worker, so
    // it is generous.
    absl::Duration rpc_timeout = absl::Seconds(120);
    // Attempts per RPC (1 = no retries), and the backoff between them: initial_backoff,
    // doubling, at most max_backoff.
    int max_attempts = 8;
    absl::Duration initial_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    // Largest gRPC message sent or received.
    int max_message_bytes = 256 << 20;
    // Of every channel (common/tls.h MakeChannelCredentials); nullptr = plaintext.
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    // Gradient buffers of pushes kept for reuse (each of chunk_bytes at most): reused
    // memory is much faster to write than fresh pages.
    int pooled_messages = 32;
    // How long a shard that answered PushPull UNIMPLEMENTED (a build before it) gets
    // separate pushes and pulls before it is asked again: it may have been upgraded.
    absl::Duration push_pull_retry = absl::Minutes(1);
  };

  // A client of the shards at `shard_addresses` ("host:port", shard i at index i).
  // Connects lazily: an unreachable shard shows as UNAVAILABLE (after the retries) on the
  // first call that needs it. INVALID_ARGUMENT for no or empty addresses or bad options.
  static absl::StatusOr<std::unique_ptr<GrpcPsClient>> Connect(
      std::vector<std::string> shard_addresses, Options options);
  static absl::StatusOr<std::unique_ptr<GrpcPsClient>> Connect(
      std::vector<std::string> shard_addresses) {
    return Connect(std::move(shard_addresses), Options());
  }

  ~GrpcPsClient() override;
  GrpcPsClient(const GrpcPsClient&) = delete;
  GrpcPsClient& operator=(const GrpcPsClient&) = delete;

  const Options& options() const { return options_; }
  const std::string& address(uint32_t shard) const { return shards_[shard]->address; }

  uint32_t num_shards() const override { return static_cast<uint32_t>(shards_.size()); }
  absl::StatusOr<uint64_t> SetupJob(const ShardJobConfig& config,
                                    const std::vector<TableSpec>& tables) override;
  absl::Status AttachJob(const std::string& job_id) override;
  absl::Status Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override;
  absl::Status Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                    absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) override;
  // A pull part rides on a push part as one PushPull RPC (the shard applies the push,
  // then answers with the pull of clock + 1): in SYNC jobs any pairing, as many as the
  // two calls have parts per shard (the shards hold each pull until the clock is
  // complete); else the push part that writes exactly the pull part's ranges. Other
  // pull parts go alone: in SYNC at once, else once every push part of their shard is
  // acknowledged. When a shard answers PushPull UNIMPLEMENTED (built before it), the
  // call is repeated with that shard's pushes and pulls separate, and so are later
  // calls to it for Options::push_pull_retry.
  absl::Status PushPull(const std::string& job_id, uint32_t rank, uint64_t clock,
                        absl::Span<const DenseRef> push_dense,
                        absl::Span<const SparseRef> push_sparse,
                        absl::Span<const DenseRef> pull_dense,
                        absl::Span<const SparseRef> pull_sparse) override;
  absl::StatusOr<uint64_t> Read(const std::string& job_id, absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse) override;
  absl::StatusOr<std::vector<ShardJobStats>> GetStats(const std::string& job_id,
                                                      bool with_digest) override;
  absl::StatusOr<std::vector<ShardCheckpoint>> Checkpoint(const std::string& job_id) override;
  absl::Status Restore(const std::string& job_id, uint64_t clock) override;
  absl::StatusOr<std::vector<std::vector<uint64_t>>> ListCheckpoints(
      const std::string& job_id) override;
  absl::Status DropJob(const std::string& job_id, bool delete_checkpoints) override;

  // One TCP connection to a shard: the typed stub for the control calls, and the
  // generic one for Pull and Push, whose messages the client builds and reads as bytes.
  struct Channel {
    std::unique_ptr<ShardService::Stub> stub;
    std::unique_ptr<grpc::GenericStub> generic;
  };

  // The stub of `shard` that the next request uses (round-robin over its channels).
  // For the client's own calls; public for tests that send raw requests.
  ShardService::Stub* NextStubForTest(uint32_t shard) { return NextChannel(shard).stub.get(); }

 private:
  struct Shard {
    std::string address;
    std::vector<Channel> channels;
    std::atomic<uint32_t> next{0};
    // When the shard last answered PushPull UNIMPLEMENTED (Unix ms; 0: it serves it).
    std::atomic<int64_t> push_pull_refused_ms{0};
  };
  class Batch;
  friend class Batch;

  GrpcPsClient(std::vector<std::unique_ptr<Shard>> shards, Options options);

  const Channel& NextChannel(uint32_t shard);
  // Whether calls to `shard` may use PushPull now (see push_pull_retry).
  bool MayPushPull(uint32_t shard) const;
  // The job's route, attaching to it first when it is not known yet.
  absl::StatusOr<std::shared_ptr<const JobRoute>> RouteOf(const std::string& job_id);
  // The plan of a call; `route`, when given, gets the route it was made with.
  absl::StatusOr<Plan> PlanFor(const std::string& job_id, absl::Span<const DenseRef> dense,
                               absl::Span<const SparseRef> sparse, Plan::Kind kind,
                               std::shared_ptr<const JobRoute>* route = nullptr);
  struct PullHalves;
  // Adds the pull (no_wait: read) RPCs of `plan` to `batch`, for Run to start, but for
  // the parts `merged` (optional) puts on pushes; `clocks` gets each part's reported
  // clock once the batch ran, `by_shard` the calls.
  absl::Status AddPulls(Batch* batch, const Plan& plan, const std::string& job_id,
                        uint32_t rank, uint64_t clock, bool no_wait,
                        absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse,
                        std::vector<uint64_t>* clocks,
                        std::vector<std::vector<RpcCall*>>* by_shard,
                        const PullHalves* merged = nullptr);
  // Adds the push RPCs of `plan`, gradients packed as `encoding` (started when
  // `start`); the parts that `pulls` (optional) gives a pull part go as PushPull.
  void AddPushes(Batch* batch, const Plan& plan, const std::string& job_id, uint32_t rank,
                 uint64_t clock, absl::Span<const DenseRef> dense,
                 absl::Span<const SparseRef> sparse, ValueEncoding encoding, bool start,
                 std::vector<std::vector<RpcCall*>>* by_shard,
                 const PullHalves* pulls = nullptr);
  // PushPull, its pull parts riding on push parts (PushPull RPCs) where the shard
  // serves them (and is not in `separate`) and the consistency model allows.
  // `refused`, when given, gets the shards that answered a PushPull UNIMPLEMENTED.
  absl::Status PushPullOnce(const std::string& job_id, uint32_t rank, uint64_t clock,
                            absl::Span<const DenseRef> push_dense,
                            absl::Span<const SparseRef> push_sparse,
                            absl::Span<const DenseRef> pull_dense,
                            absl::Span<const SparseRef> pull_sparse,
                            std::vector<uint32_t>* refused,
                            absl::Span<const uint32_t> separate = {});
  // A pull (no_wait: a read) of a planned call; `min_clock` gets the lowest clock the
  // shards reported.
  absl::Status PullPlanned(const std::string& job_id, uint32_t rank, uint64_t clock,
                           bool no_wait, absl::Span<const DenseRef> dense,
                           absl::Span<const SparseRef> sparse, uint64_t* min_clock);

  // Constant after construction.
  const Options options_;
  const std::vector<std::unique_ptr<Shard>> shards_;

  // Push messages (fields and gradient bytes) gathered for sending, reused.
  const std::shared_ptr<wire::BufferPool> buffers_;
  RouteCache routes_;
};

}  // namespace ps

#endif  // PS_WORKER_GRPC_PS_CLIENT_H_
