#include "worker/compute/cpu_backend.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/compute/backend.h"
#include "worker/compute/openblas_gemm.h"

namespace ps::compute {
namespace {

// Deterministic pseudo-random floats in [-1, 1).
std::vector<float> Random(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (float& f : v) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    f = static_cast<float>(static_cast<double>(x >> 40) / static_cast<double>(1 << 23) - 1.0);
  }
  return v;
}

// max |got - want| / max(max |want|, 1e-30): a normwise relative error.
double RelError(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    norm = std::max(norm, std::fabs(want[i]));
  }
  return diff / std::max(norm, 1e-30);
}

// Row-major op(X) as a plain matrix of doubles: rows x cols after the transpose.
std::vector<double> Op(const std::vector<float>& x, bool trans, int64_t rows, int64_t cols) {
  std::vector<double> out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      out[static_cast<size_t>(i * cols + j)] =
          trans ? x[static_cast<size_t>(j * rows + i)] : x[static_cast<size_t>(i * cols + j)];
    }
  }
  return out;
}

std::vector<double> ReferenceGemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                                  float alpha, const std::vector<float>& a,
                                  const std::vector<float>& b, float beta,
                                  const std::vector<float>& c) {
  const std::vector<double> oa = Op(a, ta, m, k), ob = Op(b, tb, k, n);
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        s += oa[static_cast<size_t>(i * k + p)] * ob[static_cast<size_t>(p * n + j)];
      }
      const size_t ij = static_cast<size_t>(i * n + j);
      out[ij] = alpha * s + (beta == 0 ? 0.0 : beta * static_cast<double>(c[ij]));
    }
  }
  return out;
}

class GemmTest : public ::testing::TestWithParam<bool> {
 protected:
  std::unique_ptr<Backend> backend_ =
      GetParam() ? CreateOpenBlasBackend() : CreateCpuBackend();
};

TEST_P(GemmTest, AllTransposesAlphaBetaAgainstReference) {
  Backend& be = *backend_;
  const int64_t m = 7, n = 13, k = 29;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (float beta : {0.0f, 0.5f}) {
        SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb << " beta=" << beta);
        const std::vector<float> a = Random(m * k, 1), b = Random(k * n, 2);
        std::vector<float> c0 = Random(m * n, 3);
        if (beta == 0.0f) c0[5] = std::numeric_limits<float>::quiet_NaN();  // Not read.
        Buffer da = be.Upload(a), db = be.Upload(b), dc = be.Upload(c0);
        be.Gemm(ta, tb, m, n, k, 1.5f, da, db, beta, &dc);
        std::vector<float> got;
        ASSERT_TRUE(be.Download(dc, &got).ok());
        EXPECT_LT(RelError(got, ReferenceGemm(ta, tb, m, n, k, 1.5f, a, b, beta, c0)), 1e-6);
      }
    }
  }
}

TEST_P(GemmTest, LargerOddShapesAndDeterminism) {
  Backend& be = *backend_;
  const int64_t m = 67, n = 131, k = 257;
  const std::vector<float> a = Random(m * k, 4), b = Random(k * n, 5);
  Buffer da = be.Upload(a), db = be.Upload(b);
  Buffer dc = be.Allocate(DType::kFloat32, m * n);
  be.Gemm(false, true, m, n, k, 1.0f, da, db, 0.0f, &dc);
  std::vector<float> first, second;
  ASSERT_TRUE(be.Download(dc, &first).ok());
  be.Gemm(false, true, m, n, k, 1.0f, da, db, 0.0f, &dc);
  ASSERT_TRUE(be.Download(dc, &second).ok());
  EXPECT_EQ(first, second);
  EXPECT_LT(RelError(first, ReferenceGemm(false, true, m, n, k, 1.0f, a, b, 0.0f, first)), 1e-5);
}

TEST_P(GemmTest, EmptyInnerDimensionScalesC) {
  Backend& be = *backend_;
  Buffer da = be.Allocate(DType::kFloat32, 0), db = be.Allocate(DType::kFloat32, 0);
  Buffer dc = be.Upload(std::vector<float>{1, 2, 3, 4});
  be.Gemm(false, false, 2, 2, 0, 1.0f, da, db, 3.0f, &dc);
  std::vector<float> got;
  ASSERT_TRUE(be.Download(dc, &got).ok());
  EXPECT_EQ(got, (std::vector<float>{3, 6, 9, 12}));
  be.Gemm(false, false, 2, 2, 0, 1.0f, da, db, 0.0f, &dc);
  ASSERT_TRUE(be.Download(dc, &got).ok());
  EXPECT_EQ(got, (std::vector<float>{0, 0, 0, 0}));
}

