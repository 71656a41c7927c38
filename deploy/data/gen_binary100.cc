// gen_binary100: writes the 100-feature binary data set of the Keras / PyTorch
// examples (deploy/jobs/keras_mirrored_binary.textproto,
// deploy/jobs/torch_dataparallel_binary.textproto).
//
//   gen_binary100 [--out_dir=deploy/data/binary100] [--seed=2024] [--train=8000]
//                 [--test=2000]
//
// writes OUT_DIR/train.csv and OUT_DIR/test.csv: one example per line, 100 features
// x_0..x_99 printed with 6 decimals, then the label (0 or 1), no header. It prints
// the class balance, and the test set's majority-class fraction (the accuracy of
// always answering the more frequent label), on stdout.
//
// How the examples are made:
//   - Inputs: x ~ N(0, I_100), each coordinate rounded to 6 decimals as written.
//   - Labels: a fixed random "teacher" network 100-10-1 with ReLU,
//       t(x) = sum_k v_k * relu(sum_j x_j W_jk + b_k) + c,
//     W_jk ~ N(0, 1/100), b_k ~ N(0, 1/4), v_k ~ N(0, 1), c = 0, evaluated in double
//     on the rounded inputs (so a label is a function of the written features).
//     y = 1 iff t(x) > theta, where theta is the 60th percentile of t over 10,000
//     calibration inputs: about 60% of the examples are 0 and 40% are 1, so the
//     majority-class baseline is about 0.60, not a coin flip. No label noise: the
//     student model (the same 100-10-1 shape) can in principle reach 1.0.
//   - Randomness: xoshiro256** streams seeded through SplitMix64 from (seed, stream),
//     one stream each for the teacher, the calibration inputs, the training and the
//     test examples, so --train does not change the teacher or the test set. Normal
//     deviates come from Box-Muller on 53-bit uniforms, written out here; the C++
//     standard library's distributions are implementation-defined and are not used.
//     The output is identical on every machine whose libm computes log, sqrt, sin
//     and cos correctly rounded (glibc does); only the 6-decimal rounding of such a
//     value at an exact tie could differ elsewhere.
//
// Exits 0 on success, 1 on bad flags or an unwritable --out_dir (created when missing,
// with its parents).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr int kFeatures = 100;
constexpr int kHidden = 10;
constexpr int kCalibration = 10000;
constexpr double kQuantile = 0.6;  // Fraction of examples labelled 0.

uint64_t SplitMix64(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

// xoshiro256** (Blackman and Vigna), seeded from SplitMix64 of (seed, stream).
class Xoshiro256 {
 public:
  Xoshiro256(uint64_t seed, uint64_t stream) {
    uint64_t sm = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    for (uint64_t& w : s_) w = SplitMix64(&sm);
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in (0, 1): 53 random bits, never 0 (log(0) is avoided).
  double Uniform() { return (static_cast<double>(Next() >> 11) + 0.5) / 9007199254740992.0; }

  // N(0, 1) by Box-Muller; the second deviate of each pair is kept for the next call.
  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(Uniform()));
    const double a = 6.283185307179586 * Uniform();
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0;
};

enum Stream : uint64_t { kTeacher = 1, kCalibrate = 2, kTrain = 3, kTest = 4 };

struct Teacher {
  std::vector<double> w;  // [kFeatures x kHidden], row-major.
  std::vector<double> b;  // [kHidden].
  std::vector<double> v;  // [kHidden].

  explicit Teacher(uint64_t seed) : w(kFeatures * kHidden), b(kHidden), v(kHidden) {
    Xoshiro256 rng(seed, kTeacher);
    for (double& x : w) x = rng.Normal() / std::sqrt(static_cast<double>(kFeatures));
    for (double& x : b) x = 0.5 * rng.Normal();
    for (double& x : v) x = rng.Normal();
  }

  double Output(const double* x) const {
    double out = 0;
    for (int k = 0; k < kHidden; ++k) {
      double h = b[k];
      for (int j = 0; j < kFeatures; ++j) h += x[j] * w[j * kHidden + k];
      out += v[k] * std::max(h, 0.0);
    }
    return out;
  }
};

// One example's features, rounded to the 6 decimals the file holds; `text` gets them
// formatted, comma-separated, with a trailing comma.
void DrawExample(Xoshiro256* rng, double* x, std::string* text) {
  text->clear();
  char buf[32];
  for (int j = 0; j < kFeatures; ++j) {
    std::snprintf(buf, sizeof(buf), "%.6f,", rng->Normal());
    // Reading the printed value back makes the label a function of the file.
    x[j] = std::strtod(buf, nullptr);
    text->append(buf);
  }
}

bool MakeDirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i < path.size() && path[i] != '/') continue;
    const std::string prefix = path.substr(0, i);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) return false;
  }
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Writes `n` examples of `stream`; returns the number labelled 1, or -1 on an error.
int64_t WriteSet(const std::string& path, int64_t n, uint64_t seed, uint64_t stream,
                 const Teacher& teacher, double theta) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    std::fprintf(stderr, "gen_binary100: cannot write %s: %s\n", path.c_str(),
                 std::strerror(errno));
    return -1;
  }
  Xoshiro256 rng(seed, stream);
  double x[kFeatures];
  std::string line;
  int64_t ones = 0;
  for (int64_t i = 0; i < n; ++i) {
    DrawExample(&rng, x, &line);
    const int label = teacher.Output(x) > theta ? 1 : 0;
    ones += label;
    line += label ? "1\n" : "0\n";
    std::fwrite(line.data(), 1, line.size(), f);
  }
  if (std::fclose(f) != 0) {
    std::fprintf(stderr, "gen_binary100: writing %s failed\n", path.c_str());
    return -1;
  }
  return ones;
}

