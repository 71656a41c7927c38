#include "server/dense_values.h"

#include <algorithm>
#include <cstring>

namespace ps {

DenseValues::DenseValues(size_t n, float fill) {
  Allocate(n);
  for (const auto& block : blocks_) std::fill_n(block->data(), block->size(), fill);
}

void DenseValues::Allocate(size_t n) {
  blocks_.clear();
  size_ = n;
  for (size_t at = 0; at < n; at += kBlockFloats) {
    blocks_.push_back(LendableFloats::Make(std::min(kBlockFloats, n - at)));
  }
}

float* DenseValues::Writable(size_t b) {
  std::shared_ptr<LendableFloats>& block = blocks_[b];
  if (!block->lent()) return block->data();
  std::shared_ptr<LendableFloats> copy;
  for (auto it = retired_.begin(); it != retired_.end(); ++it) {
    if ((*it)->size() == block->size() && !(*it)->lent()) {
      copy = std::move(*it);
      retired_.erase(it);
      break;
    }
  }
  if (copy == nullptr) copy = LendableFloats::Make(block->size());
  std::memcpy(copy->data(), block->data(), block->size() * sizeof(float));
  if (retired_.size() == kMaxRetired) retired_.erase(retired_.begin());
  retired_.push_back(std::move(block));  // Its loans keep it unchanged meanwhile.
  block = std::move(copy);
  ++copies_on_write_;
  return block->data();
}

void DenseValues::Lend(size_t begin, size_t n, size_t at, std::vector<LentBytes>* out) const {
  ForEachRun(begin, n, [&](size_t b, size_t off, size_t, size_t k) {
    const std::shared_ptr<LendableFloats>& block = blocks_[b];
    out->push_back(LentBytes{at, reinterpret_cast<const char*>(block->data() + off),
                             k * sizeof(float), LendableFloats::Lend(block)});
  });
}

void DenseValues::AppendRuns(std::vector<ByteRun>* runs) const {
  for (const auto& block : blocks_) {
    runs->push_back(ByteRun{block->data(), block->size() * sizeof(float)});
  }
}

void DenseValues::Assign(const char* bytes, size_t n) {
  Allocate(n);
  for (const auto& block : blocks_) {
    std::memcpy(block->data(), bytes, block->size() * sizeof(float));
    bytes += block->size() * sizeof(float);
  }
}

}  // namespace ps