INSTANTIATE_TEST_SUITE_P(NaiveAndOpenBlas, GemmTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("OpenBlas") : std::string("Naive");
                         });

class CpuOpsTest : public ::testing::Test {
 protected:
  std::vector<float> Get(const Buffer& b) {
    std::vector<float> out;
    const ComputeStatus s = be_->Download(b, &out);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::unique_ptr<Backend> be_ = CreateOpenBlasBackend();
};

TEST_F(CpuOpsTest, AddBiasAndColumnSums) {
  const int64_t m = 5, n = 3;
  const std::vector<float> x = Random(m * n, 7), bias = Random(n, 8);
  Buffer dx = be_->Upload(x), db = be_->Upload(bias);
  be_->AddBias(m, n, db, &dx);
  const std::vector<float> y = Get(dx);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      const auto ij = static_cast<size_t>(i * n + j);
      EXPECT_EQ(y[ij], x[ij] + bias[static_cast<size_t>(j)]);
    }
  }
  std::vector<float> start = {10, 20, std::numeric_limits<float>::quiet_NaN()};
  Buffer out = be_->Upload(start);
  be_->ColumnSums(m, n, 0.5f, dx, 0.0f, &out);  // beta 0: the NaN is not read.
  const std::vector<float> s0 = Get(out);
  be_->ColumnSums(m, n, 1.0f, dx, 2.0f, &out);
  const std::vector<float> s1 = Get(out);
  for (int64_t j = 0; j < n; ++j) {
    double want = 0;
    for (int64_t i = 0; i < m; ++i) want += y[static_cast<size_t>(i * n + j)];
    EXPECT_NEAR(s0[static_cast<size_t>(j)], 0.5 * want, 1e-6);
    EXPECT_NEAR(s1[static_cast<size_t>(j)], want + 2 * s0[static_cast<size_t>(j)], 1e-5);
  }
  // m == 0: a sum over no rows.
  be_->ColumnSums(0, n, 1.0f, dx, 0.0f, &out);
  EXPECT_EQ(Get(out), (std::vector<float>{0, 0, 0}));
}

TEST_F(CpuOpsTest, ReluForwardBackwardInPlace) {
  const std::vector<float> x = {-2, -0.0f, 0, 0.5f, 3};
  const std::vector<float> dy = {1, 2, 3, 4, 5};
  Buffer dx = be_->Upload(x), ddy = be_->Upload(dy);
  be_->Relu(5, dx, &dx);
  EXPECT_EQ(Get(dx), (std::vector<float>{0, 0, 0, 0.5f, 3}));
  be_->ReluBackward(5, dx, ddy, &ddy);
  EXPECT_EQ(Get(ddy), (std::vector<float>{0, 0, 0, 4, 5}));
}

TEST_F(CpuOpsTest, AxpyScaleFill) {
  Buffer x = be_->Upload(std::vector<float>{1, 2, 3});
  Buffer y = be_->Upload(std::vector<float>{10, 20, 30});
  be_->Axpy(3, -2.0f, x, &y);
  EXPECT_EQ(Get(y), (std::vector<float>{8, 16, 24}));
  be_->Scale(2, 0.5f, &y);
  EXPECT_EQ(Get(y), (std::vector<float>{4, 8, 24}));
  be_->Fill(3, 7.0f, &y);
  EXPECT_EQ(Get(y), (std::vector<float>{7, 7, 7}));
}

