#include "client/npz.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/npz_reader.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

std::string TmpPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

bool HaveNumpy() { return std::system("python3 -c 'import numpy' 2>/dev/null") == 0; }

TEST(NpzTest, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("56789", Crc32("1234")), 0xCBF43926u) << "continues a running crc";
}

TEST(NpzTest, NpyHeaderIsPaddedAndNamesTheShape) {
  const uint64_t shape2[] = {3, 4};
  const std::string h = NpyHeader(shape2);
  EXPECT_EQ(h.size() % 64, 0u);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(h.find("'shape': (3, 4), }"), std::string::npos) << h;
  const uint64_t shape1[] = {5};
  EXPECT_NE(NpyHeader(shape1).find("'shape': (5,), }"), std::string::npos);
}

TEST(NpzTest, WritesArraysThatReadBack) {
  const std::string path = TmpPath("rt.npz");
  auto w = NpzWriter::Create(path);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::vector<float> a = {1, 2, 3, 4, 5, 6};
  const std::vector<float> b = {-0.5f};
  ASSERT_TRUE((*w)->Add("w0", {2, 3}, a).ok());
  ASSERT_TRUE((*w)->Add("b0", {1}, b).ok());
  EXPECT_EQ((*w)->Add("bad", {4}, a).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*w)->Add("a/b", {6}, a).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE((*w)->Close().ok());
  auto arrays = ReadNpzForTest(path);
  ASSERT_TRUE(arrays.ok()) << arrays.status();
  ASSERT_EQ(arrays->size(), 2u);
  EXPECT_EQ(arrays->at("w0").shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(arrays->at("w0").values, a);
  EXPECT_EQ(arrays->at("b0").values, b);
  EXPECT_EQ(NpzWriter::Create("/nonexistent-dir/x.npz").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(NpzTest, NumpyLoadsTheArchive) {
  if (!HaveNumpy()) GTEST_SKIP() << "python3-numpy is not installed: skipping the numpy check";
  const std::string path = TmpPath("np.npz");
  auto w = NpzWriter::Create(path);
  ASSERT_TRUE(w.ok());
  std::vector<float> big(70000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.5f;
  ASSERT_TRUE((*w)->Add("w0", {700, 100}, big).ok());
  ASSERT_TRUE((*w)->Add("b0", {3}, std::vector<float>{1, 2, 3}).ok());
  ASSERT_TRUE((*w)->Close().ok());
  const std::string cmd = absl::StrCat(
      "python3 -c \"import numpy, sys; z = numpy.load(sys.argv[1]); "
      "assert sorted(z.files) == ['b0', 'w0'], z.files; "
      "assert z['w0'].dtype == numpy.float32 and z['w0'].shape == (700, 100); "
      "assert z['w0'][3, 7] == 153.5, z['w0'][3, 7]; "
      "assert list(z['b0']) == [1, 2, 3]\" ",
      path);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

}  // namespace
}  // namespace ps
