// Transparent huge pages for large, freshly allocated buffers.
//
// On the virtual machines this project runs on, a first touch of a 4 KiB page costs
// about 20 µs (DESIGN.md, "Performance facts"): writing 256 MiB into fresh memory spends
// over a second in page faults. Where the kernel's transparent huge pages are in
// "madvise" mode (Debian's default), advising a region first makes it fault in 2 MiB
// at a time, 512 times fewer faults. Harmless where THP is off or "always".
#ifndef PS_COMMON_HUGE_PAGES_H_
#define PS_COMMON_HUGE_PAGES_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ps {

inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Advises the whole 2 MiB pages inside [data, data + size) (a region holding none is
// left alone). Best effort: a refusal changes nothing but speed.
inline void AdviseHugePages(void* data, size_t size) {
  if (size < kHugePageBytes) return;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t first = (begin + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  const uintptr_t last = (begin + size) & ~(kHugePageBytes - 1);
  if (last > first) {
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
}

// Reserves `bytes` of capacity in `out` (which must not have more than a little data
// yet), advised for huge pages before anything is written to them.
inline void ReserveHuge(std::string* out, size_t bytes) {
  out->reserve(bytes);
  AdviseHugePages(out->data(), out->capacity());
}

}  // namespace ps

#endif  // PS_COMMON_HUGE_PAGES_H_
