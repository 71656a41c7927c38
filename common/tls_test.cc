#include "common/tls.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::getenv("TEST_TMPDIR");
    std::ofstream(dir_ + "/cert.pem") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir_ + "/key.pem") << "-----BEGIN PRIVATE KEY-----\n";
    std::ofstream(dir_ + "/ca.pem") << "-----BEGIN CERTIFICATE-----\n";
    std::ofstream(dir_ + "/empty.pem");
  }
  std::string dir_;
};

// Status message of a failed credential call; "" when it succeeded.
template <typename T>
std::string Error(const absl::StatusOr<T>& r) {
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

TEST_F(TlsTest, NoFlagsIsPlaintext) {
  EXPECT_FALSE(TlsFiles{}.enabled());
  auto server = MakeServerCredentials(TlsFiles{});
  ASSERT_TRUE(server.ok());
  EXPECT_NE(*server, nullptr);
  auto channel = MakeChannelCredentials(TlsFiles{});
  ASSERT_TRUE(channel.ok());
  EXPECT_NE(*channel, nullptr);
}

TEST_F(TlsTest, ErrorsNameTheFlag) {
  const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem", ca = dir_ + "/ca.pem";
  const std::string missing = dir_ + "/missing.pem", empty = dir_ + "/empty.pem";
  EXPECT_NE(Error(MakeServerCredentials({cert, "", ""})).find("--tls_key"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({"", key, ""})).find("--tls_cert"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({"", "", ca})).find("--tls_cert"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({missing, key, ""})).find("--tls_cert"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({cert, missing, ""})).find("--tls_key"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({cert, key, missing})).find("--tls_ca"), std::string::npos);
  EXPECT_NE(Error(MakeServerCredentials({cert, key, empty})).find("empty"), std::string::npos);
  EXPECT_NE(Error(MakeChannelCredentials({"", "", missing})).find("--tls_ca"), std::string::npos);
  EXPECT_NE(Error(MakeChannelCredentials({cert, "", ca})).find("--tls_key"), std::string::npos);
  EXPECT_NE(Error(MakeChannelCredentials({missing, key, ca})).find("--tls_cert"), std::string::npos);
}

TEST_F(TlsTest, FilesGiveTlsCredentials) {
  const std::string cert = dir_ + "/cert.pem", key = dir_ + "/key.pem", ca = dir_ + "/ca.pem";
  EXPECT_EQ(Error(MakeServerCredentials({cert, key, ""})), "");
  EXPECT_EQ(Error(MakeServerCredentials({cert, key, ca})), "");
  EXPECT_EQ(Error(MakeChannelCredentials({"", "", ca})), "");
  EXPECT_EQ(Error(MakeChannelCredentials({cert, key, ca})), "");
  // TLS credentials are not the insecure ones.
  EXPECT_NE(*MakeChannelCredentials({"", "", ca}), grpc::InsecureChannelCredentials());
}

}  // namespace
}  // namespace ps
