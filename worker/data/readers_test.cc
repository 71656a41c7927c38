#include "worker/data/readers.h"

#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <climits>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ps::data {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) { return ::testing::TempDir() + name; }

std::string WritePlain(const std::string& name, const std::string& content) {
  const std::string path = TempPath(name);
  std::ofstream out(path, std::ios::binary);
  out << content;
  return path;
}

std::string WriteGz(const std::string& name, const std::string& content) {
  const std::string path = TempPath(name);
  gzFile f = gzopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  EXPECT_EQ(gzwrite(f, content.data(), static_cast<unsigned>(content.size())),
            static_cast<int>(content.size()));
  gzclose(f);
  return path;
}

ReadOptions Opts(uint32_t features, uint32_t classes, float scale = 1.0f) {
  ReadOptions o;
  o.num_features = features;
  o.num_classes = classes;
  o.feature_scale = scale;
  return o;
}

// Expects INVALID_ARGUMENT whose message starts with "<path>:<line>: " and holds
// `what`.
void ExpectLineError(const absl::Status& s, const std::string& path, int line,
                     const std::string& what) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  const std::string prefix = path + ":" + std::to_string(line) + ": ";
  EXPECT_TRUE(absl::StartsWith(s.message(), prefix)) << s << " should start with " << prefix;
  EXPECT_THAT(std::string(s.message()), HasSubstr(what));
}

// --- CSV ---------------------------------------------------------------------------

TEST(CsvTest, LabelLastNoHeader) {
  const std::string path = WritePlain("a.csv", "1,2,3,0\n4.5,-5,6e1,2\n");
  auto d = ReadCsv(path, Opts(3, 3), -1, false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->sparse);
  EXPECT_EQ(d->num_examples, 2);
  EXPECT_EQ(d->dense, (std::vector<float>{1, 2, 3, 4.5f, -5, 60}));
  EXPECT_EQ(d->labels, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(ValidateDataset(*d), "");
}

TEST(CsvTest, LabelFirstWithHeaderScaleCrlfAndBlankLines) {
  const std::string path = WritePlain(
      "b.csv", "label,x,y\r\n1, 2 ,4\r\n\r\n  \n0,8,16\n3.0,0,0");  // No final newline.
  auto d = ReadCsv(path, Opts(2, 4, 0.5f), 0, true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->num_examples, 3);
  EXPECT_EQ(d->dense, (std::vector<float>{1, 2, 4, 8, 0, 0}));
  EXPECT_EQ(d->labels, (std::vector<int32_t>{1, 0, 3}));
}

TEST(CsvTest, HeaderIsNotSkippedUnlessAsked) {
  const std::string path = WritePlain("h.csv", "x,y,label\n1,2,0\n");
  ExpectLineError(ReadCsv(path, Opts(2, 2), -1, false).status(), path, 1,
                  "is not a finite number");
}

TEST(CsvTest, GzipAndPlainReadTheSame) {
  std::string content;
  for (int i = 0; i < 5000; ++i) {
    content += std::to_string(i % 17) + "," + std::to_string(i % 5) + "," +
               std::to_string(i % 3) + "\n";
  }
  const std::string plain = WritePlain("c.csv", content);
  const std::string gz = WriteGz("c.csv.gz", content);
  auto a = ReadCsv(plain, Opts(2, 3), 2, false);
  auto b = ReadCsv(gz, Opts(2, 3), 2, false);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->num_examples, 5000);
  EXPECT_EQ(a->dense, b->dense);
  EXPECT_EQ(a->labels, b->labels);
  EXPECT_EQ(a->labels[7], 7 % 3);
  EXPECT_EQ(a->dense[2 * 7 + 1], 7 % 5);
}

TEST(CsvTest, WrongColumnCountNamesFileAndLine) {
  const std::string path = WritePlain("d.csv", "1,2,0\n1,2,1\n\n5,1\n");
  ExpectLineError(ReadCsv(path, Opts(2, 2), -1, false).status(), path, 4,
                  "expected 3 columns, got 2");
}

TEST(CsvTest, ErrorLinesCountTheHeaderInGzipToo) {
  const std::string path = WriteGz("e.csv.gz", "h1,h2\n1,0\nx,1\n");
  ExpectLineError(ReadCsv(path, Opts(1, 2), -1, true).status(), path, 3,
                  "column 1: \"x\" is not a finite number");
}

