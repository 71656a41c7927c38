#include "worker/compute/factory.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "worker/compute/absl_status.h"
#include "worker/cuda/device.h"

namespace ps::compute {
namespace {

TEST(FactoryTest, ParsesDeviceChoices) {
  EXPECT_EQ(*ParseDeviceChoice("auto"), DeviceChoice::kAuto);
  EXPECT_EQ(*ParseDeviceChoice("cpu"), DeviceChoice::kCpu);
  EXPECT_EQ(*ParseDeviceChoice("gpu"), DeviceChoice::kGpu);
  EXPECT_EQ(ParseDeviceChoice("GPU0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(FactoryTest, CpuIsOpenBlas) {
  auto be = CreateBackend(DeviceChoice::kCpu);
  ASSERT_TRUE(be.ok()) << be.status();
  EXPECT_EQ((*be)->name(), "cpu (openblas)");
  EXPECT_FALSE((*be)->is_gpu());
}

TEST(FactoryTest, AutoPicksTheGpuExactlyWhenThereIsOne) {
  auto be = CreateBackend(DeviceChoice::kAuto);
  ASSERT_TRUE(be.ok()) << be.status();
  EXPECT_EQ((*be)->is_gpu(), cuda::DeviceCount() > 0) << (*be)->name();
}

TEST(FactoryTest, GpuWithoutADeviceIsAClearError) {
  std::string why;
  if (cuda::DeviceCount(&why) > 0) GTEST_SKIP() << "a GPU is present";
  auto be = CreateBackend(DeviceChoice::kGpu);
  EXPECT_EQ(be.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(be.status().message().find("no usable CUDA device"), absl::string_view::npos)
      << be.status();
}

TEST(AbslStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(ToAbslStatus(ComputeStatus::Ok()).ok());
  const absl::Status s = ToAbslStatus(ComputeStatus::ResourceExhausted("no memory"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "no memory");
  EXPECT_EQ(ToAbslStatus(ComputeStatus::InvalidArgument("x")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ToAbslStatus(ComputeStatus::FailedPrecondition("x")).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ToAbslStatus(ComputeStatus::Internal("x")).code(), absl::StatusCode::kInternal);
  EXPECT_EQ(ComputeStatus::Internal("boom").ToString(), "INTERNAL: boom");
}

}  // namespace
}  // namespace ps::compute
