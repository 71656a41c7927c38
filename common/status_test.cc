#include "common/status.h"

#include <memory>

#include "gtest/gtest.h"

namespace ps {
namespace {

absl::Status FailIfNegative(int x) {
  if (x < 0) return absl::InvalidArgumentError("x: negative");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeBoxed(int x) {
  PS_RETURN_IF_ERROR(FailIfNegative(x));
  return std::make_unique<int>(x);
}

absl::StatusOr<int> Unbox(int x) {
  PS_ASSIGN_OR_RETURN(std::unique_ptr<int> boxed, MakeBoxed(x));
  int doubled = 0;
  PS_ASSIGN_OR_RETURN(doubled, absl::StatusOr<int>(*boxed * 2));
  return doubled;
}

TEST(StatusTest, ReturnIfErrorPassesErrorsThrough) {
  EXPECT_TRUE(MakeBoxed(3).ok());
  absl::StatusOr<std::unique_ptr<int>> bad = MakeBoxed(-1);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "x: negative");
}

TEST(StatusTest, AssignOrReturnMovesValuesAndErrors) {
  absl::StatusOr<int> ok = Unbox(21);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 42);
  EXPECT_EQ(Unbox(-5).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StatusTest, AnnotateKeepsCodeAndPrefixesMessage) {
  absl::Status s = Annotate(absl::NotFoundError("table w"), "shard 1");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "shard 1: table w");
  EXPECT_TRUE(Annotate(absl::OkStatus(), "ctx").ok());
}

}  // namespace
}  // namespace ps
