#include "common/auth.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(ConstantTimeEqualsTest, EqualOnlyWhenEveryByteAndTheLengthMatch) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("s3cret", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "s3creT"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "X3cret"));
  EXPECT_FALSE(ConstantTimeEquals("s3cret", "s3cre"));   // A prefix is not equal.
  EXPECT_FALSE(ConstantTimeEquals("s3cre", "s3cret"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0", 2), "a"));  // Padding is not a match.
}

TEST(ParseTokenTest, StripsTrailingNewlinesAndRefusesBadTokens) {
  EXPECT_EQ(*ParseToken("abc123\n", "--auth_token_file"), "abc123");
  EXPECT_EQ(*ParseToken("abc123\r\n \t\n", "--auth_token_file"), "abc123");
  EXPECT_EQ(*ParseToken("abc123", "--auth_token_file"), "abc123");
  for (const char* bad : {"", "\n", " \r\n", "two words", "line1\nline2", "tab\there"}) {
    absl::StatusOr<std::string> t = ParseToken(bad, "--auth_token_file");
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("--auth_token_file"), absl::string_view::npos);
  }
  EXPECT_FALSE(ParseToken(std::string(4097, 'a'), "--auth_token_file").ok());
}

TEST(ReadTokenFileTest, ReadsTheFileAndNamesTheFlagOnErrors) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/token";
  std::ofstream(path) << "tok-en_42\n";
  EXPECT_EQ(*ReadTokenFile(path, "--auth_token_file"), "tok-en_42");
  absl::StatusOr<std::string> missing = ReadTokenFile(path + ".missing", "--auth_token_file");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--auth_token_file"), absl::string_view::npos);
  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_FALSE(ReadTokenFile(path, "--auth_token_file").ok());
}

TEST(CheckBearerTest, AcceptsOnlyTheRightBearerToken) {
  EXPECT_TRUE(CheckBearer(std::string("Bearer s3cret"), "s3cret").ok());
  EXPECT_TRUE(CheckBearer(std::string("bearer s3cret"), "s3cret").ok());
  EXPECT_EQ(BearerValue("s3cret"), "Bearer s3cret");
  const absl::optional<absl::string_view> refused[] = {
      absl::nullopt, "", "Bearer", "Bearer ", "Bearer s3cre", "Bearer s3cret2",
      "Basic s3cret", "s3cret", "Bearer  s3cret"};
  for (const auto& h : refused) {
    absl::Status s = CheckBearer(h, "s3cret");
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << (h ? *h : "(absent)");
    EXPECT_NE(s.message().find("authorization"), absl::string_view::npos);
    EXPECT_EQ(s.message().find("s3cret"), absl::string_view::npos) << s;  // Not echoed.
  }
  // An empty expected token never matches (a coordinator without a token does not call
  // this).
  EXPECT_FALSE(CheckBearer(std::string("Bearer "), "").ok());
}

}  // namespace
}  // namespace ps
