// The Keras MirroredStrategy and PyTorch DataParallel examples (deploy/jobs/) on a real
// local cluster: ps_coordinator, 2 ps_server and 2 ps_worker processes on 127.0.0.1,
// driven through psctl, on data the test makes with deploy/data:gen_binary100 in a
// temporary --data_root.
//  - Each bundled job SUCCEEDS and its test accuracy clears the majority-class
//    fraction of the test set by a clear margin.
//  - GLOBAL_BATCH sharding: after 2 epochs (500 clocks of Adam), 2 SYNC workers with
//    batch 16 end with the parameters of 1 worker with batch 32, every element within
//    1e-5 relative to max(|element|, its tensor's RMS), while the default STRIDED
//    sharding, which deals other examples, does not (difference > 1e-2).
#include <sys/stat.h>
#include <sys/wait.h>

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "client/npz_reader.h"
#include "gtest/gtest.h"
#include "tests/util/process_cluster.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::LastLine;
using ::ps::testing::Runfile;

constexpr const char* kKerasJob = "deploy/jobs/keras_mirrored_binary.textproto";
constexpr const char* kTorchJob = "deploy/jobs/torch_dataparallel_binary.textproto";

class ExamplesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::string(std::getenv("TEST_TMPDIR")) + "/" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    root_ = dir_ + "/root";
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
    // The data, generated where the job specs' relative paths point.
    std::string out;
    const int rc = ps::testing::RunCommand(
        {Runfile("deploy/data/gen_binary100"), "--out_dir=" + root_ + "/deploy/data/binary100"},
        &out, dir_ + ".gen.log");
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << out;
    std::printf("%s", out.c_str());

    cluster_ = std::make_unique<ps::testing::ProcessCluster>(dir_, root_);
    ASSERT_TRUE(cluster_->Start(/*shards=*/2, /*workers=*/2).ok());
  }

  int Psctl(std::vector<std::string> args, std::string* out) {
    return cluster_->Psctl(std::move(args), out);
  }

  // Submits `spec_path`, waits for the end; `*json` gets `psctl status ID --json`.
  // Returns the job id, or "" after a failed expectation.
  std::string RunJob(const std::string& spec_path, std::string* json) {
    std::string out;
    EXPECT_EQ(Psctl({"submit", spec_path}, &out), 0) << out;
    const std::string id = LastLine(out);
    if (id.empty()) return "";
    EXPECT_EQ(Psctl({"watch", id}, &out), 0) << out;
    EXPECT_EQ(Psctl({"status", id, "--json"}, json), 0) << *json;
    EXPECT_NE(json->find("\"state\":\"SUCCEEDED\""), std::string::npos) << *json;
    return id;
  }

  // The fraction of the generated test set in its more frequent class.
  double MajorityFraction() {
    std::ifstream in(root_ + "/deploy/data/binary100/test.csv");
    std::string line;
    int64_t ones = 0, total = 0;
    while (std::getline(in, line)) {
      ones += line.back() == '1' ? 1 : 0;
      ++total;
    }
    EXPECT_EQ(total, 2000);
    return static_cast<double>(std::max(ones, total - ones)) / static_cast<double>(total);
  }

  // The bundled `job` with the "key: value" lines named in `edits` replaced, written
  // next to the logs; returns its path.
  std::string EditedSpec(const std::string& job, const std::string& name,
                         const std::map<std::string, std::string>& edits) {
    std::ifstream in(Runfile(job));
    std::stringstream text;
    text << in.rdbuf();
    std::string spec = text.str();
    for (const auto& [key, value] : edits) {
      const std::regex line("(^|\n)(\\s*)" + key + ": [^\n]*");
      EXPECT_TRUE(std::regex_search(spec, line)) << key;
      spec = std::regex_replace(spec, line, "$1$2" + key + ": " + value);
    }
    const std::string path = dir_ + "." + name + ".textproto";
    std::ofstream(path) << spec;
    return path;
  }

  std::map<std::string, NpyArray> Export(const std::string& id, const std::string& name) {
    std::string out;
    const std::string path = dir_ + "." + name + ".npz";
    EXPECT_EQ(Psctl({"export", id, "--out", path}, &out), 0) << out;
    absl::StatusOr<std::map<std::string, NpyArray>> arrays = ReadNpzForTest(path);
    EXPECT_TRUE(arrays.ok()) << arrays.status();
    return arrays.ok() ? *std::move(arrays) : std::map<std::string, NpyArray>();
  }

  std::string dir_, root_;
  std::unique_ptr<ps::testing::ProcessCluster> cluster_;
};

