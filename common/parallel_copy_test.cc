#include "common/parallel_copy.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps {
namespace {

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Sizes below one piece, at piece boundaries and odd sizes over several pieces; the
// bytes around the destination stay untouched.
TEST(ParallelCopyTest, CopiesEveryByteAndNothingElse) {
  const size_t mib = size_t{1} << 20;
  for (size_t n : {size_t{0}, size_t{1}, size_t{4095}, 8 * mib, 16 * mib, 24 * mib + 13,
                   33 * mib + 1}) {
    for (unsigned threads : {0u, 1u, 3u}) {
      const std::string src = Pattern(n);
      std::string dst(n + 128, '#');
      ParallelCopy(dst.data() + 64, src.data(), n, threads);
      EXPECT_EQ(dst.compare(64, n, src), 0) << n << " bytes, " << threads << " threads";
      EXPECT_EQ(dst.substr(0, 64), std::string(64, '#'));
      EXPECT_EQ(dst.substr(64 + n), std::string(64, '#'));
    }
  }
}

// Runs of uneven sizes (empty ones among them) land one after another, whether a
// piece boundary falls inside a run or between two.
TEST(ParallelCopyTest, GathersRunsInOrder) {
  const size_t mib = size_t{1} << 20;
  // Under 64 MiB in all (memcpy per run), over it and exactly 64 MiB (streaming
  // stores), with runs and a destination at odd addresses, empty runs first and last.
  const std::vector<std::vector<size_t>> cases = {
      {3 * mib, 0, 9 * mib + 5, 1, 0, 2 * mib, 25 * mib + 1},
      {3 * mib, 0, 9 * mib + 5, 1, 0, 2 * mib, 60 * mib + 3},
      {0, 31 * mib, 33 * mib, 0}};
  for (const std::vector<size_t>& sizes : cases) {
    size_t total = 0;
    for (size_t size : sizes) total += size;
    const std::string src = Pattern(total);
    std::vector<ByteRun> runs;
    size_t at = 0;
    for (size_t size : sizes) {
      runs.push_back(ByteRun{src.data() + at, size});
      at += size;
    }
    for (unsigned threads : {0u, 1u, 2u, 5u}) {
      std::string dst(src.size() + 128, '#');
      ParallelGather(dst.data() + 67, runs, threads);
      EXPECT_EQ(dst.compare(67, src.size(), src), 0) << threads << " threads, " << total;
      EXPECT_EQ(dst.substr(0, 67), std::string(67, '#'));
      EXPECT_EQ(dst.substr(67 + src.size()), std::string(61, '#'));
    }
  }
  std::string untouched(8, '#');
  ParallelGather(untouched.data(), {}, 0);
  EXPECT_EQ(untouched, std::string(8, '#'));
}

}  // namespace
}  // namespace ps
