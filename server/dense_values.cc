#include "server/dense_values.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include "common/huge_pages.h"

namespace ps {
namespace {

// Whole blocks start on a huge page (advised before their first touch: one fault per
// 2 MiB, common/huge_pages.h); a table's last, smaller block on a cache line.
float* AllocateFloats(size_t floats) {
  const size_t bytes = floats * sizeof(float);
  const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  void* p = std::aligned_alloc(align, (bytes + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  AdviseHugePages(p, bytes);
  return static_cast<float*>(p);
}

}  // namespace

DenseValues::Block::Block(size_t n) : data(AllocateFloats(n)), floats(n) {}

DenseValues::Block::~Block() { std::free(data); }

DenseValues::DenseValues(size_t n) {
  Allocate(n);
  for (const auto& block : blocks_) std::memset(block->data, 0, block->floats * sizeof(float));
}

void DenseValues::Allocate(size_t n) {
  blocks_.clear();
  size_ = n;
  for (size_t at = 0; at < n; at += kBlockFloats) {
    blocks_.push_back(std::make_shared<Block>(std::min(kBlockFloats, n - at)));
  }
}

float* DenseValues::Writable(size_t b) {
  const std::shared_ptr<Block>& block = blocks_[b];
  if (block->lent.load(std::memory_order_acquire) == 0) return block->data;
  auto copy = std::make_shared<Block>(block->floats);
  std::memcpy(copy->data, block->data, block->floats * sizeof(float));
  blocks_[b] = std::move(copy);
  ++copies_on_write_;
  return blocks_[b]->data;
}

void DenseValues::Lend(size_t begin, size_t n, size_t at, std::vector<LentBytes>* out) const {
  ForEachRun(begin, n, [&](size_t b, size_t off, size_t, size_t k) {
    const std::shared_ptr<Block>& block = blocks_[b];
    block->lent.fetch_add(1, std::memory_order_relaxed);
    // The token holds the block (freed with the last one after the table moved on) and
    // returns the loan when dropped.
    std::shared_ptr<const void> keep(block->data + off, [block](const void*) {
      block->lent.fetch_sub(1, std::memory_order_release);
    });
    out->push_back(LentBytes{at, reinterpret_cast<const char*>(block->data + off),
                             k * sizeof(float), std::move(keep)});
  });
}

std::vector<ByteRun> DenseValues::Runs() const {
  std::vector<ByteRun> runs;
  runs.reserve(blocks_.size());
  for (const auto& block : blocks_) runs.push_back(ByteRun{block->data, block->floats * sizeof(float)});
  return runs;
}

void DenseValues::Assign(const char* bytes, size_t n) {
  Allocate(n);
  for (const auto& block : blocks_) {
    std::memcpy(block->data, bytes, block->floats * sizeof(float));
    bytes += block->floats * sizeof(float);
  }
}

}  // namespace ps