// Parses "--name=value" into *out when `arg` is that flag.
bool FlagValue(const char* arg, const char* name, std::string* out) {
  const size_t len = std::strlen(name);
  if (std::strncmp(arg, name, len) != 0 || arg[len] != '=') return false;
  *out = arg + len + 1;
  return true;
}

bool ParseCount(const std::string& s, int64_t max, int64_t* out) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < 1 || v > max) return false;
  *out = v;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_dir = "deploy/data/binary100";
  std::string value;
  uint64_t seed = 2024;
  int64_t train = 8000, test = 2000;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    bool ok = true;
    if (FlagValue(a, "--out_dir", &value)) {
      out_dir = value;
      ok = !value.empty();
    } else if (FlagValue(a, "--seed", &value)) {
      char* end = nullptr;
      errno = 0;
      seed = std::strtoull(value.c_str(), &end, 10);
      ok = !value.empty() && *end == '\0' && errno == 0 && value[0] != '-';
    } else if (FlagValue(a, "--train", &value)) {
      ok = ParseCount(value, 100000000, &train);
    } else if (FlagValue(a, "--test", &value)) {
      ok = ParseCount(value, 100000000, &test);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "gen_binary100: bad argument %s\nusage: gen_binary100 [--out_dir=DIR] "
                   "[--seed=N] [--train=1..1e8] [--test=1..1e8]\n",
                   a);
      return 1;
    }
  }
  if (!MakeDirs(out_dir)) {
    std::fprintf(stderr, "gen_binary100: cannot create --out_dir=%s: %s\n", out_dir.c_str(),
                 std::strerror(errno));
    return 1;
  }

  const Teacher teacher(seed);
  std::vector<double> outputs(kCalibration);
  {
    Xoshiro256 rng(seed, kCalibrate);
    double x[kFeatures];
    std::string unused;
    for (double& t : outputs) {
      DrawExample(&rng, x, &unused);
      t = teacher.Output(x);
    }
  }
  std::sort(outputs.begin(), outputs.end());
  const double theta = outputs[static_cast<size_t>(kQuantile * kCalibration)];

  const int64_t train_ones =
      WriteSet(out_dir + "/train.csv", train, seed, kTrain, teacher, theta);
  const int64_t test_ones = WriteSet(out_dir + "/test.csv", test, seed, kTest, teacher, theta);
  if (train_ones < 0 || test_ones < 0) return 1;
  const double test_majority =
      static_cast<double>(std::max(test_ones, test - test_ones)) / static_cast<double>(test);
  std::printf("wrote %s/train.csv: %lld examples, %.2f%% label 1\n", out_dir.c_str(),
              static_cast<long long>(train), 100.0 * train_ones / train);
  std::printf("wrote %s/test.csv: %lld examples, %.2f%% label 1\n", out_dir.c_str(),
              static_cast<long long>(test), 100.0 * test_ones / test);
  std::printf("test majority-class accuracy %.4f\n", test_majority);
  return 0;
}
