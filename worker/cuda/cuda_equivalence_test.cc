// Every Backend op and one training step (and evaluation) of every model on the GPU,
// against the CPU reference backend: normwise relative error
// max|gpu - cpu| / max|cpu| <= 1e-5 per output, and bitwise-repeatable GPU results.
// Runs on a GPU; elsewhere every test reports SKIPPED with the runtime's reason.
//
// Links nothing but CUDA, gtest (static) and the dependency-free compute core; the CPU
// side uses the naive reference GEMM, so OpenBLAS is not needed either.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/compute/backend.h"
#include "worker/compute/cpu_backend.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/device.h"
#include "worker/data/dataset.h"
#include "worker/model/model.h"

namespace ps::cuda {
namespace {

using compute::Backend;
using compute::Buffer;
using compute::ComputeStatus;
using compute::DType;

constexpr double kTolerance = 1e-5;

std::vector<float> Random(size_t n, uint64_t seed, float scale = 1.0f) {
  std::vector<float> v(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 3;
  for (float& f : v) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    f = scale * static_cast<float>(static_cast<double>(x >> 40) / (1 << 23) - 1.0);
  }
  return v;
}

double RelError(const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    norm = std::max(norm, std::fabs(static_cast<double>(want[i])));
  }
  return norm == 0 ? diff : diff / norm;
}

// An op run on one backend: uploads its inputs, runs, returns its outputs.
using Op = std::function<std::vector<std::vector<float>>(Backend&)>;

std::vector<float> Get(Backend& be, const Buffer& b, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  const ComputeStatus s = be.CopyToHost(b, n, out.data());
  EXPECT_TRUE(s.ok()) << be.name() << ": " << s.ToString();
  return out;
}

class CudaEquivalenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (DeviceCount(&why) == 0) GTEST_SKIP() << "no CUDA device: " << why;
    gpu_ = CreateCudaBackend(0, &why);
    ASSERT_NE(gpu_, nullptr) << why;
    cpu_ = compute::CreateCpuBackend();
  }

  // Runs `op` on both backends (twice on the GPU) and compares.
  void Compare(const std::string& what, const Op& op) {
    SCOPED_TRACE(what);
    const auto want = op(*cpu_);
    const auto got = op(*gpu_);
    const auto again = op(*gpu_);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(got[i].size(), want[i].size()) << "output " << i;
      for (float v : got[i]) ASSERT_TRUE(std::isfinite(v)) << "output " << i;
      const double err = RelError(got[i], want[i]);
      EXPECT_LE(err, kTolerance) << "output " << i;
      EXPECT_EQ(got[i], again[i]) << "output " << i << ": GPU result not repeatable";
      std::printf("%-48s output %zu: rel err %.3g\n", what.c_str(), i, err);
    }
  }

  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> gpu_;
};

TEST_F(CudaEquivalenceTest, DeviceNameAndBackend) {
  EXPECT_TRUE(gpu_->is_gpu());
  std::printf("ran on %s\n", gpu_->name().c_str());
}

TEST_F(CudaEquivalenceTest, Gemm) {
  struct Shape {
    int64_t m, n, k;
  };
  for (const Shape& s : {Shape{1, 1, 1}, Shape{7, 13, 29}, Shape{129, 257, 65}, Shape{256, 10, 784}}) {
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        for (float beta : {0.0f, 0.75f}) {
          Compare("Gemm " + std::to_string(s.m) + "x" + std::to_string(s.n) + "x" +
                      std::to_string(s.k) + (ta ? " At" : "") + (tb ? " Bt" : "") +
                      (beta != 0 ? " beta" : ""),
                  [&](Backend& be) {
                    Buffer a = be.Upload(Random(static_cast<size_t>(s.m * s.k), 1));
                    Buffer b = be.Upload(Random(static_cast<size_t>(s.k * s.n), 2));
                    std::vector<float> c0 = Random(static_cast<size_t>(s.m * s.n), 3);
                    if (beta == 0) c0[0] = NAN;  // Must not be read.
                    Buffer c = be.Upload(c0);
                    be.Gemm(ta, tb, s.m, s.n, s.k, 1.25f, a, b, beta, &c);
                    return std::vector<std::vector<float>>{Get(be, c, s.m * s.n)};
                  });
        }
      }
    }
  }
  Compare("Gemm k=0", [](Backend& be) {
    Buffer a = be.Allocate(DType::kFloat32, 0), b = be.Allocate(DType::kFloat32, 0);
    Buffer c = be.Upload(Random(12, 4));
    be.Gemm(false, false, 3, 4, 0, 1.0f, a, b, 2.0f, &c);
    return std::vector<std::vector<float>>{Get(be, c, 12)};
  });
}

