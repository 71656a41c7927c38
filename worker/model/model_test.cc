#include "worker/model/model.h"

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/compute/backend.h"
#include "worker/compute/cpu_backend.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/data/dataset.h"

namespace ps::model {
namespace {

using compute::ComputeStatus;
using data::Dataset;

// Deterministic pseudo-random doubles in [-1, 1).
class Rng {
 public:
  explicit Rng(uint64_t seed) : x_(seed * 0x9e3779b97f4a7c15ULL + 7) {}
  double Next() {
    x_ = x_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(x_ >> 11) / static_cast<double>(uint64_t{1} << 52) - 1.0;
  }

 private:
  uint64_t x_;
};

Dataset DenseData(int64_t n, uint32_t features, uint32_t classes, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = classes;
  for (int64_t i = 0; i < n * features; ++i) d.dense.push_back(static_cast<float>(rng.Next()));
  for (int64_t i = 0; i < n; ++i) d.labels.push_back(static_cast<int32_t>(i % classes));
  return d;
}

Dataset SparseData(int64_t n, uint32_t features, uint64_t seed) {
  Rng rng(seed);
  Dataset d;
  d.sparse = true;
  d.num_examples = n;
  d.num_features = features;
  d.num_classes = 2;
  d.row_offsets.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    const int nnz = static_cast<int>(i % 4);  // Includes empty rows.
    for (int j = 0; j < nnz; ++j) {
      d.indices.push_back((static_cast<uint64_t>(i) * 7 + static_cast<uint64_t>(j) * 3) % features);
      d.values.push_back(static_cast<float>(rng.Next() * 2));
    }
    d.row_offsets.push_back(static_cast<int64_t>(d.indices.size()));
    d.labels.push_back(static_cast<int32_t>((i / 2) % 2));
  }
  return d;
}

std::vector<TableValues> RandomParams(const Model& model, const Dataset& data, uint64_t seed,
                                      double scale) {
  std::vector<TableValues> p;
  EXPECT_TRUE(model.PrepareParams(data, &p).ok());
  Rng rng(seed);
  for (TableValues& t : p) {
    for (float& v : t.values) v = static_cast<float>(scale * rng.Next());
  }
  return p;
}

struct Case {
  std::string name;
  ModelConfig config;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

ModelConfig Config(ModelKind kind, uint32_t features, uint32_t classes,
                   std::vector<uint32_t> hidden = {}, Head head = Head::kSoftmax) {
  ModelConfig c;
  c.kind = kind;
  c.num_features = features;
  c.num_classes = classes;
  c.hidden = std::move(hidden);
  c.head = head;
  return c;
}

std::vector<Case> Cases() {
  return {
      {"Softmax", Config(ModelKind::kSoftmax, 5, 4)},
      {"MlpSoftmax", Config(ModelKind::kMlp, 5, 4, {6, 3})},
      {"MlpSigmoid", Config(ModelKind::kMlp, 5, 2, {4}, Head::kSigmoid)},
      {"MlpNoHidden", Config(ModelKind::kMlp, 3, 3)},
      {"LogisticSparse", Config(ModelKind::kLogisticSparse, 20, 2)},
  };
}

class ModelGradientTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    backend_ = compute::CreateOpenBlasBackend();
    const ComputeStatus s = CreateModel(GetParam().config, backend_.get(), &model_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    const ModelConfig& c = GetParam().config;
    data_ = c.kind == ModelKind::kLogisticSparse ? SparseData(9, c.num_features, 3)
                                                 : DenseData(7, c.num_features, c.num_classes, 3);
  }

  double Loss(const std::vector<TableValues>& params) {
    std::vector<TableValues> grads;
    double loss = 0;
    const ComputeStatus s = model_->ComputeGradients(data_, params, &grads, &loss);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return loss;
  }

