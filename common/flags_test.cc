#include "common/flags.h"

#include "gtest/gtest.h"

namespace ps {
namespace {

TEST(HostPortTest, ParsesV4AndV6) {
  auto a = ParseHostPort("127.0.0.1:7070", "--coordinator");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7070);
  EXPECT_EQ(a->ToString(), "127.0.0.1:7070");

  auto b = ParseHostPort("[::1]:0", "--listen");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host, "::1");
  EXPECT_EQ(b->port, 0);
  EXPECT_EQ(b->ToString(), "[::1]:0");
}

TEST(HostPortTest, RejectsMalformedAndNamesField) {
  for (const char* bad : {"", "host", ":80", "h:", "h:65536", "h:-1", "[::1:80", "h:8x"}) {
    auto r = ParseHostPort(bad, "--shards");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("--shards"), absl::string_view::npos);
  }
}

TEST(HostPortTest, ListsNameTheBadItem) {
  auto ok = ParseHostPortList("127.0.0.1:1,127.0.0.1:2", "--shards");
  ASSERT_TRUE(ok.ok());
  ASSERT_EQ(ok->size(), 2u);
  EXPECT_EQ((*ok)[1].port, 2);
  auto bad = ParseHostPortList("127.0.0.1:1,,127.0.0.1:3", "--shards");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--shards[1]"), absl::string_view::npos);
}

}  // namespace
}  // namespace ps