TEST_F(CudaEquivalenceTest, ElementwiseAndReductions) {
  const int64_t m = 300, n = 77;
  Compare("AddBias", [&](Backend& be) {
    Buffer y = be.Upload(Random(m * n, 5)), b = be.Upload(Random(n, 6));
    be.AddBias(m, n, b, &y);
    return std::vector<std::vector<float>>{Get(be, y, m * n)};
  });
  Compare("ColumnSums", [&](Backend& be) {
    Buffer x = be.Upload(Random(m * n, 7));
    std::vector<float> init = Random(n, 8);
    Buffer o1 = be.Upload(init), o2 = be.Upload(init);
    init[0] = NAN;
    Buffer o0 = be.Upload(init);
    be.ColumnSums(m, n, 0.5f, x, 0.0f, &o0);
    be.ColumnSums(m, n, 1.0f, x, -2.0f, &o1);
    be.ColumnSums(0, n, 1.0f, x, 3.0f, &o2);
    return std::vector<std::vector<float>>{Get(be, o0, n), Get(be, o1, n), Get(be, o2, n)};
  });
  Compare("Relu, ReluBackward", [&](Backend& be) {
    Buffer x = be.Upload(Random(m * n, 9)), dy = be.Upload(Random(m * n, 10));
    Buffer y = be.Allocate(DType::kFloat32, m * n);
    be.Relu(m * n, x, &y);
    be.ReluBackward(m * n, y, dy, &dy);
    return std::vector<std::vector<float>>{Get(be, y, m * n), Get(be, dy, m * n)};
  });
  Compare("Axpy, Scale, Fill", [&](Backend& be) {
    Buffer x = be.Upload(Random(m * n, 11)), y = be.Upload(Random(m * n, 12));
    Buffer z = be.Allocate(DType::kFloat32, 1000);
    be.Axpy(m * n, -0.3f, x, &y);
    be.Scale(m * n, 1.7f, &x);
    be.Fill(1000, 0.125f, &z);
    return std::vector<std::vector<float>>{Get(be, y, m * n), Get(be, x, m * n), Get(be, z, 1000)};
  });
}

TEST_F(CudaEquivalenceTest, Losses) {
  for (int64_t c : {2, 10, 33, 1000}) {
    const int64_t m = 67;
    Compare("SoftmaxCrossEntropy c=" + std::to_string(c), [&](Backend& be) {
      std::vector<float> z = Random(static_cast<size_t>(m * c), 13, 8.0f);
      z[0] = 500.0f;  // Overflows exp() without the max shift.
      std::vector<int32_t> labels(static_cast<size_t>(m));
      for (int64_t i = 0; i < m; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7) % c);
      Buffer dz = be.Upload(z), y = be.Upload(labels);
      Buffer loss = be.Allocate(DType::kFloat32, m), grad = be.Allocate(DType::kFloat32, m * c);
      Buffer loss2 = be.Allocate(DType::kFloat32, m);
      be.SoftmaxCrossEntropy(m, c, dz, y, 1.0f / static_cast<float>(m), &loss, &grad);
      be.SoftmaxCrossEntropy(m, c, dz, y, 1.0f, &loss2, &dz);  // In place.
      return std::vector<std::vector<float>>{Get(be, loss, m), Get(be, grad, m * c),
                                             Get(be, loss2, m), Get(be, dz, m * c)};
    });
  }
  Compare("SigmoidCrossEntropy", [&](Backend& be) {
    const int64_t m = 1001;
    std::vector<float> z = Random(static_cast<size_t>(m), 14, 20.0f);
    z[0] = 90.0f;
    z[1] = -90.0f;
    std::vector<int32_t> labels(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) labels[static_cast<size_t>(i)] = static_cast<int32_t>(i % 3 == 0);
    Buffer dz = be.Upload(z), y = be.Upload(labels);
    Buffer loss = be.Allocate(DType::kFloat32, m), grad = be.Allocate(DType::kFloat32, m),
           prob = be.Allocate(DType::kFloat32, m);
    be.SigmoidCrossEntropy(m, dz, y, 0.5f, &loss, &grad, &prob);
    return std::vector<std::vector<float>>{Get(be, loss, m), Get(be, grad, m), Get(be, prob, m)};
  });
}