double JsonNumber(const std::string& json, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(json, m, std::regex(pattern))) return -1;
  return std::stod(m[1]);
}

TEST_F(ExamplesTest, BundledJobsBeatTheMajorityClass) {
  const double majority = MajorityFraction();
  for (const char* job : {kKerasJob, kTorchJob}) {
    std::string json;
    const std::string id = RunJob(Runfile(job), &json);
    ASSERT_FALSE(id.empty()) << job;
    const double accuracy =
        JsonNumber(json, "\"eval\":\\{[^}]*\"accuracy\":([-0-9.eE+]+)");
    const double loss = JsonNumber(json, "\"loss\":([-0-9.eE+]+)");
    std::printf("%s: %s test accuracy %.4f (majority class %.4f), last training loss %.4f\n",
                job, id.c_str(), accuracy, majority, loss);
    EXPECT_GE(accuracy, majority + 0.2) << json;
  }
}

TEST_F(ExamplesTest, TwoSyncWorkersEqualOneWorkerWithTheGlobalBatch) {
  const std::map<std::string, std::string> few = {{"epochs", "2"}};
  auto with = [&](std::map<std::string, std::string> edits) {
    edits.insert(few.begin(), few.end());
    return edits;
  };
  std::string json;
  const std::string two = RunJob(
      EditedSpec(kTorchJob, "two", with({{"num_workers", "2"}, {"batch_size", "16"}})), &json);
  const std::string one = RunJob(
      EditedSpec(kTorchJob, "one", with({{"num_workers", "1"}, {"batch_size", "32"}})), &json);
  const std::string strided =
      RunJob(EditedSpec(kTorchJob, "strided",
                        with({{"num_workers", "2"}, {"batch_size", "16"}, {"sharding", "STRIDED"}})),
             &json);
  ASSERT_FALSE(two.empty() || one.empty() || strided.empty());
  const std::map<std::string, NpyArray> a = Export(two, "two");
  const std::map<std::string, NpyArray> b = Export(one, "one");
  const std::map<std::string, NpyArray> c = Export(strided, "strided");
  ASSERT_EQ(a.size(), 4u);  // mlp.w0, mlp.b0, mlp.w1, mlp.b1.
  // Relative to the element, or to the tensor's RMS for elements below it: Adam's
  // steps of size ~learning_rate let an element pass near 0, where a last-bit
  // difference of the gradient sums (one sum of 32 rows versus two of 16) is a large
  // fraction of a tiny value.
  double max_rel = 0, max_elementwise = 0, max_strided = 0;
  for (const auto& [name, x] : a) {
    ASSERT_EQ(b.count(name), 1u) << name;
    ASSERT_EQ(c.count(name), 1u) << name;
    const NpyArray& y = b.at(name);
    const NpyArray& z = c.at(name);
    ASSERT_EQ(x.shape, y.shape) << name;
    ASSERT_EQ(x.values.size(), y.values.size()) << name;
    ASSERT_EQ(z.values.size(), y.values.size()) << name;
    double sum_sq = 0;
    for (float v : y.values) sum_sq += static_cast<double>(v) * v;
    const double rms = std::sqrt(sum_sq / static_cast<double>(y.values.size()));
    ASSERT_GT(rms, 0) << name;
    for (size_t i = 0; i < x.values.size(); ++i) {
      const double u = x.values[i], v = y.values[i], w = z.values[i];
      const double element = std::max(std::fabs(u), std::fabs(v));
      const double scale = std::max(element, rms);
      const double rel = std::fabs(u - v) / scale;
      EXPECT_LE(rel, 1e-5) << name << "[" << i << "]: " << u << " vs " << v;
      max_rel = std::max(max_rel, rel);
      if (element > 0) max_elementwise = std::max(max_elementwise, std::fabs(u - v) / element);
      max_strided = std::max(max_strided, std::fabs(w - v) / scale);
    }
  }
  std::printf(
      "2 workers x 16 vs 1 worker x 32, GLOBAL_BATCH: max difference %.3g relative to "
      "max(|element|, tensor RMS), %.3g relative to the element alone; 2 workers x 16 "
      "STRIDED vs 1 x 32: %.3g\n",
      max_rel, max_elementwise, max_strided);
  // The default sharding deals other examples: its model is not the same.
  EXPECT_GT(max_strided, 1e-2);
}

}  // namespace
}  // namespace ps