  std::unique_ptr<compute::Backend> backend_;
  std::unique_ptr<Model> model_;
  Dataset data_;
};

TEST_P(ModelGradientTest, MatchesCentralFiniteDifferences) {
  // Biases random too, so their gradients are exercised away from zero.
  std::vector<TableValues> params = RandomParams(*model_, data_, 11, 0.7);
  std::vector<TableValues> grads;
  double loss = 0;
  ComputeStatus s = model_->ComputeGradients(data_, params, &grads, &loss);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(grads.size(), params.size());
  EXPECT_GT(loss, 0.0);
  const double eps = 1e-3;
  int checked = 0;
  double max_grad = 0;
  for (size_t t = 0; t < params.size(); ++t) {
    ASSERT_EQ(grads[t].values.size(), params[t].values.size()) << model_->tables()[t].name;
    EXPECT_EQ(grads[t].keys, params[t].keys);
    for (size_t i = 0; i < params[t].values.size(); ++i) {
      std::vector<TableValues> p = params;
      const float v = params[t].values[i];
      p[t].values[i] = static_cast<float>(v + eps);
      const double up = Loss(p);
      p[t].values[i] = static_cast<float>(v - eps);
      const double down = Loss(p);
      // Divide by the perturbation actually applied in float.
      const double h = static_cast<double>(static_cast<float>(v + eps)) -
                       static_cast<double>(static_cast<float>(v - eps));
      const double fd = (up - down) / h;
      const double g = grads[t].values[i];
      EXPECT_NEAR(g, fd, 5e-4 + 1e-2 * std::fabs(fd))
          << model_->tables()[t].name << "[" << i << "]";
      max_grad = std::max(max_grad, std::fabs(g));
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
  EXPECT_GT(max_grad, 1e-3);  // The check is not vacuous.
}

TEST_P(ModelGradientTest, GradientsAreBitwiseDeterministic) {
  const std::vector<TableValues> params = RandomParams(*model_, data_, 5, 0.5);
  std::vector<TableValues> g1, g2;
  double l1 = 0, l2 = 0;
  ASSERT_TRUE(model_->ComputeGradients(data_, params, &g1, &l1).ok());
  // A different batch in between, to dirty the cached device buffers.
  const ModelConfig& c = GetParam().config;
  const Dataset other = c.kind == ModelKind::kLogisticSparse
                            ? SparseData(3, c.num_features, 99)
                            : DenseData(3, c.num_features, c.num_classes, 99);
  std::vector<TableValues> other_params = RandomParams(*model_, other, 6, 0.5);
  std::vector<TableValues> g3;
  double l3 = 0;
  ASSERT_TRUE(model_->ComputeGradients(other, other_params, &g3, &l3).ok());
  ASSERT_TRUE(model_->ComputeGradients(data_, params, &g2, &l2).ok());
  EXPECT_EQ(l1, l2);
  for (size_t t = 0; t < g1.size(); ++t) EXPECT_EQ(g1[t].values, g2[t].values);
}

TEST_P(ModelGradientTest, NaiveAndOpenBlasGemmAgree) {
  std::unique_ptr<compute::Backend> naive = compute::CreateCpuBackend();
  std::unique_ptr<Model> other;
  ASSERT_TRUE(CreateModel(GetParam().config, naive.get(), &other).ok());
  const std::vector<TableValues> params = RandomParams(*model_, data_, 8, 0.5);
  std::vector<TableValues> g1, g2;
  double l1 = 0, l2 = 0;
  ASSERT_TRUE(model_->ComputeGradients(data_, params, &g1, &l1).ok());
  ASSERT_TRUE(other->ComputeGradients(data_, params, &g2, &l2).ok());
  EXPECT_NEAR(l1, l2, 1e-6 * std::fabs(l1));
  for (size_t t = 0; t < g1.size(); ++t) {
    for (size_t i = 0; i < g1[t].values.size(); ++i) {
      EXPECT_NEAR(g1[t].values[i], g2[t].values[i], 1e-5);
    }
  }
}

TEST_P(ModelGradientTest, EvaluateMatchesTheTrainingLoss) {
  const std::vector<TableValues> params = RandomParams(*model_, data_, 9, 0.5);
  std::vector<TableValues> grads;
  double loss = 0;
  ASSERT_TRUE(model_->ComputeGradients(data_, params, &grads, &loss).ok());
  for (int64_t chunk : {int64_t{4096}, int64_t{2}}) {
    model_->SetEvalChunkForTest(chunk);
    EvalResult r;
    const ComputeStatus s = model_->Evaluate(data_, params, &r);
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_EQ(r.examples, data_.num_examples);
    EXPECT_NEAR(r.loss, loss, 1e-6 * loss) << chunk;
    EXPECT_GE(r.accuracy, 0.0);
    EXPECT_LE(r.accuracy, 1.0);
    EXPECT_EQ(r.has_auc, GetParam().config.num_classes == 2);
  }
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelGradientTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

TEST(ModelTest, TablesAndLayouts) {
  EXPECT_EQ(ModelTables(Config(ModelKind::kSoftmax, 784, 10)).size(), 2u);
  const std::vector<TableDecl> mlp =
      ModelTables(Config(ModelKind::kMlp, 784, 10, {100, 50}, Head::kSoftmax));
  ASSERT_EQ(mlp.size(), 6u);
  EXPECT_EQ(mlp[0].name, "mlp.w0");
  EXPECT_EQ(mlp[0].size, 78400u);
  EXPECT_TRUE(mlp[0].weight);
  EXPECT_EQ(mlp[1].name, "mlp.b0");
  EXPECT_FALSE(mlp[1].weight);
  EXPECT_EQ(mlp[4].size, 500u);
  EXPECT_EQ(mlp[5].size, 10u);
  const std::vector<TableDecl> sig =
      ModelTables(Config(ModelKind::kMlp, 8, 2, {3}, Head::kSigmoid));
  EXPECT_EQ(sig[2].size, 3u);
  EXPECT_EQ(sig[3].size, 1u);
  const std::vector<TableDecl> lr = ModelTables(Config(ModelKind::kLogisticSparse, 1000, 2));
  ASSERT_EQ(lr.size(), 2u);
  EXPECT_TRUE(lr[0].sparse);
  EXPECT_EQ(lr[0].dim, 1u);
  EXPECT_FALSE(lr[1].sparse);
  EXPECT_EQ(lr[1].size, 1u);
}

TEST(ModelTest, SoftmaxGradientHasTheClosedForm) {
  // One example, zero weights: p is uniform, so dW[f, c] = x_f * (1/C - [c == y]).
  std::unique_ptr<compute::Backend> be = compute::CreateCpuBackend();
  std::unique_ptr<Model> model;
  ASSERT_TRUE(CreateModel(Config(ModelKind::kSoftmax, 2, 4), be.get(), &model).ok());
  Dataset d;
  d.num_examples = 1;
  d.num_features = 2;
  d.num_classes = 4;
  d.dense = {2, -1};
  d.labels = {3};
  std::vector<TableValues> params, grads;
  ASSERT_TRUE(model->PrepareParams(d, &params).ok());
  double loss = 0;
  ASSERT_TRUE(model->ComputeGradients(d, params, &grads, &loss).ok());
  EXPECT_NEAR(loss, std::log(4.0), 1e-6);
  for (int f = 0; f < 2; ++f) {
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(grads[0].values[static_cast<size_t>(f * 4 + c)],
                  d.dense[static_cast<size_t>(f)] * (0.25 - (c == 3)), 1e-6);
    }
  }
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(grads[1].values[static_cast<size_t>(c)], 0.25 - (c == 3), 1e-6);
}

TEST(ModelTest, SparseKeysAnyOrderExtraKeysGetZero) {
  std::unique_ptr<compute::Backend> be = compute::CreateCpuBackend();
  std::unique_ptr<Model> model;
  ASSERT_TRUE(CreateModel(Config(ModelKind::kLogisticSparse, 50, 2), be.get(), &model).ok());
  const Dataset d = SparseData(6, 50, 1);
  std::vector<TableValues> params;
  ASSERT_TRUE(model->PrepareParams(d, &params).ok());
  std::vector<uint64_t> want_keys = d.indices;
  std::sort(want_keys.begin(), want_keys.end());
  want_keys.erase(std::unique(want_keys.begin(), want_keys.end()), want_keys.end());
  EXPECT_EQ(params[0].keys, want_keys);
  Rng rng(4);
  for (float& v : params[0].values) v = static_cast<float>(rng.Next());
  params[1].values[0] = 0.3f;
  std::vector<TableValues> grads;
  double loss = 0;
  ASSERT_TRUE(model->ComputeGradients(d, params, &grads, &loss).ok());

  // Reverse the keys and add one the batch does not use: same gradient per key, 0 there.
  std::vector<TableValues> shuffled = params;
  std::reverse(shuffled[0].keys.begin(), shuffled[0].keys.end());
  std::reverse(shuffled[0].values.begin(), shuffled[0].values.end());
  shuffled[0].keys.push_back(49);
  ASSERT_EQ(std::count(want_keys.begin(), want_keys.end(), 49u), 0);
  shuffled[0].values.push_back(5.0f);
  std::vector<TableValues> grads2;
  double loss2 = 0;
  ASSERT_TRUE(model->ComputeGradients(d, shuffled, &grads2, &loss2).ok());
  EXPECT_EQ(grads2[0].keys, shuffled[0].keys);
  EXPECT_NEAR(loss, loss2, 1e-6);
  const size_t k = want_keys.size();
  for (size_t i = 0; i < k; ++i) {
    EXPECT_NEAR(grads2[0].values[k - 1 - i], grads[0].values[i], 1e-7) << i;
  }
  EXPECT_EQ(grads2[0].values[k], 0.0f);
}

TEST(ModelTest, BadInputsAreInvalidArgument) {
  std::unique_ptr<compute::Backend> be = compute::CreateCpuBackend();
  std::unique_ptr<Model> dense, sparse;
  ASSERT_TRUE(CreateModel(Config(ModelKind::kSoftmax, 3, 2), be.get(), &dense).ok());
  ASSERT_TRUE(CreateModel(Config(ModelKind::kLogisticSparse, 30, 2), be.get(), &sparse).ok());
  const Dataset d = DenseData(4, 3, 2, 1);
  const Dataset s = SparseData(5, 30, 1);
  std::vector<TableValues> params, grads;
  double loss = 0;
  ASSERT_TRUE(dense->PrepareParams(d, &params).ok());
  const auto code = [](const ComputeStatus& st) { return st.code(); };
  constexpr auto kBad = ComputeStatus::Code::kInvalidArgument;

  std::vector<TableValues> short_params = params;
  short_params[0].values.pop_back();
  EXPECT_EQ(code(dense->ComputeGradients(d, short_params, &grads, &loss)), kBad);
  EXPECT_EQ(code(dense->ComputeGradients(d, {params[0]}, &grads, &loss)), kBad);
  EXPECT_EQ(code(dense->ComputeGradients(s, params, &grads, &loss)), kBad);  // Sparse data.
  EXPECT_EQ(code(dense->ComputeGradients(DenseData(4, 4, 2, 1), params, &grads, &loss)), kBad);
  EXPECT_EQ(code(dense->ComputeGradients(DenseData(0, 3, 2, 1), params, &grads, &loss)), kBad);
  Dataset bad_label = d;
  bad_label.labels[1] = 2;
  EXPECT_EQ(code(dense->ComputeGradients(bad_label, params, &grads, &loss)), kBad);

  std::vector<TableValues> sp;
  ASSERT_TRUE(sparse->PrepareParams(s, &sp).ok());
  std::vector<TableValues> missing = sp;
  missing[0].keys.pop_back();
  missing[0].values.pop_back();
  const ComputeStatus st = sparse->ComputeGradients(s, missing, &grads, &loss);
  EXPECT_EQ(st.code(), kBad);
  EXPECT_NE(st.message().find("is not among the"), std::string::npos) << st.ToString();
  std::vector<TableValues> repeated = sp;
  repeated[0].keys.back() = repeated[0].keys.front();
  EXPECT_EQ(code(sparse->ComputeGradients(s, repeated, &grads, &loss)), kBad);
  EXPECT_EQ(code(sparse->Evaluate(s, missing, nullptr)), kBad);
  // After all these errors the backend holds no stale error: a good call works.
  ASSERT_TRUE(sparse->ComputeGradients(s, sp, &grads, &loss).ok());
  ASSERT_TRUE(dense->ComputeGradients(d, params, &grads, &loss).ok());

  std::unique_ptr<Model> none;
  EXPECT_EQ(code(CreateModel(Config(ModelKind::kMlp, 3, 3, {2}, Head::kSigmoid), be.get(), &none)),
            kBad);
  EXPECT_EQ(code(CreateModel(Config(ModelKind::kLogisticSparse, 3, 3), be.get(), &none)), kBad);
  EXPECT_EQ(code(CreateModel(Config(ModelKind::kMlp, 3, 3, {0}), be.get(), &none)), kBad);
  EXPECT_EQ(code(CreateModel(Config(ModelKind::kSoftmax, 0, 3), be.get(), &none)), kBad);
}

TEST(ModelTest, EvaluateCountsAccuracyAgainstAHostReference) {
  std::unique_ptr<compute::Backend> be = compute::CreateOpenBlasBackend();
  std::unique_ptr<Model> model;
  ASSERT_TRUE(CreateModel(Config(ModelKind::kSoftmax, 4, 3), be.get(), &model).ok());
  const Dataset d = DenseData(50, 4, 3, 21);
  const std::vector<TableValues> params = RandomParams(*model, d, 22, 2.0);
  int64_t correct = 0;
  double loss = 0;
  for (int64_t i = 0; i < d.num_examples; ++i) {
    std::vector<double> z(3);
    for (int c = 0; c < 3; ++c) {
      z[static_cast<size_t>(c)] = params[1].values[static_cast<size_t>(c)];
      for (int f = 0; f < 4; ++f) {
        z[static_cast<size_t>(c)] += static_cast<double>(d.dense[static_cast<size_t>(i * 4 + f)]) *
                                     params[0].values[static_cast<size_t>(f * 3 + c)];
      }
    }
    const auto best = std::max_element(z.begin(), z.end()) - z.begin();
    const int32_t y = d.labels[static_cast<size_t>(i)];
    if (best == y) ++correct;
    double s = 0;
    for (double v : z) s += std::exp(v);
    loss += std::log(s) - z[static_cast<size_t>(y)];
  }
  EvalResult r;
  ASSERT_TRUE(model->Evaluate(d, params, &r).ok());
  EXPECT_EQ(r.examples, 50);
  EXPECT_DOUBLE_EQ(r.accuracy, static_cast<double>(correct) / 50);
  EXPECT_NEAR(r.loss, loss / 50, 1e-5);
  EXPECT_FALSE(r.has_auc);
  // An empty evaluation set is fine.
  ASSERT_TRUE(model->Evaluate(data::EmptyLike(d), params, &r).ok());
  EXPECT_EQ(r.examples, 0);
}

// The sigmoid head far into saturation, where the naive -log(sigmoid(z)) overflows or
// rounds to 0 in float: the loss must stay the stable softplus form
// max(z, 0) - z*y + log1p(exp(-|z|)), computed here in double from a host forward
// pass, and the gradients must stay finite and match finite differences (at +-40)
// and the closed form mean(p - y) of the output bias (at +-200, beyond float exp).
TEST(ModelTest, SigmoidHeadIsStableAtExtremeLogits) {
  std::unique_ptr<compute::Backend> be = compute::CreateOpenBlasBackend();
  std::unique_ptr<Model> model;
  const ModelConfig config = Config(ModelKind::kMlp, 5, 2, {4}, Head::kSigmoid);
  ASSERT_TRUE(CreateModel(config, be.get(), &model).ok());
  const Dataset d = DenseData(7, 5, 2, 3);  // Labels 0,1,0,1,...: 4 zeros, 3 ones.
  for (const float bias : {40.0f, -40.0f, 200.0f, -200.0f}) {
    SCOPED_TRACE(bias);
    std::vector<TableValues> params = RandomParams(*model, d, 31, 0.5);
    params[3].values[0] = bias;  // mlp.b1: every logit is about `bias`.
    // Host forward pass in double: relu(x W0 + b0) W1 + b1.
    double want_loss = 0;
    for (int64_t i = 0; i < d.num_examples; ++i) {
      double z = params[3].values[0];
      for (int k = 0; k < 4; ++k) {
        double h = params[1].values[static_cast<size_t>(k)];
        for (int f = 0; f < 5; ++f) {
          h += static_cast<double>(d.dense[static_cast<size_t>(i * 5 + f)]) *
               params[0].values[static_cast<size_t>(f * 4 + k)];
        }
        z += std::max(h, 0.0) * params[2].values[static_cast<size_t>(k)];
      }
      const double y = d.labels[static_cast<size_t>(i)];
      want_loss += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::fabs(z)));
    }
    want_loss /= static_cast<double>(d.num_examples);
    std::vector<TableValues> grads;
    double loss = 0;
    ASSERT_TRUE(model->ComputeGradients(d, params, &grads, &loss).ok());
    ASSERT_TRUE(std::isfinite(loss));
    EXPECT_NEAR(loss, want_loss, 1e-5 * want_loss);
    // About |bias| * 4/7 (positive bias: the zeros are confidently wrong) or 3/7.
    EXPECT_NEAR(loss, std::fabs(bias) * (bias > 0 ? 4.0 : 3.0) / 7.0, 0.1 * std::fabs(bias));
    for (const TableValues& g : grads) {
      for (float v : g.values) ASSERT_TRUE(std::isfinite(v));
    }
    // Output bias: mean(p - y) with p = 1 (bias > 0) or 0 (bias < 0).
    EXPECT_NEAR(grads[3].values[0], bias > 0 ? 4.0 / 7.0 : -3.0 / 7.0, 1e-6);
    if (std::fabs(bias) > 100) continue;
    // Central differences; the loss is nearly linear in saturation, so a wider step
    // keeps float rounding of losses near 40 small against it.
    const double eps = 1e-2;
    for (size_t t = 0; t < params.size(); ++t) {
      for (size_t i = 0; i < params[t].values.size(); ++i) {
        std::vector<TableValues> p = params;
        const float v = params[t].values[i];
        std::vector<TableValues> unused;
        double up = 0, down = 0;
        p[t].values[i] = static_cast<float>(v + eps);
        ASSERT_TRUE(model->ComputeGradients(d, p, &unused, &up).ok());
        p[t].values[i] = static_cast<float>(v - eps);
        ASSERT_TRUE(model->ComputeGradients(d, p, &unused, &down).ok());
        const double h = static_cast<double>(static_cast<float>(v + eps)) -
                         static_cast<double>(static_cast<float>(v - eps));
        const double fd = (up - down) / h;
        EXPECT_NEAR(grads[t].values[i], fd, 5e-4 + 1e-2 * std::fabs(fd))
            << model->tables()[t].name << "[" << i << "]";
      }
    }
  }
}

TEST(AucTest, MatchesPairCounting) {
  Rng rng(3);
  std::vector<float> scores;
  std::vector<int32_t> labels;
  for (int i = 0; i < 300; ++i) {
    // Coarse scores, so there are many ties.
    scores.push_back(static_cast<float>(std::floor(rng.Next() * 5)));
    labels.push_back(rng.Next() + 0.2 * scores.back() > 0 ? 1 : 0);
  }
  double pairs = 0, wins = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    for (size_t j = 0; j < scores.size(); ++j) {
      if (labels[i] != 1 || labels[j] != 0) continue;
      pairs += 1;
      wins += scores[i] > scores[j] ? 1.0 : scores[i] == scores[j] ? 0.5 : 0.0;
    }
  }
  double auc = 0;
  ASSERT_TRUE(ComputeAuc(scores, labels, &auc));
  EXPECT_NEAR(auc, wins / pairs, 1e-12);
  EXPECT_GT(auc, 0.5);
  EXPECT_FALSE(ComputeAuc({1, 2}, {1, 1}, &auc));
  EXPECT_FALSE(ComputeAuc({NAN, 2}, {0, 1}, &auc));
  ASSERT_TRUE(ComputeAuc({0.1f, 0.9f}, {0, 1}, &auc));
  EXPECT_EQ(auc, 1.0);
}

}  // namespace
}  // namespace ps::model
