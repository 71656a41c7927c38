#include "worker/data/shard.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"

namespace ps::data {

uint64_t SplitMix64::Next() {
  // Mix64 adds the golden-ratio increment itself, so this is the reference
  // SplitMix64: state += gamma; return mix(state).
  const uint64_t out = Mix64(state_);
  state_ += 0x9e3779b97f4a7c15ULL;
  return out;
}

uint64_t SplitMix64::Uniform(uint64_t n) {
  // Reject the lowest (2^64 mod n) values so every residue is equally likely.
  const uint64_t threshold = (0 - n) % n;
  while (true) {
    const uint64_t r = Next();
    if (r >= threshold) return r % n;
  }
}

void FisherYates(SplitMix64* rng, std::vector<int64_t>* values) {
  for (size_t i = values->size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng->Uniform(i));
    std::swap((*values)[i - 1], (*values)[j]);
  }
}

uint64_t ShuffleSeed(uint64_t job_seed, uint64_t epoch, uint32_t rank) {
  return HashCombine(HashCombine(Mix64(job_seed), epoch), rank);
}

absl::StatusOr<DataShard> DataShard::Create(int64_t num_examples, uint32_t rank,
                                            uint32_t num_workers, uint32_t batch_size,
                                            uint64_t seed, Sharding sharding) {
  if (num_examples < 0) {
    return absl::InvalidArgumentError(absl::StrCat("negative example count ", num_examples));
  }
  if (num_workers == 0) return absl::InvalidArgumentError("num_workers must be >= 1");
  if (rank >= num_workers) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", rank, " must be below num_workers ", num_workers));
  }
  if (batch_size == 0) return absl::InvalidArgumentError("batch_size must be >= 1");
  if (sharding == Sharding::kGlobalBatch) {
    const int64_t global_batch = int64_t{num_workers} * batch_size;
    if (num_examples < global_batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch_size ", batch_size, " x num_workers ", num_workers, " (the global batch, ",
          global_batch, ") exceeds the ", num_examples, " training examples"));
    }
  } else {
    const int64_t smallest = num_examples / num_workers;
    if (smallest < batch_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "batch_size ", batch_size, " exceeds the smallest worker shard (", num_examples,
          " training examples over ", num_workers, " workers give ", smallest, ")"));
    }
  }
  return DataShard(num_examples, rank, num_workers, batch_size, seed, sharding);
}

namespace {

int64_t StepsPerEpoch(int64_t n, uint32_t workers, uint32_t batch, Sharding sharding) {
  return sharding == Sharding::kGlobalBatch ? n / (int64_t{workers} * batch)
                                            : n / workers / batch;
}

}  // namespace

DataShard::DataShard(int64_t num_examples, uint32_t rank, uint32_t num_workers,
                     uint32_t batch_size, uint64_t seed, Sharding sharding)
    : num_examples_(num_examples),
      rank_(rank),
      num_workers_(num_workers),
      batch_size_(batch_size),
      seed_(seed),
      sharding_(sharding),
      shard_size_(sharding == Sharding::kGlobalBatch
                      ? StepsPerEpoch(num_examples, num_workers, batch_size, sharding) *
                            batch_size
                      : num_examples / num_workers +
                            (rank < num_examples % num_workers ? 1 : 0)),
      steps_per_epoch_(StepsPerEpoch(num_examples, num_workers, batch_size, sharding)) {}

std::vector<int64_t> DataShard::EpochOrder(uint64_t epoch) const {
  std::vector<int64_t> order;
  if (sharding_ == Sharding::kGlobalBatch) {
    // The permutation a single STRIDED worker (rank 0 of 1) would use.
    std::vector<int64_t> global(static_cast<size_t>(num_examples_));
    for (int64_t i = 0; i < num_examples_; ++i) global[static_cast<size_t>(i)] = i;
    SplitMix64 rng(ShuffleSeed(seed_, epoch, 0));
    FisherYates(&rng, &global);
    order.reserve(static_cast<size_t>(shard_size_));
    const int64_t global_batch = int64_t{num_workers_} * batch_size_;
    for (int64_t step = 0; step < steps_per_epoch_; ++step) {
      const auto begin = global.begin() + step * global_batch + int64_t{rank_} * batch_size_;
      order.insert(order.end(), begin, begin + batch_size_);
    }
    return order;
  }
  order.reserve(static_cast<size_t>(shard_size_));
  for (int64_t i = rank_; i < num_examples_; i += num_workers_) order.push_back(i);
  SplitMix64 rng(ShuffleSeed(seed_, epoch, rank_));
  FisherYates(&rng, &order);
  return order;
}

std::vector<int64_t> DataShard::BatchRows(uint64_t epoch, int64_t step) const {
  if (step < 0 || step >= steps_per_epoch_) return {};
  const std::vector<int64_t> order = EpochOrder(epoch);
  const auto begin = order.begin() + step * batch_size_;
  return std::vector<int64_t>(begin, begin + batch_size_);
}

}  // namespace ps::data
