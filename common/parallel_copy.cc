#include "common/parallel_copy.h"

#include <algorithm>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

namespace ps {

void ParallelCopy(void* dst, const void* src, size_t n, unsigned max_threads) {
  const ByteRun run{src, n};
  ParallelGather(dst, {&run, 1}, max_threads);
}

void ParallelGather(void* dst, absl::Span<const ByteRun> runs, unsigned max_threads) {
  constexpr size_t kMinPiece = size_t{8} << 20;
  constexpr unsigned kMaxThreads = 8;
  // starts[r]: where run r lands in `dst`.
  std::vector<size_t> starts(runs.size() + 1, 0);
  for (size_t r = 0; r < runs.size(); ++r) starts[r + 1] = starts[r] + runs[r].size;
  const size_t n = starts.back();
  if (max_threads == 0) max_threads = std::min(std::thread::hardware_concurrency(), kMaxThreads);
  const size_t pieces = std::clamp<size_t>(n / kMinPiece, 1, std::max(max_threads, 1u));
  char* to = static_cast<char*>(dst);
  const size_t piece = ((n + pieces - 1) / pieces + 63) & ~size_t{63};
  // Copies the destination bytes [i * piece, (i + 1) * piece) from the runs they come from.
  auto copy = [&, to, n, piece](size_t i) {
    size_t at = std::min(n, i * piece);
    const size_t end = std::min(n, at + piece);
    size_t r = static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), at) -
                                   starts.begin()) - 1;
    for (; at < end; ++r) {
      if (runs[r].size == 0) continue;
      const size_t skip = at - starts[r];
      const size_t k = std::min(end, starts[r + 1]) - at;
      std::memcpy(to + at, static_cast<const char*>(runs[r].data) + skip, k);
      at += k;
    }
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