TEST_F(CudaEquivalenceTest, CsrMatMul) {
  for (int64_t dim : {1, 8}) {
    Compare("CsrMatMul dim=" + std::to_string(dim), [&](Backend& be) {
      const int64_t rows = 500, cols = 3000;
      std::vector<int32_t> offsets = {0}, indices;
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t j = 0; j < i % 23; ++j) {
          indices.push_back(static_cast<int32_t>((i * 131 + j * 977) % cols));
        }
        offsets.push_back(static_cast<int32_t>(indices.size()));
      }
      const auto nnz = static_cast<int64_t>(indices.size());
      Buffer o = be.Upload(offsets), ix = be.Upload(indices);
      Buffer v = be.Upload(Random(static_cast<size_t>(nnz), 15));
      Buffer b = be.Upload(Random(static_cast<size_t>(cols * dim), 16));
      Buffer c = be.Upload(Random(static_cast<size_t>(rows * dim), 17));
      be.CsrMatMul(rows, cols, dim, nnz, o, ix, v, 0.5f, b, 2.0f, &c);
      Buffer c0 = be.Allocate(DType::kFloat32, rows * dim);
      be.CsrMatMul(rows, cols, dim, nnz, o, ix, v, 1.0f, b, 0.0f, &c0);
      return std::vector<std::vector<float>>{Get(be, c, rows * dim), Get(be, c0, rows * dim)};
    });
  }
}

// --- Models -----------------------------------------------------------------------

data::Dataset DenseBatch(int64_t n, uint32_t features, uint32_t classes) {
  data::Dataset d;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = classes;
  d.dense = Random(static_cast<size_t>(n * features), 21);
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>((i * 5) % classes));
  return d;
}

data::Dataset SparseBatch(int64_t n, uint32_t features) {
  data::Dataset d;
  d.sparse = true;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = 2;
  d.row_offsets.push_back(0);
  const std::vector<float> vals = Random(static_cast<size_t>(n * 16), 22);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < 1 + i % 15; ++j) {
      d.indices.push_back(static_cast<uint64_t>((i * 37 + j * 101) % features));
      d.values.push_back(vals[static_cast<size_t>(i * 16 + j)]);
    }
    d.row_offsets.push_back(static_cast<int64_t>(d.indices.size()));
    d.labels.push_back(static_cast<int32_t>(i % 2));
  }
  return d;
}