TEST_F(CpuOpsTest, SoftmaxCrossEntropyMatchesDoubleReference) {
  const int64_t m = 4, c = 6;
  std::vector<float> z = Random(m * c, 9);
  for (float& v : z) v *= 5;
  z[6] = 1000.0f;  // Row 1 would overflow exp() without the max shift.
  z[7] = -1000.0f;
  const std::vector<int32_t> labels = {0, 1, 5, 2};
  Buffer dz = be_->Upload(z), dl = be_->Upload(labels);
  Buffer loss = be_->Allocate(DType::kFloat32, m), grad = be_->Allocate(DType::kFloat32, m * c);
  be_->SoftmaxCrossEntropy(m, c, dz, dl, 0.25f, &loss, &grad);
  const std::vector<float> got_loss = Get(loss), got_grad = Get(grad);
  for (int64_t i = 0; i < m; ++i) {
    double mx = -1e300, s = 0;
    for (int64_t j = 0; j < c; ++j) mx = std::max<double>(mx, z[static_cast<size_t>(i * c + j)]);
    for (int64_t j = 0; j < c; ++j) s += std::exp(z[static_cast<size_t>(i * c + j)] - mx);
    const int32_t y = labels[static_cast<size_t>(i)];
    const double want = mx + std::log(s) - z[static_cast<size_t>(i * c + y)];
    EXPECT_NEAR(got_loss[static_cast<size_t>(i)], want, 1e-5 * std::max(1.0, want)) << i;
    for (int64_t j = 0; j < c; ++j) {
      const double p = std::exp(z[static_cast<size_t>(i * c + j)] - mx) / s;
      EXPECT_NEAR(got_grad[static_cast<size_t>(i * c + j)], 0.25 * (p - (j == y)), 1e-6);
    }
  }
  EXPECT_TRUE(std::isfinite(got_loss[1]));
  // In place (dlogits = logits) gives the same, and no dlogits works too.
  be_->SoftmaxCrossEntropy(m, c, dz, dl, 0.25f, &loss, &dz);
  EXPECT_EQ(Get(dz), got_grad);
  Buffer dz2 = be_->Upload(z);
  be_->SoftmaxCrossEntropy(m, c, dz2, dl, 0.25f, &loss, nullptr);
  EXPECT_EQ(Get(loss), got_loss);
  // An out-of-range label makes its row's loss NaN.
  Buffer bad = be_->Upload(std::vector<int32_t>{0, 6, -1, 2});
  be_->SoftmaxCrossEntropy(m, c, dz2, bad, 1.0f, &loss, nullptr);
  const std::vector<float> l = Get(loss);
  EXPECT_FALSE(std::isnan(l[0]));
  EXPECT_TRUE(std::isnan(l[1]));
  EXPECT_TRUE(std::isnan(l[2]));
}

TEST_F(CpuOpsTest, SigmoidCrossEntropyIsStable) {
  const std::vector<float> z = {-100, -3, -0.5f, 0, 0.5f, 3, 100, 100};
  const std::vector<int32_t> y = {0, 1, 0, 1, 1, 0, 1, 0};
  Buffer dz = be_->Upload(z), dy = be_->Upload(y);
  Buffer loss = be_->Allocate(DType::kFloat32, 8), grad = be_->Allocate(DType::kFloat32, 8),
         prob = be_->Allocate(DType::kFloat32, 8);
  be_->SigmoidCrossEntropy(8, dz, dy, 0.5f, &loss, &grad, &prob);
  const std::vector<float> l = Get(loss), g = Get(grad), p = Get(prob);
  for (size_t i = 0; i < z.size(); ++i) {
    const double pz = 1 / (1 + std::exp(-static_cast<double>(z[i])));
    // -log p for y=1, -log(1-p) for y=0, in a form that is exact for large |z|.
    const double want = y[i] == 1 ? std::log1p(std::exp(-static_cast<double>(z[i])))
                                  : std::log1p(std::exp(static_cast<double>(z[i])));
    EXPECT_NEAR(l[i], want, 1e-5 * std::max(1.0, want)) << i;
    EXPECT_NEAR(p[i], pz, 1e-6) << i;
    EXPECT_NEAR(g[i], 0.5 * (pz - y[i]), 1e-6) << i;
  }
  EXPECT_EQ(l[7], 100.0f);  // Confidently wrong: loss = z, not inf.
  EXPECT_GT(l[0], 0.0f);    // Confidently right: tiny but positive.
  // Null outputs are allowed.
  be_->SigmoidCrossEntropy(8, dz, dy, 1.0f, &loss, nullptr, nullptr);
  EXPECT_EQ(Get(loss), l);
}