TEST(CsvTest, BadValues) {
  struct Case {
    std::string line;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"1,2,5", "label 5 outside [0, 3)"},
      {"1,2,-1", "label -1 outside [0, 3)"},
      {"1,2,1.5", "label \"1.5\" is not an integer"},
      {"1,nan,1", "is not a finite number"},
      {"1,inf,1", "is not a finite number"},
      {"1,1e999,1", "is not a finite number"},
      {"1,,1", "\"\" is not a finite number"},
      {"1,2x,1", "is not a finite number"},
      {"1,+-2,1", "is not a finite number"},
      {"1,2,1,", "expected 3 columns, got 4"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path =
        WritePlain("bad" + std::to_string(i) + ".csv", "0,0,0\n" + cases[i].line + "\n");
    SCOPED_TRACE(cases[i].line);
    ExpectLineError(ReadCsv(path, Opts(2, 3), -1, false).status(), path, 2, cases[i].what);
  }
}

TEST(CsvTest, AcceptsSignedAndExponentValues) {
  const std::string path = WritePlain("f.csv", "+1.5,-2e-1,+2\n");
  auto d = ReadCsv(path, Opts(2, 3), -1, false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->dense, (std::vector<float>{1.5f, -0.2f}));
  EXPECT_EQ(d->labels, (std::vector<int32_t>{2}));
}

TEST(CsvTest, BinaryGarbageIsAnErrorNotACrash) {
  std::string junk(4096, '\0');
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<char>((i * 131) % 256);
  const std::string path = WritePlain("junk.csv", junk);
  auto d = ReadCsv(path, Opts(3, 2), -1, false);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
  EXPECT_TRUE(absl::StartsWith(d.status().message(), path + ":")) << d.status();
}

TEST(CsvTest, TruncatedGzipIsDataLoss) {
  std::string content;
  for (int i = 0; i < 20000; ++i) content += std::to_string(i % 7) + ",1\n";
  const std::string whole = WriteGz("t.csv.gz", content);
  std::string bytes;
  {
    std::ifstream in(whole, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 100u);
  const std::string cut = WritePlain("t_cut.csv.gz", bytes.substr(0, bytes.size() / 2));
  auto d = ReadCsv(cut, Opts(1, 2), -1, false);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kDataLoss) << d.status();
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("t_cut.csv.gz"));
  ASSERT_TRUE(ReadCsv(whole, Opts(1, 2), -1, false).ok());
}

TEST(CsvTest, MissingFileIsNotFound) {
  auto d = ReadCsv(TempPath("nope.csv"), Opts(2, 2), -1, false);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("nope.csv"));
}

TEST(CsvTest, LabelColumnOutOfRange) {
  const std::string path = WritePlain("g.csv", "1,2,0\n");
  EXPECT_EQ(ReadCsv(path, Opts(2, 2), 3, false).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadCsv(path, Opts(2, 2), -2, false).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CsvTest, Digits) {
  auto d = ReadCsv("tests/data/digits.csv.gz", Opts(64, 10), -1, false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->num_examples, 1797);
  EXPECT_EQ(d->dense.size(), 1797u * 64u);
  std::vector<int> per_class(10);
  for (int32_t l : d->labels) ++per_class[static_cast<size_t>(l)];
  for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[static_cast<size_t>(c)], 150) << c;
  float max = 0;
  for (float v : d->dense) {
    ASSERT_GE(v, 0);
    ASSERT_EQ(v, static_cast<float>(static_cast<int>(v)));
    max = std::max(max, v);
  }
  EXPECT_EQ(max, 16);
}

// --- libsvm ------------------------------------------------------------------------

TEST(LibsvmTest, OneBasedPlusMinusLabelsCommentsAndBlankLines) {
  const std::string path = WritePlain("a.svm",
                                      "# header comment\n"
                                      "+1 1:0.5 3:2 # trailing\n"
                                      "\n"
                                      "-1 2:-1\n"
                                      "-1\n"
                                      "1\t4:1e1  1:3\n");
  auto d = ReadLibsvm(path, Opts(4, 2, 2.0f), true);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->sparse);
  EXPECT_EQ(d->num_examples, 4);
  EXPECT_EQ(d->labels, (std::vector<int32_t>{1, 0, 0, 1}));
  EXPECT_EQ(d->row_offsets, (std::vector<int64_t>{0, 2, 3, 3, 5}));
  EXPECT_EQ(d->indices, (std::vector<uint64_t>{0, 2, 1, 3, 0}));
  EXPECT_EQ(d->values, (std::vector<float>{1, 4, -2, 20, 6}));
  EXPECT_EQ(ValidateDataset(*d), "");
}

