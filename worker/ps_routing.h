// Routing of pulls and pushes to shards, shared by every PsClient implementation so
// that they all send the shards the same slices in the same parts.
//
// A call's dense ranges are split by DensePartition::Split into per-shard runs and its
// sparse keys grouped by GroupKeysByShard (common/partition.h, the placement the shards
// use). Each shard's share is then cut into parts of at most `chunk_bytes` (whole
// slices, dense slices split by elements, sparse slices by keys; slice limits of
// proto/shard.proto respected). The plan only points into the caller's refs: gathering
// gradients and scattering pulled values are single copies between the caller's
// buffers and packed bytes.
//
// Deterministic: equal arguments give equal plans, so a pushed (rank, clock) always
// has the same parts (the shards deduplicate by part number).
#ifndef PS_WORKER_PS_ROUTING_H_
#define PS_WORKER_PS_ROUTING_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/packing.h"
#include "common/partition.h"
#include "common/sync.h"
#include "proto/job.pb.h"
#include "worker/ps_client.h"

namespace ps {

// Limits of proto/shard.proto.
inline constexpr uint64_t kMaxDenseSliceElements = uint64_t{1} << 28;
inline constexpr uint64_t kMaxSparseSliceKeys = uint64_t{1} << 22;
inline constexpr uint32_t kMaxPushParts = 65536;

// Default size of one part: a few MiB, where a gRPC message moves fastest.
inline constexpr uint64_t kDefaultChunkBytes = uint64_t{4} << 20;

// Placement of one table.
struct TableRoute {
  TableSpec spec;
  std::optional<DensePartition> dense;  // Set for dense tables.
};

// Placement of a job's tables over `num_shards` shards. Immutable once built; shared
// by concurrent calls through shared_ptr<const JobRoute>.
class JobRoute {
 public:
  // INVALID_ARGUMENT naming "tables[i]..." for a spec the shards would refuse, or a
  // repeated name.
  // `mode` is the job's consistency model, when the caller knows it (ASYNC, the
  // default, promises the least); `bf16_gradients` whether its pushes go as bfloat16
  // (ShardJobConfig.bf16_gradients).
  static absl::StatusOr<std::shared_ptr<const JobRoute>> Create(
      std::string job_id, uint32_t num_shards, const std::vector<TableSpec>& tables,
      Consistency mode = ASYNC, bool bf16_gradients = false);

  const std::string& job_id() const { return job_id_; }
  uint32_t num_shards() const { return num_shards_; }
  Consistency mode() const { return mode_; }
  // How pushes pack the job's gradients.
  ValueEncoding gradient_encoding() const {
    return bf16_gradients_ ? ValueEncoding::kBf16 : ValueEncoding::kFloat32;
  }
  // nullptr when the job has no such table.
  const TableRoute* Find(absl::string_view table) const;
  std::vector<std::string> TableNames() const;

 private:
  JobRoute(std::string job_id, uint32_t num_shards, Consistency mode, bool bf16_gradients)
      : job_id_(std::move(job_id)),
        num_shards_(num_shards),
        mode_(mode),
        bf16_gradients_(bf16_gradients) {}

  const std::string job_id_;
  const uint32_t num_shards_;
  const Consistency mode_;
  const bool bf16_gradients_;
  absl::flat_hash_map<std::string, TableRoute> tables_;
};

// A thread-safe map of job id -> route, as every client keeps.
class RouteCache {
 public:
  std::shared_ptr<const JobRoute> Find(const std::string& job_id) const;
  void Put(std::shared_ptr<const JobRoute> route);
  void Erase(const std::string& job_id);

 private:
  mutable Mutex mu_;  // common/sync.h: visible to ThreadSanitizer, unlike absl::Mutex.
  absl::flat_hash_map<std::string, std::shared_ptr<const JobRoute>> routes_ ABSL_GUARDED_BY(mu_);
};

// One slice of a part: a dense sub-range of one DenseRef, or some keys of one SparseRef.
struct PlanSlice {
  bool sparse = false;
  uint32_t ref = 0;     // Index into the call's dense or sparse refs.
  uint64_t begin = 0;   // Dense: first global element.
  uint64_t count = 0;   // Dense: elements. Sparse: keys.
  // Sparse: `count` indices into the ref's keys (storage owned by the Plan).
  const uint32_t* positions = nullptr;
};

// One request to one shard.
struct PlanPart {
  std::vector<PlanSlice> slices;
  uint64_t floats = 0;  // Values the part carries (pull: returns).
};

// The parts of one call, per shard. Points into the refs it was built from: use it only
// while they are alive.
class Plan {
 public:
  enum class Kind {
    // Every shard gets at least one part, an empty one (no slices) when it holds none
    // of the data: a SYNC shard counts a rank's clock only when its parts arrive.
    kPush,
    // Every shard gets at least one part as well: a pull of clock c waits until every
    // shard applied c - 1 (SYNC), including shards it reads nothing from, so that the
    // push of clock c that follows never reaches a shard still behind.
    kPull,
    // Only shards holding some of the data get parts (no-wait reads).
    kRead,
  };

