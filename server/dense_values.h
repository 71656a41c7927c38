// The weights of a dense table, in blocks that a pull lends to the transport instead
// of copying them (copy on write).
//
// A pull's values are the table's own memory: Lend hands out views of the blocks it
// reads, each with a loan (common/lendable.h), and gRPC sends them from where they lie.
// A write to a block that is still lent first moves the table to a fresh copy of that
// block, so a lent view never changes under its reader; the old block is freed with its
// last loan. In training, the pull of a block has been sent before the next push of
// that block arrives, and nothing is copied. With several workers some pushes do meet
// a block still being sent: the few blocks such copies left behind are kept, and a
// later copy reuses one whose loans are back, rather than faulting in fresh pages.
//
// Not thread-safe, as Table: writes (MutableRuns, Assign) need the owner's exclusive
// lock, reads and Lend its shared lock. Loans may be dropped on any thread.
#ifndef PS_SERVER_DENSE_VALUES_H_
#define PS_SERVER_DENSE_VALUES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/lendable.h"
#include "common/logging.h"
#include "common/parallel_copy.h"

namespace ps {

class DenseValues {
 public:
  // 2 MiB: one huge page, and a few blocks per pull part of a few MiB.
  static constexpr size_t kBlockFloats = size_t{1} << 19;

  DenseValues() = default;
  explicit DenseValues(size_t n, float fill = 0.0f);
  DenseValues(DenseValues&&) = default;
  DenseValues& operator=(DenseValues&&) = default;

  size_t size() const { return size_; }
  // Writes to lent blocks that had to copy them first, since construction.
  uint64_t copies_on_write() const { return copies_on_write_; }

  // Calls f(offset, data, k) for the runs of [begin, begin + n) in order, one per block
  // touched: data[0 .. k) are the values begin + offset .. begin + offset + k - 1.
  // ConstRuns reads; MutableRuns may write, after copying any lent block of the run.
  template <typename F>
  void ConstRuns(size_t begin, size_t n, F&& f) const {
    ForEachRun(begin, n, [&](size_t b, size_t off, size_t at, size_t k) {
      f(at, static_cast<const float*>(blocks_[b]->data() + off), k);
    });
  }
  template <typename F>
  void MutableRuns(size_t begin, size_t n, F&& f) {
    ForEachRun(begin, n, [&](size_t b, size_t off, size_t at, size_t k) {
      f(at, Writable(b) + off, k);
    });
  }

  // The writable values [begin, begin + k) of a run that lies in one block, as
  // MutableRuns hands out (for arrays of the same size written in step with another's
  // runs: an optimizer's slots with its weights).
  float* MutableRun(size_t begin, size_t k) {
    PS_CHECK(begin % kBlockFloats + k <= kBlockFloats && begin + k <= size_);
    return Writable(begin / kBlockFloats) + begin % kBlockFloats;
  }

  // Appends the views of [begin, begin + n), one per block, each with `at`.
  void Lend(size_t begin, size_t n, size_t at, std::vector<LentBytes>* out) const;

  // Appends every value's bytes in order, as runs (for a snapshot copy,
  // common/parallel_copy.h).
  void AppendRuns(std::vector<ByteRun>* runs) const;

  // Replaces the values with `n` floats read from `bytes` (any alignment), in new
  // blocks: a lent one is left to its readers.
  void Assign(const char* bytes, size_t n);

 private:
  template <typename F>
  void ForEachRun(size_t begin, size_t n, F&& f) const {
    size_t at = 0;
    while (at < n) {
      const size_t b = (begin + at) / kBlockFloats;
      const size_t off = (begin + at) % kBlockFloats;
      const size_t k = std::min(n - at, kBlockFloats - off);
      f(b, off, at, k);
      at += k;
    }
  }
  float* Writable(size_t b);
  void Allocate(size_t n);

  // Blocks replaced while lent, kept (at most kMaxRetired, oldest dropped first) to be
  // written again once no loan of them is out.
  static constexpr size_t kMaxRetired = 4;

  std::vector<std::shared_ptr<LendableFloats>> blocks_;
  std::vector<std::shared_ptr<LendableFloats>> retired_;
  size_t size_ = 0;
  uint64_t copies_on_write_ = 0;
};

}  // namespace ps

#endif  // PS_SERVER_DENSE_VALUES_H_
