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

}  // namespace
}  // namespace ps
