#include "common/parallel_copy.h"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace ps {

void ParallelCopy(void* dst, const void* src, size_t n, unsigned max_threads) {
  constexpr size_t kMinPiece = size_t{8} << 20;
  constexpr unsigned kMaxThreads = 8;
  if (max_threads == 0) max_threads = std::min(std::thread::hardware_concurrency(), kMaxThreads);
  const size_t pieces = std::clamp<size_t>(n / kMinPiece, 1, std::max(max_threads, 1u));
  char* to = static_cast<char*>(dst);
  const char* from = static_cast<const char*>(src);
  const size_t piece = ((n + pieces - 1) / pieces + 63) & ~size_t{63};
  auto copy = [=](size_t i) {
    const size_t begin = std::min(n, i * piece);
    std::memcpy(to + begin, from + begin, std::min(n, begin + piece) - begin);
  };
  std::vector<std::thread> helpers;
  helpers.reserve(pieces - 1);
  size_t i = 1;
  for (; i < pieces; ++i) {
    try {
      helpers.emplace_back(copy, i);
    } catch (const std::system_error&) {
      break;  // No thread to be had (a process or pid limit): copy the rest here.
    }
  }
  for (size_t rest = i; rest < pieces; ++rest) copy(rest);
  if (n > 0) copy(0);
  for (std::thread& t : helpers) t.join();
}

}  // namespace ps
