#include "common/grpc_status.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(GrpcStatusTest, EveryCodeRoundTrips) {
  for (int code = 0; code <= 16; ++code) {
    const absl::Status a(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    const grpc::Status g = ToGrpcStatus(a);
    EXPECT_EQ(static_cast<int>(g.error_code()), code);
    EXPECT_EQ(FromGrpcStatus(g), a);
  }
}

TEST(GrpcStatusTest, MessagesSurvive) {
  const grpc::Status g =
      ToGrpcStatus(absl::InvalidArgumentError("slices[0].keys: 7 bytes"));
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(g.error_message(), "slices[0].keys: 7 bytes");
  EXPECT_EQ(FromGrpcStatus(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")),
            absl::UnavailableError("down"));
}

}  // namespace
}  // namespace ps