  // Validates the refs against `route` and plans them. Errors name the argument:
  // NOT_FOUND "dense[i].table: ..." for an unknown table, OUT_OF_RANGE
  // "dense[i].begin: ..." for a range leaving the table, INVALID_ARGUMENT for a wrong
  // kind, dim or null buffer. `chunk_bytes` counts 4 bytes per value and 8 per key; it
  // is raised when a shard would get more than kMaxPushParts parts.
  static absl::StatusOr<Plan> Build(const JobRoute& route, absl::Span<const DenseRef> dense,
                                    absl::Span<const SparseRef> sparse, uint64_t chunk_bytes,
                                    Kind kind);

  // parts()[s] are the requests for shard s, in part-number order.
  const std::vector<std::vector<PlanPart>>& parts() const { return parts_; }
  size_t num_requests() const;

 private:
  Plan() = default;

  std::vector<std::vector<PlanPart>> parts_;
  // [sparse ref][shard]: positions of the ref's keys that shard holds (PlanSlice points
  // into these; moving the Plan keeps the inner buffers in place).
  std::vector<std::vector<std::vector<uint32_t>>> positions_;
};

// Table name of a slice.
inline const std::string& SliceTable(const PlanSlice& s, absl::Span<const DenseRef> dense,
                                     absl::Span<const SparseRef> sparse) {
  return s.sparse ? sparse[s.ref].table : dense[s.ref].table;
}

// Appends the packed uint64 keys of sparse slice `s` to `out`.
void AppendSliceKeys(const PlanSlice& s, absl::Span<const SparseRef> sparse, std::string* out);

// Appends the part's gradients, packed in slice order as `encoding` says (float32 or
// bfloat16), to `out`: one pass over the caller's buffers (reserved once, then
// appended). With `lent`, float32 dense slices with a `lendable` are lent there
// instead, each with its offset in `out` (the message is `out` with them inserted).
void GatherValues(const PlanPart& part, absl::Span<const DenseRef> dense,
                  absl::Span<const SparseRef> sparse, std::string* out,
                  ValueEncoding encoding = ValueEncoding::kFloat32,
                  std::vector<LentBytes>* lent = nullptr);

// Copies the pulled values of `part` from `bytes` into the caller's buffers (one copy).
// INTERNAL when `bytes` does not hold exactly part.floats values (nothing is copied).
// Different parts of one plan write disjoint memory: they may scatter concurrently.
absl::Status ScatterValues(const PlanPart& part, absl::string_view bytes,
                           absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse);

// As ScatterValues, from `size` bytes that `copy(offset, n, dst)` copies out of
// wherever they lie (e.g. the slices of a received message, common/wire.h). The
// calls come in order of offset, each starting where the previous one ended.
template <typename CopyFn>
absl::Status ScatterValuesFrom(const PlanPart& part, size_t size, const CopyFn& copy,
                               absl::Span<const DenseRef> dense,
                               absl::Span<const SparseRef> sparse) {
  constexpr size_t kFloat = sizeof(float);
  if (size != part.floats * kFloat) {
    return absl::InternalError(absl::StrCat("values: ", size, " bytes, expected ",
                                            part.floats * kFloat, " for ", part.floats,
                                            " float32 values"));
  }
  size_t offset = 0;
  for (const PlanSlice& s : part.slices) {
    if (!s.sparse) {
      const DenseRef& ref = dense[s.ref];
      copy(offset, s.count * kFloat, reinterpret_cast<char*>(ref.data + (s.begin - ref.begin)));
      offset += s.count * kFloat;
      continue;
    }
    const SparseRef& ref = sparse[s.ref];
    const size_t row = size_t{ref.dim} * kFloat;
    // The rows land at random places in the caller's buffer: their lines are fetched
    // for writing a few rows ahead, so those misses overlap.
    constexpr uint64_t kAhead = 8;
    auto dst = [&](uint64_t k) {
      return reinterpret_cast<char*>(ref.data + size_t{s.positions[k]} * ref.dim);
    };
    for (uint64_t k = 0; k < s.count; ++k) {
      if (k + kAhead < s.count) {
        char* ahead = dst(k + kAhead);
        for (size_t b = 0; b < row; b += 64) __builtin_prefetch(ahead + b, 1);
      }
      copy(offset, row, dst(k));
      offset += row;
    }
  }
  return absl::OkStatus();
}

}  // namespace ps

#endif  // PS_WORKER_PS_ROUTING_H_
