// Runs on a GPU; elsewhere every test reports SKIPPED with the runtime's reason.
#include "worker/cuda/device.h"

#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ps::cuda {
namespace {

class CudaDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (DeviceCount(&why) == 0) GTEST_SKIP() << "no CUDA device: " << why;
  }
};

TEST_F(CudaDeviceTest, SaxpyMatchesTheHost) {
  const int n = 100003;  // Not a multiple of the block size.
  std::vector<float> x(n), y(n), want(n);
  for (int i = 0; i < n; ++i) {
    x[i] = 0.5f * static_cast<float>(i % 97);
    y[i] = static_cast<float>(i % 13) - 6.0f;
    want[i] = 3.0f * x[i] + y[i];
  }
  ASSERT_EQ(Saxpy(3.0f, x.data(), y.data(), n), "");
  for (int i = 0; i < n; ++i) ASSERT_EQ(y[i], want[i]) << "at " << i;
  std::printf("ran on %s\n", DeviceName().c_str());
}

}  // namespace
}  // namespace ps::cuda