TEST(LibsvmTest, ZeroBasedZeroOneLabelsGzip) {
  const std::string path = WriteGz("b.svm.gz", "0 0:1 9:2\n1 5:3\n1.0 1:1\n");
  auto d = ReadLibsvm(path, Opts(10, 2), false);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->labels, (std::vector<int32_t>{0, 1, 1}));
  EXPECT_EQ(d->indices, (std::vector<uint64_t>{0, 9, 5, 1}));
}

TEST(LibsvmTest, Errors) {
  struct Case {
    std::string line;
    bool one_based;
    std::string what;
  };
  const std::vector<Case> cases = {
      {"1 0:1", true, "index 0 in 1-based data"},
      {"1 11:1", true, "feature 10 (1-based 11) >= num_features 10"},
      {"1 10:1", false, "feature 10 (0-based 10) >= num_features 10"},
      {"2 1:1", true, "label \"2\" is not one of -1, 0, +1"},
      {"abc 1:1", true, "label \"abc\" is not one of"},
      {"1 1", true, "token 2: \"1\" is not index:value"},
      {"1 1:x", true, "value \"x\" is not a finite number"},
      {"1 1:nan", true, "value \"nan\" is not a finite number"},
      {"1 -1:2", false, "index \"-1\" is not a non-negative integer"},
      {"1 qid:3 1:2", false, "index \"qid\""},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = WritePlain("bad" + std::to_string(i) + ".svm",
                                        "# c\n-1 1:1\n\n" + cases[i].line + "\n1 2:2\n");
    SCOPED_TRACE(cases[i].line);
    ExpectLineError(ReadLibsvm(path, Opts(10, 2), cases[i].one_based).status(), path, 4,
                    cases[i].what);
  }
}

TEST(LibsvmTest, NeedsTwoClasses) {
  const std::string path = WritePlain("c.svm", "1 1:1\n");
  EXPECT_EQ(ReadLibsvm(path, Opts(10, 3), true).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Regression (tests/fuzz/corpus/csv_reader/big_value_scaled): a finite value times
// feature_scale overflowed to Inf and reached the dataset.
TEST(ReadersTest, ScaledValueMustStayFinite) {
  const std::string csv = WritePlain("big.csv", "1,0\n3e38,1\n");
  ExpectLineError(ReadCsv(csv, Opts(1, 2, 1000.0f), -1, false).status(), csv, 2,
                  "times feature_scale is not finite");
  const std::string svm = WritePlain("big.svm", "1 1:1\n0 1:3e38\n");
  ExpectLineError(ReadLibsvm(svm, Opts(1, 2, 1000.0f), true).status(), svm, 2,
                  "times feature_scale is not finite");
  const std::string images = WritePlain("big_i.idx", std::string("\0\0\x08\x03", 4) +
                                                         std::string("\0\0\0\x01", 4) +
                                                         std::string("\0\0\0\x01", 4) +
                                                         std::string("\0\0\0\x01", 4) + "\xff");
  const std::string labels = WritePlain("big_l.idx", std::string("\0\0\x08\x01\0\0\0\x01\x01", 9));
  const absl::Status s = ReadIdx(images, labels, Opts(1, 2, 3e38f)).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("feature_scale"));
  EXPECT_TRUE(ReadIdx(images, labels, Opts(1, 2, 1.0f)).ok());
}

// --- IDX ---------------------------------------------------------------------------

std::string Be32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (24 - 8 * i));
  return s;
}

std::string IdxImages(uint32_t n, uint32_t rows, uint32_t cols) {
  std::string s = Be32(0x803) + Be32(n) + Be32(rows) + Be32(cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) s += static_cast<char>((i * 7) % 256);
  return s;
}

std::string IdxLabels(const std::vector<int>& labels) {
  std::string s = Be32(0x801) + Be32(static_cast<uint32_t>(labels.size()));
  for (int l : labels) s += static_cast<char>(l);
  return s;
}

