#include "common/partition.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace ps {

absl::StatusOr<DensePartition> DensePartition::Create(absl::string_view table, uint64_t size,
                                                      uint32_t num_shards,
                                                      uint64_t block_elements) {
  if (size == 0) return absl::InvalidArgumentError("dense table size must be > 0");
  if (num_shards == 0) return absl::InvalidArgumentError("num_shards must be > 0");
  if (block_elements == 0) return absl::InvalidArgumentError("block_elements must be > 0");
  const uint32_t rotation = static_cast<uint32_t>(Fnv1a64(table) % num_shards);
  return DensePartition(size, num_shards, block_elements, rotation);
}

DensePartition::DensePartition(uint64_t size, uint32_t num_shards, uint64_t block,
                               uint32_t rotation)
    : size_(size),
      num_shards_(num_shards),
      block_(block),
      num_blocks_((size + block - 1) / block),
      rotation_(rotation) {
  // Run i (in table order) covers blocks [i * nb / S, (i + 1) * nb / S).
  starts_.reserve(num_shards + 1);
  for (uint32_t i = 0; i <= num_shards; ++i) {
    const uint64_t first_block = num_blocks_ * i / num_shards;
    starts_.push_back(std::min(size_, first_block * block_));
  }
}

DenseRange DensePartition::RangeOf(uint32_t shard) const {
  if (shard >= num_shards_) return DenseRange{shard, 0, 0};
  // Shard s holds run (s - rotation) mod S.
  const uint32_t run = (shard + num_shards_ - rotation_) % num_shards_;
  return DenseRange{shard, starts_[run], starts_[run + 1] - starts_[run]};
}

absl::StatusOr<std::vector<DenseRange>> DensePartition::Split(uint64_t begin,
                                                             uint64_t count) const {
  if (begin > size_ || count > size_ - begin) {
    return absl::OutOfRangeError(absl::StrCat("range [", begin, ", ", begin + count,
                                              ") is outside the table of ", size_,
                                              " elements"));
  }
  std::vector<DenseRange> out;
  const uint64_t end = begin + count;
  // First run whose end is past `begin`.
  auto it = std::upper_bound(starts_.begin(), starts_.end(), begin);
  uint32_t run = static_cast<uint32_t>((it - starts_.begin()) - 1);
  for (uint64_t pos = begin; pos < end; ++run) {
    const uint64_t run_end = starts_[run + 1];
    if (run_end <= pos) continue;  // Empty run (more shards than blocks).
    const uint64_t piece_end = std::min(end, run_end);
    out.push_back(DenseRange{(run + rotation_) % num_shards_, pos, piece_end - pos});
    pos = piece_end;
  }
  return out;
}

uint32_t VirtualShardOf(absl::string_view table, uint64_t key) {
  return static_cast<uint32_t>(HashCombine(Fnv1a64(table), Mix64(key)) % kVirtualShards);
}

uint32_t ShardOfVirtual(uint32_t virtual_shard, uint32_t num_shards) {
  return num_shards == 0 ? 0 : virtual_shard % num_shards;
}

uint32_t SparseShardOf(absl::string_view table, uint64_t key, uint32_t num_shards) {
  return ShardOfVirtual(VirtualShardOf(table, key), num_shards);
}

std::vector<std::vector<uint32_t>> GroupKeysByShard(absl::string_view table,
                                                   absl::Span<const uint64_t> keys,
                                                   uint32_t num_shards) {
  std::vector<std::vector<uint32_t>> out(num_shards);
  if (num_shards == 0) return out;
  // Two passes: each key's shard (a table lookup, not a division), then the positions
  // written into vectors of their final size. Against push_back after a division per
  // key (a branch on a random shard mispredicts half the time): 0.78 -> 0.55 ms per
  // 100k keys over 2 shards, with tcmalloc.
  std::vector<uint32_t> shard_of_virtual(kVirtualShards);
  for (uint32_t v = 0; v < kVirtualShards; ++v) {
    shard_of_virtual[v] = ShardOfVirtual(v, num_shards);
  }
  const uint64_t table_hash = Fnv1a64(table);
  std::vector<uint32_t> shard(keys.size());
  std::vector<size_t> count(num_shards, 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t v =
        static_cast<uint32_t>(HashCombine(table_hash, Mix64(keys[i])) % kVirtualShards);
    shard[i] = shard_of_virtual[v];
    ++count[shard[i]];
  }
  std::vector<uint32_t*> next(num_shards);
  for (uint32_t s = 0; s < num_shards; ++s) {
    out[s].resize(count[s]);
    next[s] = out[s].data();
  }
  for (size_t i = 0; i < keys.size(); ++i) *next[shard[i]]++ = static_cast<uint32_t>(i);
  return out;
}

}  // namespace ps
