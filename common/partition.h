// Where parameters live: dense tables as contiguous block runs per shard, sparse keys
// through virtual shards. Pure functions of their inputs, shared by shards and
// clients, so both sides agree without talking.
#ifndef PS_COMMON_PARTITION_H_
#define PS_COMMON_PARTITION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ps {

// Elements per dense block: the unit of placement (256 KiB of float32).
inline constexpr uint64_t kDenseBlockElements = 64 * 1024;

// Number of virtual shards sparse keys hash into. Fixed per job, so a later resharding
// moves whole virtual shards between servers.
inline constexpr uint32_t kVirtualShards = 4096;

// A run of elements [begin, begin + count) of a dense table held by `shard`.
struct DenseRange {
  uint32_t shard = 0;
  uint64_t begin = 0;
  uint64_t count = 0;

  friend bool operator==(const DenseRange& a, const DenseRange& b) {
    return a.shard == b.shard && a.begin == b.begin && a.count == b.count;
  }
};

// Placement of one dense table of `size` elements over `num_shards` shards.
//
// The table is cut into blocks of kDenseBlockElements; each shard gets one contiguous
// run of blocks, the runs differing by at most one block. The run order is rotated by
// a hash of the table name so that many small tables spread over all shards instead
// of piling onto shard 0. Thread-compatible value type.
class DensePartition {
 public:
  // INVALID_ARGUMENT when size == 0 or num_shards == 0.
  static absl::StatusOr<DensePartition> Create(absl::string_view table, uint64_t size,
                                               uint32_t num_shards,
                                               uint64_t block_elements = kDenseBlockElements);

  uint64_t size() const { return size_; }
  uint32_t num_shards() const { return num_shards_; }
  uint64_t block_elements() const { return block_; }

  // The elements `shard` holds; count 0 when it holds none.
  DenseRange RangeOf(uint32_t shard) const;

  // Splits [begin, begin + count) into per-shard runs, in ascending element order.
  // OUT_OF_RANGE when the range leaves the table.
  absl::StatusOr<std::vector<DenseRange>> Split(uint64_t begin, uint64_t count) const;

 private:
  DensePartition(uint64_t size, uint32_t num_shards, uint64_t block, uint32_t rotation);

  uint64_t size_;
  uint32_t num_shards_;
  uint64_t block_;
  uint64_t num_blocks_;
  uint32_t rotation_;
  // starts_[i] = first element of the i-th run in table order; runs_[i] its shard.
  std::vector<uint64_t> starts_;
};

// Virtual shard of a sparse key: a stable hash of (table, key) modulo kVirtualShards.
uint32_t VirtualShardOf(absl::string_view table, uint64_t key);

// The default map of virtual shards to servers: v % num_shards.
uint32_t ShardOfVirtual(uint32_t virtual_shard, uint32_t num_shards);

// Shard holding `key` of `table` under the default map.
uint32_t SparseShardOf(absl::string_view table, uint64_t key, uint32_t num_shards);

// Groups `keys` by shard: out[s] lists the positions in `keys` that shard s holds, in
// their original order.
std::vector<std::vector<uint32_t>> GroupKeysByShard(absl::string_view table,
                                                   absl::Span<const uint64_t> keys,
                                                   uint32_t num_shards);

}  // namespace ps

#endif  // PS_COMMON_PARTITION_H_