TEST(IdxTest, ReadsPlainAndGzip) {
  const std::string images = IdxImages(3, 2, 3);
  const std::string labels = IdxLabels({4, 0, 9});
  for (bool gz : {false, true}) {
    SCOPED_TRACE(gz);
    const auto write = gz ? WriteGz : WritePlain;
    const std::string ip = write(gz ? "i.gz" : "i.idx", images);
    const std::string lp = write(gz ? "l.gz" : "l.idx", labels);
    auto d = ReadIdx(ip, lp, Opts(6, 10, 0.5f));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->num_examples, 3);
    EXPECT_EQ(d->labels, (std::vector<int32_t>{4, 0, 9}));
    ASSERT_EQ(d->dense.size(), 18u);
    for (uint32_t i = 0; i < 18; ++i) EXPECT_EQ(d->dense[i], 0.5f * ((i * 7) % 256)) << i;
  }
}

TEST(IdxTest, Errors) {
  const std::string good_images = WritePlain("gi.idx", IdxImages(3, 2, 3));
  const std::string good_labels = WritePlain("gl.idx", IdxLabels({1, 2, 3}));
  struct Case {
    std::string images;
    std::string labels;
    std::string bad_file;  // Which file the message must name.
    std::string what;
  };
  const std::vector<Case> cases = {
      {WritePlain("e1.idx", IdxLabels({1})), good_labels, "e1.idx", "bad magic 0x00000801"},
      {good_images, WritePlain("e2.idx", IdxLabels({1, 2})), "e2.idx",
       "2 labels for 3 images"},
      {good_images, WritePlain("e3.idx", IdxLabels({1, 12, 3})), "e3.idx",
       "label 1 is 12, num_classes is 10"},
      {WritePlain("e4.idx", IdxImages(3, 2, 3).substr(0, 30)), good_labels, "e4.idx",
       "truncated"},
      {WritePlain("e5.idx", IdxImages(3, 3, 3)), good_labels, "e5.idx",
       "3x3 = 9 features, the spec says num_features 6"},
      {WritePlain("e6.idx", IdxImages(3, 2, 3) + "x"), good_labels, "e6.idx",
       "trailing bytes"},
      {WritePlain("e7.idx", std::string("\x00\x00", 2)), good_labels, "e7.idx", "truncated"},
      {WritePlain("e8.idx", Be32(0x803) + Be32(0xffffffff) + Be32(2) + Be32(3)),
       WritePlain("e8l.idx", Be32(0x801) + Be32(0xffffffff)), "e8l.idx", "truncated"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto d = ReadIdx(c.images, c.labels, Opts(6, 10));
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << d.status();
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.bad_file));
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.what));
  }
}

constexpr char kFashion[] = "/usr/share/datasets/fashion-mnist/";

TEST(IdxTest, FashionMnistTestSet) {
  const std::string images = std::string(kFashion) + "t10k-images-idx3-ubyte.gz";
  const std::string labels = std::string(kFashion) + "t10k-labels-idx1-ubyte.gz";
  if (std::FILE* f = std::fopen(images.c_str(), "rb")) {
    std::fclose(f);
  } else {
    GTEST_SKIP() << images << " is absent (Debian package dataset-fashion-mnist)";
  }
  auto d = ReadIdx(images, labels, Opts(784, 10, 1.0f / 255));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->num_examples, 10000);
  std::map<int32_t, int> per_class;
  for (int32_t l : d->labels) ++per_class[l];
  ASSERT_EQ(per_class.size(), 10u);
  for (const auto& [label, count] : per_class) EXPECT_EQ(count, 1000) << label;
  float max = 0;
  for (float v : d->dense) max = std::max(max, v);
  EXPECT_EQ(max, 1.0f);
  EXPECT_EQ(ValidateDataset(*d), "");
}

// --- LoadData ----------------------------------------------------------------------