TEST_F(CpuOpsTest, CsrMatMulGathersAndItsTransposeScatters) {
  // S [3 x 4] with a repeated column and an empty row; B [4 x 2].
  const std::vector<int32_t> offsets = {0, 2, 2, 5};
  const std::vector<int32_t> indices = {1, 3, 0, 1, 1};
  const std::vector<float> values = {2, -1, 0.5f, 3, 1};
  const std::vector<float> b = {1, 2, 3, 4, 5, 6, 7, 8};
  Buffer o = be_->Upload(offsets), ix = be_->Upload(indices), v = be_->Upload(values);
  Buffer db = be_->Upload(b), dc = be_->Upload(std::vector<float>(6, 1.0f));
  be_->CsrMatMul(3, 4, 2, 5, o, ix, v, 1.0f, db, 0.0f, &dc);
  // Dense reference.
  std::vector<double> s(12, 0.0);
  for (int i = 0; i < 3; ++i) {
    for (int j = offsets[static_cast<size_t>(i)]; j < offsets[static_cast<size_t>(i) + 1]; ++j) {
      s[static_cast<size_t>(i * 4 + indices[static_cast<size_t>(j)])] += values[static_cast<size_t>(j)];
    }
  }
  std::vector<double> want(6, 0.0);
  for (int i = 0; i < 3; ++i)
    for (int d = 0; d < 2; ++d)
      for (int p = 0; p < 4; ++p)
        want[static_cast<size_t>(i * 2 + d)] += s[static_cast<size_t>(i * 4 + p)] * b[static_cast<size_t>(p * 2 + d)];
  EXPECT_LT(RelError(Get(dc), want), 1e-7);
  // alpha/beta.
  be_->CsrMatMul(3, 4, 2, 5, o, ix, v, 2.0f, db, -1.0f, &dc);
  EXPECT_LT(RelError(Get(dc), want), 1e-7);  // 2x - x = x.

  // S^T [4 x 3] as CSR, applied to G [3 x 2]: the scatter-add of row gradients.
  const std::vector<int32_t> t_offsets = {0, 1, 4, 4, 5};
  const std::vector<int32_t> t_indices = {2, 0, 2, 2, 0};
  const std::vector<float> t_values = {0.5f, 2, 3, 1, -1};
  const std::vector<float> g = {1, -1, 2, 2, 0.5f, 4};
  Buffer to = be_->Upload(t_offsets), ti = be_->Upload(t_indices), tv = be_->Upload(t_values);
  Buffer dg = be_->Upload(g), out = be_->Allocate(DType::kFloat32, 8);
  be_->CsrMatMul(4, 3, 2, 5, to, ti, tv, 1.0f, dg, 0.0f, &out);
  std::vector<double> want_t(8, 0.0);
  for (int p = 0; p < 4; ++p)
    for (int d = 0; d < 2; ++d)
      for (int i = 0; i < 3; ++i)
        want_t[static_cast<size_t>(p * 2 + d)] += s[static_cast<size_t>(i * 4 + p)] * g[static_cast<size_t>(i * 2 + d)];
  EXPECT_LT(RelError(Get(out), want_t), 1e-7);
}

TEST_F(CpuOpsTest, CsrMatMulRejectsBadStructure) {
  Buffer o = be_->Upload(std::vector<int32_t>{0, 1}), ix = be_->Upload(std::vector<int32_t>{4});
  Buffer v = be_->Upload(std::vector<float>{1}), b = be_->Upload(std::vector<float>(4));
  Buffer c = be_->Allocate(DType::kFloat32, 1);
  be_->CsrMatMul(1, 4, 1, 1, o, ix, v, 1.0f, b, 0.0f, &c);
  const ComputeStatus s = be_->Sync();
  EXPECT_EQ(s.code(), ComputeStatus::Code::kInvalidArgument);
  EXPECT_NE(s.message().find("column 4 outside [0, 4)"), std::string::npos) << s.ToString();
}

TEST(BackendChecksTest, ErrorsAreStickyNamedAndCleared) {
  std::unique_ptr<Backend> be = CreateCpuBackend();
  Buffer a = be->Upload(std::vector<float>(6, 1.0f));
  Buffer b = be->Upload(std::vector<float>(6, 1.0f));
  Buffer c = be->Upload(std::vector<float>(4, 5.0f));
  be->Gemm(false, false, 2, 2, 4, 1.0f, a, b, 0.0f, &c);  // A needs 8 elements.
  be->Fill(4, 9.0f, &c);                                  // Skipped: an error is pending.
  std::vector<float> got(4);
  ComputeStatus s = be->CopyToHost(c, 4, got.data());
  EXPECT_EQ(s.code(), ComputeStatus::Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "Gemm: A has 6 elements, needs 8");
  // Cleared: the next calls work, and C was never touched.
  ASSERT_TRUE(be->CopyToHost(c, 4, got.data()).ok());
  EXPECT_EQ(got, (std::vector<float>(4, 5.0f)));
  EXPECT_TRUE(be->Sync().ok());
}

