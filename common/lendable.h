// Memory lent to readers on other threads without a copy (gRPC sending it from where it
// lies), and written by its owner only while no loan is out.
//
// A loan is a token (std::shared_ptr<const void>): while any copy of it lives, the
// memory stays allocated and lent() is true. Loans are taken by whoever holds the
// owner's permission to read (a lock, or the owner's own thread) and may be dropped on
// any thread; lent() reads the count with acquire order, so an owner that sees no loan
// out also sees every reader's reads finished before it writes.
#ifndef PS_COMMON_LENDABLE_H_
#define PS_COMMON_LENDABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ps {

// `size` floats, uninitialised. Allocations of 2 MiB and more start on a huge page and
// are advised for huge pages (common/huge_pages.h) before their first touch.
class LendableFloats {
 public:
  static std::shared_ptr<LendableFloats> Make(size_t size) {
    return std::shared_ptr<LendableFloats>(new LendableFloats(size));
  }
  ~LendableFloats();
  LendableFloats(const LendableFloats&) = delete;
  LendableFloats& operator=(const LendableFloats&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t size() const { return size_; }

  // Whether a loan is out: the owner must not write the memory then.
  bool lent() const { return loans_.load(std::memory_order_acquire) != 0; }

  // A loan of `floats` (which it keeps alive).
  static std::shared_ptr<const void> Lend(const std::shared_ptr<LendableFloats>& floats);

 private:
  explicit LendableFloats(size_t size);

  float* const data_;
  const size_t size_;
  std::atomic<int64_t> loans_{0};
};

// Bytes of a message lent rather than copied into it: `size` bytes at `data`, unchanged
// and allocated while `keep` (a loan) is held. `at`: where they go among the bytes
// copied into the same message (before the byte at that offset of its buffer). A
// checkpoint's record instead keeps room for them from `at` on (Table::SaveStateInto).
struct LentBytes {
  size_t at = 0;
  const char* data = nullptr;
  size_t size = 0;
  std::shared_ptr<const void> keep;
};

// The bytes of a message made of `copied` with each of `lent` inserted at its `at`
// offset: what a receiver of wire::BufferPool::AppendSlices's slices reads. Nothing
// when an offset is out of order or past `copied`. For checks and tests; the data
// path sends the pieces without joining them.
std::optional<std::string> JoinLent(std::string_view copied, const std::vector<LentBytes>& lent);

}  // namespace ps

#endif  // PS_COMMON_LENDABLE_H_
