// memcpy of large buffers split across threads.
//
// One core cannot saturate memory bandwidth: on this project's 2-core machine kind one
// thread copies about 14 GB/s and two copy about 21 GB/s (a 1 GiB buffer). Snapshots
// copy whole tables under the job's lock, so the training pause shrinks with the
// threads that share the copy.
#ifndef PS_COMMON_PARALLEL_COPY_H_
#define PS_COMMON_PARALLEL_COPY_H_

#include <cstddef>

#include "absl/types/span.h"

namespace ps {

// Copies `n` bytes from `src` to `dst` (not overlapping), on up to `max_threads`
// threads (the calling one among them; 0: one per core, at most 8), one piece of about
// n / threads each, and one thread for less than 16 MiB. When a thread cannot be
// started the calling one copies its piece. Returns when every byte is copied.
void ParallelCopy(void* dst, const void* src, size_t n, unsigned max_threads = 0);

// Bytes at `data`: one of the runs that ParallelGather joins.
struct ByteRun {
  const void* data = nullptr;
  size_t size = 0;
};

// As ParallelCopy, of the runs one after another into `dst` (a table held in blocks
// into one contiguous snapshot): the pieces split the destination evenly, whatever
// the runs' sizes.
void ParallelGather(void* dst, absl::Span<const ByteRun> runs, unsigned max_threads = 0);

}  // namespace ps

#endif  // PS_COMMON_PARALLEL_COPY_H_
