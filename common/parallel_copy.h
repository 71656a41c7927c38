// memcpy of large buffers split across threads.
//
// One core cannot saturate memory bandwidth: on this project's 2-core machine kind one
// thread copies about 14 GB/s and two copy about 21 GB/s (a 1 GiB buffer). Snapshots
// copy whole tables under the job's lock, so the training pause shrinks with the
// threads that share the copy.
#ifndef PS_COMMON_PARALLEL_COPY_H_
#define PS_COMMON_PARALLEL_COPY_H_

#include <cstddef>

namespace ps {

// Copies `n` bytes from `src` to `dst` (not overlapping), on up to `max_threads`
// threads (the calling one among them; 0: one per core, at most 8), one piece of about
// n / threads each, and one thread for less than 16 MiB. When a thread cannot be
// started the calling one copies its piece. Returns when every byte is copied.
void ParallelCopy(void* dst, const void* src, size_t n, unsigned max_threads = 0);

}  // namespace ps

#endif  // PS_COMMON_PARALLEL_COPY_H_
