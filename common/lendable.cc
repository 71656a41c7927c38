#include "common/lendable.h"

#include <algorithm>
#include <cstdlib>
#include <new>

#include "common/huge_pages.h"

namespace ps {
namespace {

float* AllocateFloats(size_t floats) {
  const size_t bytes = floats * sizeof(float);
  const size_t align = bytes >= kHugePageBytes ? kHugePageBytes : 64;
  void* p = std::aligned_alloc(align, std::max<size_t>(1, (bytes + align - 1) / align) * align);
  if (p == nullptr) throw std::bad_alloc();
  AdviseHugePages(p, bytes);
  return static_cast<float*>(p);
}

}  // namespace

std::optional<std::string> JoinLent(std::string_view copied, const std::vector<LentBytes>& lent) {
  std::string out;
  size_t at = 0;  // Of `copied`, appended so far.
  for (const LentBytes& l : lent) {
    if (l.at < at || l.at > copied.size()) return std::nullopt;
    out.append(copied.substr(at, l.at - at));
    out.append(l.data, l.size);
    at = l.at;
  }
  out.append(copied.substr(at));
  return out;
}

LendableFloats::LendableFloats(size_t size) : data_(AllocateFloats(size)), size_(size) {}

LendableFloats::~LendableFloats() { std::free(data_); }

std::shared_ptr<const void> LendableFloats::Lend(const std::shared_ptr<LendableFloats>& floats) {
  floats->loans_.fetch_add(1, std::memory_order_relaxed);
  return std::shared_ptr<const void>(floats->data_, [floats](const void*) {
    floats->loans_.fetch_sub(1, std::memory_order_release);
  });
}

}  // namespace ps
