#include "common/parallel_copy.h"

#include <algorithm>
#include <cstring>
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
  // Piece boundaries on 64-byte lines, so no two threads write one cache line.
  const size_t piece = ((n + pieces - 1) / pieces + 63) & ~size_t{63};
  std::vector<std::thread> helpers;
  helpers.reserve(pieces - 1);
  for (size_t i = 1; i < pieces; ++i) {
    const size_t begin = std::min(n, i * piece);
    const size_t end = std::min(n, begin + piece);
    if (begin == end) break;
    helpers.emplace_back([=] { std::memcpy(to + begin, from + begin, end - begin); });
  }
  if (n > 0) std::memcpy(to, from, std::min(n, piece));
  for (std::thread& t : helpers) t.join();
}

}  // namespace ps
