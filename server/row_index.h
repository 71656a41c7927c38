// The key -> row map of a sparse table, made for lookups of many random keys at once.
//
// Open addressing with linear probing over 16-byte entries (key, row), kept at most
// half full, so a lookup nearly always reads the one cache line Prefetch fetched.
// absl::flat_hash_map was measured first: its prefetch fetches the control bytes and
// the first slots of a 16-slot group, the matching slot lies up to 256 bytes further,
// and in a 100k-key pull 84 % of the lookup time stalled on that slot's load.
//
// Keys are hashed with absl::Hash, seeded per process (abseil does not promise that
// seed as a defence against chosen keys). Rows are numbers below 2^64 - 1. Not
// thread-safe.
#ifndef PS_SERVER_ROW_INDEX_H_
#define PS_SERVER_ROW_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/hash/hash.h"

namespace ps {

class RowIndex {
 public:
  static constexpr uint64_t kNone = ~uint64_t{0};
  static constexpr size_t kEntryBytes = 2 * sizeof(uint64_t);

  size_t size() const { return size_; }

  // Starts loading the cache line where a lookup of `key` begins. Always inlined: GCC
  // takes a prefetch for no side effect, so it may delete calls to an out-of-line copy.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Prefetch(uint64_t key) const {
    if (!entries_.empty()) __builtin_prefetch(&entries_[Home(key)]);
  }

  // The row of `key`, or kNone.
  uint64_t Find(uint64_t key) const {
    if (entries_.empty()) return kNone;
    for (size_t i = Home(key);; i = (i + 1) & mask_) {
      const Entry& e = entries_[i];
      if (e.row == kNone || e.key == key) return e.row;
    }
  }

  // The row of `key`, adding it with `row` when absent; second: whether it was added.
  std::pair<uint64_t, bool> Insert(uint64_t key, uint64_t row) {
    // Grows only to add a key: a present key at exactly half load must not double it.
    if (const uint64_t found = Find(key); found != kNone) return {found, false};
    if (2 * (size_ + 1) > entries_.size()) Grow();
    Place(Entry{key, row});
    ++size_;
    return {row, true};
  }

  // Entries allocated (a power of two, or 0): the index holds 16 bytes for each.
  size_t capacity() const { return entries_.size(); }

  void Clear() {
    entries_.clear();
    mask_ = 0;
    size_ = 0;
  }

 private:
  struct Entry {
    uint64_t key = 0;
    uint64_t row = kNone;  // kNone: empty.
  };

  size_t Home(uint64_t key) const { return absl::Hash<uint64_t>{}(key) & mask_; }

  void Grow() {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(old.empty() ? 16 : 2 * old.size(), Entry{});
    mask_ = entries_.size() - 1;
    for (const Entry& e : old) {
      if (e.row != kNone) Place(e);
    }
  }

  // Puts `e`, whose key is not in the index, in the first empty entry from its home.
  void Place(const Entry& e) {
    size_t i = Home(e.key);
    while (entries_[i].row != kNone) i = (i + 1) & mask_;
    entries_[i] = e;
  }

  std::vector<Entry> entries_;  // A power of two of them, or none.
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace ps

#endif  // PS_SERVER_ROW_INDEX_H_
