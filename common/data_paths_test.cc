#include "common/data_paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

// A symlink at `to` pointing to `from` (one left by an earlier test of the fixture
// stays).
void Link(const std::string& from, const std::string& to) {
  if (::symlink(from.c_str(), to.c_str()) != 0 && errno != EEXIST) {
    ADD_FAILURE() << "symlink " << to << ": " << std::strerror(errno);
  }
}

class DataPathsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/data_paths");
    root_ = base_ + "/root";
    ::mkdir(base_.c_str(), 0755);
    ::mkdir(root_.c_str(), 0755);
    ::mkdir((root_ + "/sub").c_str(), 0755);
    std::ofstream(root_ + "/sub/train.csv") << "1\n";
    std::ofstream(base_ + "/secret.csv") << "1\n";
    Link(base_ + "/secret.csv", root_ + "/escape.csv");
    Link(root_ + "/sub/train.csv", root_ + "/inside.csv");
  }

  void ExpectRejected(const std::string& path, const std::string& why) {
    auto r = ResolveDataPath(root_, path, "spec.data.train_path");
    ASSERT_FALSE(r.ok()) << path;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("spec.data.train_path: ", 0), 0u) << r.status();
    EXPECT_NE(r.status().message().find(why), absl::string_view::npos) << r.status();
  }

  std::string base_, root_;
};

TEST_F(DataPathsTest, ResolvesFilesInsideTheRoot) {
  auto r = ResolveDataPath(root_, "sub/train.csv", "f");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->substr(r->size() - 14), "/sub/train.csv");
  EXPECT_TRUE(ResolveDataPath(root_, "inside.csv", "f").ok()) << "symlink within root";
  EXPECT_TRUE(ResolveDataPath(root_, root_ + "/sub/train.csv", "f").ok()) << "absolute";
}

TEST_F(DataPathsTest, RejectsEscapesAndMissingFiles) {
  ExpectRejected("../secret.csv", "\"..\"");
  ExpectRejected("sub/../../secret.csv", "\"..\"");
  ExpectRejected("escape.csv", "outside --data_root");
  ExpectRejected(base_ + "/secret.csv", "outside --data_root");
  ExpectRejected("nope.csv", "does not exist");
  ExpectRejected("sub", "not a regular file");
}

TEST_F(DataPathsTest, RejectsDirectorySymlinksAndSiblingsThatShareThePrefix) {
  // A symlinked directory inside the root that leads out of it.
  ::mkdir((base_ + "/outside").c_str(), 0755);
  std::ofstream(base_ + "/outside/data.csv") << "1\n";
  Link(base_ + "/outside", root_ + "/linkdir");
  ExpectRejected("linkdir/data.csv", "outside --data_root");
  ExpectRejected(root_ + "/linkdir/data.csv", "outside --data_root");
  // "<root>2/x" starts with the root's characters but is not inside it.
  ::mkdir((root_ + "2").c_str(), 0755);
  std::ofstream(root_ + "2/data.csv") << "1\n";
  ExpectRejected(root_ + "2/data.csv", "outside --data_root");
  ExpectRejected("./../root2/data.csv", "\"..\"");
  // A path that leaves and re-enters through a symlink chain stays confined.
  Link(root_ + "/sub", base_ + "/outside/back");
  EXPECT_TRUE(ResolveDataPath(root_, "linkdir/back/train.csv", "f").ok())
      << "resolves into the root again";
}

TEST_F(DataPathsTest, SeveralRootsAreSearchedInOrderAndEachConfines) {
  const std::string other = base_ + "/other";
  ::mkdir(other.c_str(), 0755);
  std::ofstream(other + "/test.csv") << "1\n";
  const std::string roots = root_ + ":" + other;
  auto rel = ResolveDataPath(roots, "test.csv", "f");
  ASSERT_TRUE(rel.ok()) << rel.status();
  EXPECT_EQ(rel->substr(rel->size() - 15), "/other/test.csv");
  EXPECT_TRUE(ResolveDataPath(roots, other + "/test.csv", "f").ok()) << "absolute in root 2";
  EXPECT_TRUE(ResolveDataPath(roots, "sub/train.csv", "f").ok()) << "relative in root 1";
  auto out = ResolveDataPath(roots, base_ + "/secret.csv", "spec.data.test_path");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().message().rfind("spec.data.test_path: ", 0), 0u) << out.status();
  EXPECT_EQ(SplitDataRoots("a::b:"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(SplitDataRoots(""), (std::vector<std::string>{"."}));
}

TEST_F(DataPathsTest, ChecksEveryPathOfTheSpec) {
  DataSpec data;
  data.set_train_path("sub/train.csv");
  EXPECT_TRUE(CheckDataFiles(data, root_).ok());
  data.set_test_labels_path("missing-labels");
  const absl::Status s = CheckDataFiles(data, root_);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message().rfind("spec.data.test_labels_path: ", 0), 0u) << s;
  EXPECT_EQ(CheckDataFiles(data, base_ + "/no-root").code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ps