struct ModelCase {
  std::string name;
  model::ModelConfig config;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

model::ModelConfig Config(model::ModelKind kind, uint32_t features, uint32_t classes,
                          std::vector<uint32_t> hidden = {},
                          model::Head head = model::Head::kSoftmax) {
  model::ModelConfig c;
  c.kind = kind;
  c.num_features = features;
  c.num_classes = classes;
  c.hidden = std::move(hidden);
  c.head = head;
  return c;
}

class CudaModelTest : public CudaEquivalenceTest,
                      public ::testing::WithParamInterface<ModelCase> {};

TEST_P(CudaModelTest, OneStepAndEvaluationMatchTheCpu) {
  const model::ModelConfig& config = GetParam().config;
  const bool sparse = config.kind == model::ModelKind::kLogisticSparse;
  const data::Dataset batch = sparse ? SparseBatch(256, config.num_features)
                                     : DenseBatch(128, config.num_features, config.num_classes);
  std::unique_ptr<model::Model> on_cpu, on_gpu;
  ASSERT_TRUE(model::CreateModel(config, cpu_.get(), &on_cpu).ok());
  ASSERT_TRUE(model::CreateModel(config, gpu_.get(), &on_gpu).ok());
  std::vector<model::TableValues> params;
  ASSERT_TRUE(on_cpu->PrepareParams(batch, &params).ok());
  uint64_t seed = 30;
  for (model::TableValues& t : params) t.values = Random(t.values.size(), seed++, 0.1f);

  std::vector<model::TableValues> g_cpu, g_gpu, g_again;
  double l_cpu = 0, l_gpu = 0, l_again = 0;
  ComputeStatus s = on_cpu->ComputeGradients(batch, params, &g_cpu, &l_cpu);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = on_gpu->ComputeGradients(batch, params, &g_gpu, &l_gpu);
  ASSERT_TRUE(s.ok()) << s.ToString();
  s = on_gpu->ComputeGradients(batch, params, &g_again, &l_again);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_LE(std::fabs(l_gpu - l_cpu), kTolerance * std::fabs(l_cpu));
  EXPECT_EQ(l_gpu, l_again);
  ASSERT_EQ(g_gpu.size(), g_cpu.size());
  for (size_t t = 0; t < g_cpu.size(); ++t) {
    const std::string& name = on_cpu->tables()[t].name;
    EXPECT_EQ(g_gpu[t].keys, g_cpu[t].keys) << name;
    const double err = RelError(g_gpu[t].values, g_cpu[t].values);
    EXPECT_LE(err, kTolerance) << name;
    EXPECT_EQ(g_gpu[t].values, g_again[t].values) << name << ": GPU result not repeatable";
    std::printf("%s %s: rel err %.3g\n", GetParam().name.c_str(), name.c_str(), err);
  }

  on_cpu->SetEvalChunkForTest(50);
  on_gpu->SetEvalChunkForTest(50);
  model::EvalResult e_cpu, e_gpu;
  ASSERT_TRUE(on_cpu->Evaluate(batch, params, &e_cpu).ok());
  ASSERT_TRUE(on_gpu->Evaluate(batch, params, &e_gpu).ok());
  EXPECT_EQ(e_gpu.examples, e_cpu.examples);
  EXPECT_LE(std::fabs(e_gpu.loss - e_cpu.loss), kTolerance * std::fabs(e_cpu.loss));
  // Rounding can flip a near-tie; allow one example in either direction.
  EXPECT_NEAR(e_gpu.accuracy, e_cpu.accuracy, 1.0 / static_cast<double>(e_cpu.examples) + 1e-12);
  EXPECT_EQ(e_gpu.has_auc, e_cpu.has_auc);
  if (e_cpu.has_auc) {
    EXPECT_NEAR(e_gpu.auc, e_cpu.auc, 1e-3);
  }
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, CudaModelTest,
    ::testing::Values(
        ModelCase{"softmax", Config(model::ModelKind::kSoftmax, 784, 10)},
        ModelCase{"mlp_softmax", Config(model::ModelKind::kMlp, 784, 10, {256, 64})},
        ModelCase{"mlp_sigmoid",
                  Config(model::ModelKind::kMlp, 100, 2, {32}, model::Head::kSigmoid)},
        ModelCase{"logistic_sparse", Config(model::ModelKind::kLogisticSparse, 5000, 2)}),
    [](const ::testing::TestParamInfo<ModelCase>& info) { return info.param.name; });

}  // namespace
}  // namespace ps::cuda
