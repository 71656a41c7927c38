// A real cluster of processes (coordinator, 2 shards, 3 workers) driven through psctl:
// submit, watch, status --json, list, cluster, export, cancel, invalid specs, two
// jobs at once, and a SIGKILLed coordinator that comes back on the same data_dir.
#include <signal.h>
#include <sys/wait.h>

#include <sys/stat.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/process_cluster.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::LastLine;
using ::ps::testing::Runfile;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = ps::testing::SourceRoot("tests/data/digits.csv.gz");
    cluster_ = std::make_unique<ps::testing::ProcessCluster>(dir_, root_);
    ASSERT_TRUE(cluster_->Start(/*shards=*/2, /*workers=*/3).ok());
  }

  int Psctl(std::vector<std::string> args, std::string* out) {
    return cluster_->Psctl(std::move(args), out);
  }

  // The bundled digits job with the top-level fields named in `edits` replaced by them.
  std::string Spec(const std::string& name, const std::string& edits) {
    std::set<std::string> replaced;
    for (const std::string& f : TopLevelFields(edits)) replaced.insert(f);
    std::ifstream in(Runfile("deploy/jobs/digits_softmax.textproto"));
    std::string line, text;
    int depth = 0;
    bool skipping = false;
    while (std::getline(in, line)) {
      if (depth == 0) {
        const std::vector<std::string> f = TopLevelFields(line);
        skipping = !f.empty() && replaced.count(f[0]) > 0;
      }
      for (char c : line) depth += c == '{' ? 1 : c == '}' ? -1 : 0;
      if (!skipping) text += line + "\n";
    }
    const std::string path = dir_ + "." + name + ".textproto";
    std::ofstream(path) << text << edits << "\n";
    return path;
  }

  // Names of the fields at brace depth 0 of a text proto snippet.
  static std::vector<std::string> TopLevelFields(const std::string& text) {
    std::vector<std::string> out;
    int depth = 0;
    std::string word;
    for (char c : text) {
      if (depth == 0 && (std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
        word += c;
        continue;
      }
      if (depth == 0 && !word.empty() && (c == ':' || c == '{' || c == ' ')) {
        out.push_back(word);
        word.clear();
        // Skip the value of a scalar field.
      }
      if (c == '{') ++depth;
      if (c == '}') --depth;
      if (c != ' ') word.clear();
    }
    if (!word.empty() && depth == 0) out.push_back(word);
    return out;
  }


  std::string dir_, root_;
  std::unique_ptr<ps::testing::ProcessCluster> cluster_;
};

TEST_F(ClusterTest, JobsThroughPsctl) {
  std::string out;
  // Invalid specs: each its own error, exit code 5.
  const struct {
    const char* edits;
    const char* field;
  } bad[] = {
      {"model { }", "spec.model"},
      {"data { format: CSV train_path: \"tests/data/nope.csv.gz\" test_every: 5 "
       "num_features: 64 num_classes: 10 label_column: -1 }",
       "spec.data.train_path"},
      {"num_workers: 0", "spec.num_workers"},
      {"optimizer { sgd {} learning_rate: -0.5 }", "spec.optimizer.learning_rate"},
      {"consistency { mode: SYNC staleness: 2 }", "spec.consistency.staleness"},
  };
  for (const auto& b : bad) {
    std::string err;
    EXPECT_EQ(Psctl({"submit", Spec("bad", b.edits)}, &out), 5) << b.edits;
    std::ifstream log(dir_ + ".psctl.log");
    std::string all((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    EXPECT_NE(all.rfind(b.field), std::string::npos) << b.edits;
  }

  // Two jobs at once (2 + 1 workers), both succeed.
  ASSERT_EQ(Psctl({"submit", Spec("two", "")}, &out), 0);
  const std::string a = LastLine(out);
  ASSERT_EQ(Psctl({"submit", Spec("one", "num_workers: 1 epochs: 10")}, &out), 0);
  const std::string b = LastLine(out);
  EXPECT_NE(a, b);
  EXPECT_EQ(Psctl({"watch", a}, &out), 0) << out;
  EXPECT_EQ(Psctl({"watch", b}, &out), 0) << out;
  ASSERT_EQ(Psctl({"status", a, "--json"}, &out), 0);
  EXPECT_NE(out.find("\"state\":\"SUCCEEDED\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"accuracy\":0.9"), std::string::npos) << out;
  ASSERT_EQ(Psctl({"list"}, &out), 0);
  EXPECT_NE(out.find(a), std::string::npos);
  EXPECT_NE(out.find(b), std::string::npos);
  ASSERT_EQ(Psctl({"cluster"}, &out), 0);
  EXPECT_NE(out.find("shard"), std::string::npos);
  EXPECT_NE(out.find("worker"), std::string::npos);

  // Export: numpy loads it with the model's shapes.
  const std::string npz = dir_ + ".model.npz";
  ASSERT_EQ(Psctl({"export", a, "--out", npz}, &out), 0);
  std::string py;
  const int rc = ps::testing::RunCommand(
      {"/usr/bin/python3", "-c",
       "import numpy, sys; d = numpy.load(sys.argv[1]); "
       "print(sorted((k, d[k].shape) for k in d.files))",
       npz},
      &py);
  if (WIFEXITED(rc) && WEXITSTATUS(rc) == 0) {
    EXPECT_NE(py.find("('softmax.w', (64, 10))"), std::string::npos) << py;
    EXPECT_NE(py.find("('softmax.b', (10,))"), std::string::npos) << py;
  } else {
    std::printf("numpy is not installed; the .npz was not loaded\n");
  }

  // Cancel a long job.
  ASSERT_EQ(Psctl({"submit", Spec("long", "epochs: 100000")}, &out), 0);
  const std::string c = LastLine(out);
  EXPECT_EQ(Psctl({"cancel", c}, &out), 0);
  EXPECT_EQ(Psctl({"watch", c}, &out), 4);  // CANCELLED.
  EXPECT_EQ(Psctl({"status", "job-999999"}, &out), 6);
}

TEST_F(ClusterTest, CoordinatorSigkillMidJob) {
  std::string out;
  ASSERT_EQ(Psctl({"submit", Spec("first", "")}, &out), 0);
  const std::string first = LastLine(out);
  ASSERT_EQ(Psctl({"watch", first}, &out), 0);
  ASSERT_EQ(Psctl({"submit", Spec("slow", "epochs: 150")}, &out), 0);
  const std::string job = LastLine(out);
  // Wait until it runs, then kill the coordinator and bring it back on its port.
  for (int i = 0; i < 100; ++i) {
    Psctl({"status", job, "--json"}, &out);
    if (out.find("\"state\":\"RUNNING\"") != std::string::npos &&
        out.find("\"clock\":0,") == std::string::npos) {
      break;
    }
    ps::testing::RunCommand({"/bin/sleep", "0.1"}, &out);
  }
  const std::string address = cluster_->coordinator().address();
  cluster_->coordinator().Kill(SIGKILL);
  ASSERT_TRUE(
      cluster_->StartCoordinator(std::atoi(address.substr(address.rfind(':') + 1).c_str())).ok());
  ASSERT_EQ(cluster_->coordinator().address(), address);
  EXPECT_EQ(Psctl({"watch", job}, &out), 0) << out;
  ASSERT_EQ(Psctl({"list"}, &out), 0);
  EXPECT_NE(out.find(first), std::string::npos) << out;
  EXPECT_NE(out.find(job), std::string::npos) << out;
}

}  // namespace
}  // namespace ps
