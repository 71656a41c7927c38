// Local training, no parameter server: the trainer's loop in miniature (shard, gather
// a batch, compute gradients, apply plain SGD on the host).
#include <stdlib.h>

#include <chrono>
#include <climits>
#include <cstdint>
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/data/dataset.h"
#include "worker/data/readers.h"
#include "worker/data/shard.h"
#include <stdlib.h>

#include <climits>
#include <string>

#include "worker/model/model.h"

namespace ps::model {
namespace {

// Trains with SGD on rank 0 of 1 and returns the final test evaluation. The
// parameters are shaped by `all` (for a sparse model: rows for all of its features).
EvalResult Train(const ModelConfig& config, const data::Dataset& all,
                 const data::Dataset& train, const data::Dataset& test, uint32_t batch,
                 int epochs, float lr, uint64_t seed) {
  std::unique_ptr<compute::Backend> backend = compute::CreateOpenBlasBackend();
  std::unique_ptr<Model> model;
  EXPECT_TRUE(CreateModel(config, backend.get(), &model).ok());
  std::vector<TableValues> params;
  EXPECT_TRUE(model->PrepareParams(all, &params).ok());
  auto shard = data::DataShard::Create(train.num_examples, 0, 1, batch, seed);
  EXPECT_TRUE(shard.ok()) << shard.status();
  std::vector<TableValues> grads;
  double loss = 0;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    const std::vector<int64_t> order = shard->EpochOrder(static_cast<uint64_t>(epoch));
    for (int64_t step = 0; step < shard->steps_per_epoch(); ++step) {
      const data::Dataset b =
          data::GatherRows(train, order.data() + step * batch, static_cast<int64_t>(batch));
      const compute::ComputeStatus s = model->ComputeGradients(b, params, &grads, &loss);
      EXPECT_TRUE(s.ok()) << s.ToString();
      if (!s.ok()) return {};
      for (size_t t = 0; t < params.size(); ++t) {
        for (size_t i = 0; i < params[t].values.size(); ++i) {
          params[t].values[i] -= lr * grads[t].values[i];
        }
      }
    }
  }
  EvalResult r;
  EXPECT_TRUE(model->Evaluate(test, params, &r).ok());
  return r;
}

TEST(TrainTest, SoftmaxLearnsDigits) {
  DataSpec spec;
  spec.set_format(CSV);
  // Runfiles are symlinks, and data roots confine symlink targets: the root is the
  // folder of the real file.
  char real[PATH_MAX];
  ASSERT_NE(::realpath("tests/data/digits.csv.gz", real), nullptr);
  const std::string real_path = real;
  spec.set_train_path("digits.csv.gz");
  spec.set_num_features(64);
  spec.set_num_classes(10);
  spec.set_label_column(-1);
  spec.set_test_every(5);  // Test rows: index % 5 == 4 (359 of 1797).
  spec.set_feature_scale(1.0f / 16);
  auto data = data::LoadData(spec, real_path.substr(0, real_path.rfind('/')));
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_EQ(data->test.num_examples, 359);
  ModelConfig config;
  config.kind = ModelKind::kSoftmax;
  config.num_features = 64;
  config.num_classes = 10;
  const auto start = std::chrono::steady_clock::now();
  const EvalResult r = Train(config, data->train, data->train, data->test, 32, 30, 0.5f, 1);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("digits softmax: test accuracy %.4f, loss %.4f, %.2f s\n", r.accuracy, r.loss,
              seconds);
  EXPECT_EQ(r.examples, 359);
  EXPECT_GE(r.accuracy, 0.93);
  EXPECT_LT(seconds, 20.0);
}

TEST(TrainTest, LogisticSparseLearnsASeparableProblem) {
  // Label = [sum of the weights of the active features > 0], features 1-based style.
  const uint32_t features = 200;
  std::vector<float> truth(features);
  uint64_t x = 12345;
  const auto next = [&x]() {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return x >> 33;
  };
  for (float& w : truth) w = static_cast<float>(static_cast<int64_t>(next() % 2001) - 1000) / 1000;
  data::Dataset all;
  all.sparse = true;
  all.num_features = features;
  all.num_classes = 2;
  all.row_offsets.push_back(0);
  for (int i = 0; i < 3000; ++i) {
    double s = 0;
    for (int j = 0; j < 8; ++j) {
      const uint64_t f = next() % features;
      all.indices.push_back(f);
      all.values.push_back(1.0f);
      s += truth[f];
    }
    all.row_offsets.push_back(static_cast<int64_t>(all.indices.size()));
    all.labels.push_back(s > 0 ? 1 : 0);
    ++all.num_examples;
  }
  data::Dataset train, test;
  data::SplitEvery(all, 4, &train, &test);
  ModelConfig config;
  config.kind = ModelKind::kLogisticSparse;
  config.num_features = features;
  config.num_classes = 2;
  const EvalResult r = Train(config, all, train, test, 50, 20, 1.0f, 2);
  std::printf("sparse logistic: test accuracy %.4f, auc %.4f\n", r.accuracy, r.auc);
  EXPECT_EQ(r.examples, 750);
  ASSERT_TRUE(r.has_auc);
  EXPECT_GT(r.auc, 0.95);
  EXPECT_GT(r.accuracy, 0.85);
}

}  // namespace
}  // namespace ps::model