TEST(BackendChecksTest, TypeOwnerAliasAndDimensionChecks) {
  std::unique_ptr<Backend> be = CreateCpuBackend();
  std::unique_ptr<Backend> other = CreateCpuBackend();
  Buffer f = be->Upload(std::vector<float>(4, 1.0f));
  Buffer i = be->Upload(std::vector<int32_t>(4, 1));
  Buffer foreign = other->Upload(std::vector<float>(4, 1.0f));
  Buffer loss = be->Allocate(DType::kFloat32, 2);

  be->SoftmaxCrossEntropy(2, 2, f, f, 1.0f, &loss, nullptr);
  EXPECT_EQ(be->Sync().message(), "SoftmaxCrossEntropy: labels is float32, needs int32");
  be->Relu(4, foreign, &f);
  EXPECT_EQ(be->Sync().message(), "Relu: x belongs to another backend");
  Buffer empty;
  be->Relu(4, f, &empty);
  EXPECT_EQ(be->Sync().message(), "Relu: y is an empty buffer");
  be->Gemm(false, false, 2, 2, 2, 1.0f, f, f, 0.0f, &f);
  EXPECT_EQ(be->Sync().message(), "Gemm: C aliases A or B");
  be->Scale(-1, 1.0f, &f);
  EXPECT_EQ(be->Sync().message(), "Scale: negative dimension -1");
  std::vector<int32_t> host(4);
  EXPECT_EQ(be->CopyToHost(f, 4, host.data()).message(), "CopyToHost: src is float32, needs int32");
  EXPECT_TRUE(other->Sync().ok());  // Errors are per backend.
}

// A GEMM big enough for OpenBLAS to split over threads gives the same bits on 1 and 2
// threads (openblas_gemm.h: it never splits along k), and the setting takes effect.
TEST(CpuGemmThreadsTest, SettingTakesEffectAndLeavesResultsAlone) {
  const int before = CpuGemmThreads();
  const absl::Status bad = SetCpuGemmThreads(0);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("at least 1, got 0"), std::string::npos) << bad;
  EXPECT_EQ(CpuGemmThreads(), before);
  const int64_t m = 256, n = 256, k = 256;
  const std::vector<float> a = Random(m * k, 8), b = Random(k * n, 9);
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2}) {
    ASSERT_TRUE(SetCpuGemmThreads(threads).ok());
    EXPECT_EQ(CpuGemmThreads(), threads);
    std::vector<float> c(static_cast<size_t>(m * n));
    OpenBlasGemm(false, false, m, n, k, 1.0f, a.data(), b.data(), 0.0f, c.data());
    results.push_back(std::move(c));
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_LT(RelError(results[0], ReferenceGemm(false, false, m, n, k, 1.0f, a, b, 0.0f,
                                               results[0])),
            1e-5);
  ASSERT_TRUE(SetCpuGemmThreads(before).ok());
}

TEST(BackendChecksTest, BufferMovesAndResets) {
  std::unique_ptr<Backend> be = CreateCpuBackend();
  Buffer a = be->Upload(std::vector<float>{1, 2});
  Buffer b = std::move(a);
  EXPECT_EQ(a.size(), 0);  // NOLINT(bugprone-use-after-move): moved-from is empty.
  EXPECT_EQ(a.owner(), nullptr);
  EXPECT_EQ(b.size(), 2);
  Buffer c = be->Upload(std::vector<float>{3});
  c = std::move(b);  // Frees c's old memory (ASan would catch a leak or double free).
  EXPECT_EQ(c.size(), 2);
  c.Reset();
  EXPECT_EQ(c.size(), 0);
  Buffer z = be->Allocate(DType::kInt32, 0);
  EXPECT_EQ(z.owner(), be.get());
  EXPECT_EQ(z.dtype(), DType::kInt32);
}

}  // namespace
}  // namespace ps::compute