TEST(LoadDataTest, TestEverySplitsTheTrainingFile) {
  DataSpec spec;
  spec.set_format(CSV);
  // Runfiles are symlinks into the source tree, and data roots confine symlink
  // targets: the root is the folder of the real file.
  char real[PATH_MAX];
  ASSERT_NE(::realpath("tests/data/digits.csv.gz", real), nullptr);
  const std::string real_path = real;
  spec.set_train_path("digits.csv.gz");
  spec.set_num_features(64);
  spec.set_num_classes(10);
  spec.set_label_column(-1);
  spec.set_test_every(5);
  auto tt = LoadData(spec, real_path.substr(0, real_path.rfind('/')));
  ASSERT_TRUE(tt.ok()) << tt.status();
  EXPECT_EQ(tt->train.num_examples, 1438);
  EXPECT_EQ(tt->test.num_examples, 359);
  auto all = ReadCsv("tests/data/digits.csv.gz", Opts(64, 10), -1, false);
  ASSERT_TRUE(all.ok());
  // Test example j is file example 5j + 4; train example t skips every fifth.
  for (int64_t j = 0; j < tt->test.num_examples; ++j) {
    ASSERT_EQ(tt->test.labels[static_cast<size_t>(j)],
              all->labels[static_cast<size_t>(5 * j + 4)]);
  }
  for (int64_t t = 0; t < tt->train.num_examples; ++t) {
    const int64_t i = t / 4 * 5 + t % 4;
    ASSERT_EQ(tt->train.dense[static_cast<size_t>(t * 64 + 10)],
              all->dense[static_cast<size_t>(i * 64 + 10)]);
  }
}

TEST(LoadDataTest, RelativePathsUnderDataRootAndSeparateTestFile) {
  const std::string root = ::testing::TempDir() + "/root";
  ASSERT_EQ(std::system(("mkdir -p " + root + "/sub").c_str()), 0);
  std::ofstream(root + "/sub/train.svm") << "1 1:1\n-1 2:1\n1 3:1\n";
  std::ofstream(root + "/test.svm") << "1 1:1\n";
  DataSpec spec;
  spec.set_format(LIBSVM);
  spec.set_train_path("sub/train.svm");
  spec.set_test_path("test.svm");
  spec.set_num_features(3);
  spec.set_num_classes(2);
  spec.set_libsvm_one_based(true);
  spec.set_test_every(2);  // Ignored: test_path wins.
  auto tt = LoadData(spec, root);
  ASSERT_TRUE(tt.ok()) << tt.status();
  EXPECT_EQ(tt->train.num_examples, 3);
  EXPECT_EQ(tt->test.num_examples, 1);
  EXPECT_TRUE(tt->test.sparse);
}

TEST(LoadDataTest, NoTestSet) {
  const std::string path = WritePlain("n.csv", "1,0\n2,1\n");
  DataSpec spec;
  spec.set_format(CSV);
  spec.set_train_path(path);  // Absolute: must lie inside one of the roots.
  spec.set_num_features(1);
  spec.set_num_classes(2);
  spec.set_label_column(-1);
  EXPECT_EQ(LoadData(spec, "/nonexistent").status().code(), absl::StatusCode::kFailedPrecondition);
  auto tt = LoadData(spec, "/nonexistent:" + ::testing::TempDir());
  ASSERT_TRUE(tt.ok()) << tt.status();
  EXPECT_EQ(tt->train.num_examples, 2);
  EXPECT_EQ(tt->test.num_examples, 0);
  EXPECT_EQ(tt->test.num_features, 1u);
  EXPECT_EQ(ValidateDataset(tt->test), "");
}

TEST(LoadDataTest, RejectsDotDotAndReportsMissingFiles) {
  DataSpec spec;
  spec.set_format(CSV);
  spec.set_num_features(1);
  spec.set_num_classes(2);
  spec.set_train_path("a/../../etc/passwd");
  auto tt = LoadData(spec, "/data");
  EXPECT_EQ(tt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tt.status().message()), HasSubstr("spec.data.train_path"));
  spec.set_train_path("missing.csv");
  tt = LoadData(spec, ::testing::TempDir());
  EXPECT_EQ(tt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tt.status().message()), HasSubstr("does not exist"));
  spec.set_train_path("..");
  EXPECT_EQ(LoadData(spec, "/data").status().code(), absl::StatusCode::kInvalidArgument);
  // ".." inside a name is fine.
  const std::string dir = ::testing::TempDir() + "/a..b";
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  std::ofstream(dir + "/c") << "1,0\n";
  auto p = ResolveDataPath("a..b/c", ::testing::TempDir(), "f");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->substr(p->size() - 7), "/a..b/c");
}

TEST(LoadDataTest, IdxNeedsLabelsPath) {
  DataSpec spec;
  spec.set_format(IDX);
  spec.set_num_features(6);
  spec.set_num_classes(10);
  spec.set_train_path(WritePlain("x.idx", IdxImages(1, 2, 3)));
  auto tt = LoadData(spec, ::testing::TempDir());
  EXPECT_EQ(tt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(tt.status().message()), HasSubstr("train_labels_path"));
}

}  // namespace
}  // namespace ps::data
