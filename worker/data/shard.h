// Deterministic data sharding and per-epoch shuffling for workers. Two ways to deal
// the n training examples to W workers with per-worker batch B (proto/job.proto,
// DataSpec.Sharding):
//
// kStrided (the default). Worker rank r owns the examples i with i % W == r (its
// shard). Each epoch it visits them in a permutation drawn by Fisher-Yates from a
// SplitMix64 stream seeded by (job seed, epoch, rank), so every run, machine and
// standard library gives the same order (std::shuffle and
// std::uniform_int_distribution are not portable). Every worker runs the same number
// of steps per epoch, StepsPerEpoch() = floor(smallest shard / B), where the smallest
// shard has floor(n / W) examples, so SYNC workers stay in lock-step (each clock has a
// push from every rank). Step s of an epoch takes positions [s * B, (s + 1) * B) of
// that epoch's permutation; the examples after the last full batch (fewer than one
// batch, plus at most one extra example on ranks r < n % W) are not visited in that
// epoch. Since the permutation changes every epoch, which examples are left out
// changes too.
//
// kGlobalBatch. One permutation of all n examples per epoch, the one kStrided gives
// rank 0 of a single worker (seed (job seed, epoch, 0)), so a 1-worker job is the same
// under both. Step s's global batch is positions [s*W*B, (s+1)*W*B) of it and rank r
// takes the contiguous slice [s*W*B + r*B, s*W*B + (r+1)*B): W workers with batch B
// see, step by step, exactly the examples one worker with batch W*B sees.
// StepsPerEpoch() = floor(n / (W*B)); the last n mod (W*B) positions of an epoch's
// permutation (a different set each epoch) are not visited in that epoch, on any rank.
#ifndef PS_WORKER_DATA_SHARD_H_
#define PS_WORKER_DATA_SHARD_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace ps::data {

// SplitMix64 stream (common/hash.h Mix64). Not thread-safe; cheap to copy.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  // The next 64 random bits.
  uint64_t Next();
  // Uniform in [0, n) without modulo bias; n must be >= 1.
  uint64_t Uniform(uint64_t n);

 private:
  uint64_t state_;
};

// Shuffles `values` in place with Fisher-Yates driven by `rng`.
void FisherYates(SplitMix64* rng, std::vector<int64_t>* values);

// The stream seed of (job seed, epoch, rank).
uint64_t ShuffleSeed(uint64_t job_seed, uint64_t epoch, uint32_t rank);

// How examples are dealt to ranks; see the file comment.
enum class Sharding { kStrided, kGlobalBatch };

// One worker's view of the training set. Immutable after Create(); thread-safe.
class DataShard {
 public:
  // INVALID_ARGUMENT when num_workers == 0, rank >= num_workers, batch_size == 0, or
  // an epoch would have no step: kStrided, the smallest shard
  // (floor(num_examples / num_workers)) holds fewer than batch_size examples;
  // kGlobalBatch, num_examples < num_workers * batch_size.
  static absl::StatusOr<DataShard> Create(int64_t num_examples, uint32_t rank,
                                          uint32_t num_workers, uint32_t batch_size,
                                          uint64_t seed, Sharding sharding = Sharding::kStrided);

  // kStrided: the examples of this rank (i % num_workers == rank). kGlobalBatch: the
  // examples this rank visits per epoch, steps_per_epoch() * batch_size().
  int64_t shard_size() const { return shard_size_; }
  // Steps (batches) per epoch, the same on every rank.
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  uint32_t batch_size() const { return batch_size_; }

  Sharding sharding() const { return sharding_; }

  // This rank's example indices in the order of epoch `epoch`: shard_size() of them,
  // of which the first steps_per_epoch() * batch_size() are visited (kGlobalBatch: all
  // of them; step s's batch is entries [s * batch_size(), (s + 1) * batch_size())).
  std::vector<int64_t> EpochOrder(uint64_t epoch) const;

  // Example indices of batch `step` (< steps_per_epoch()) of `epoch`: batch_size()
  // entries, or none when step is out of range. Recomputes the permutation; callers iterating over an epoch should take
  // EpochOrder() once and slice it.
  std::vector<int64_t> BatchRows(uint64_t epoch, int64_t step) const;

 private:
  DataShard(int64_t num_examples, uint32_t rank, uint32_t num_workers, uint32_t batch_size,
            uint64_t seed, Sharding sharding);

  int64_t num_examples_;
  uint32_t rank_;
  uint32_t num_workers_;
  uint32_t batch_size_;
  uint64_t seed_;
  Sharding sharding_;
  int64_t shard_size_;
  int64_t steps_per_epoch_;
};

}  // namespace ps::data

#endif  // PS_WORKER_DATA_SHARD_H_
