#include "worker/data/dataset.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace ps::data {
namespace {

Dataset Dense() {
  Dataset d;
  d.num_examples = 4;
  d.num_features = 2;
  d.num_classes = 3;
  d.dense = {0, 1, 10, 11, 20, 21, 30, 31};
  d.labels = {0, 1, 2, 0};
  return d;
}

Dataset Sparse() {
  Dataset d;
  d.sparse = true;
  d.num_examples = 3;
  d.num_features = 5;
  d.num_classes = 2;
  d.row_offsets = {0, 2, 2, 3};
  d.indices = {4, 0, 3};
  d.values = {1, 2, 3};
  d.labels = {1, 0, 1};
  return d;
}

TEST(DatasetTest, ValidDatasetsPass) {
  EXPECT_EQ(ValidateDataset(Dense()), "");
  EXPECT_EQ(ValidateDataset(Sparse()), "");
  EXPECT_EQ(ValidateDataset(EmptyLike(Sparse())), "");
  EXPECT_EQ(ValidateDataset(EmptyLike(Dense())), "");
}

TEST(DatasetTest, ValidateFindsEachProblem) {
  Dataset d = Dense();
  d.labels[2] = 3;
  EXPECT_NE(ValidateDataset(d), "");
  d = Dense();
  d.labels[0] = -1;
  EXPECT_NE(ValidateDataset(d), "");
  d = Dense();
  d.dense.pop_back();
  EXPECT_NE(ValidateDataset(d), "");
  d = Dense();
  d.dense[3] = std::nanf("");
  EXPECT_NE(ValidateDataset(d), "");
  Dataset s = Sparse();
  s.indices[1] = 5;
  EXPECT_NE(ValidateDataset(s), "");
  s = Sparse();
  s.row_offsets = {0, 2, 1, 3};
  EXPECT_NE(ValidateDataset(s), "");
  s = Sparse();
  s.values.pop_back();
  EXPECT_NE(ValidateDataset(s), "");
  s = Sparse();
  s.labels.pop_back();
  EXPECT_NE(ValidateDataset(s), "");
}

TEST(DatasetTest, GatherDenseKeepsOrderAndRepeats) {
  const std::vector<int64_t> rows = {3, 0, 3};
  const Dataset g = GatherRows(Dense(), rows.data(), 3);
  EXPECT_EQ(g.num_examples, 3);
  EXPECT_EQ(g.dense, (std::vector<float>{30, 31, 0, 1, 30, 31}));
  EXPECT_EQ(g.labels, (std::vector<int32_t>{0, 0, 0}));
  EXPECT_EQ(ValidateDataset(g), "");
}

TEST(DatasetTest, GatherSparse) {
  const std::vector<int64_t> rows = {2, 1, 0};
  const Dataset g = GatherRows(Sparse(), rows.data(), 3);
  EXPECT_EQ(g.row_offsets, (std::vector<int64_t>{0, 1, 1, 3}));
  EXPECT_EQ(g.indices, (std::vector<uint64_t>{3, 4, 0}));
  EXPECT_EQ(g.values, (std::vector<float>{3, 1, 2}));
  EXPECT_EQ(g.labels, (std::vector<int32_t>{1, 0, 1}));
  EXPECT_EQ(ValidateDataset(g), "");
}

TEST(DatasetTest, SplitEvery) {
  Dataset train, test;
  SplitEvery(Dense(), 2, &train, &test);
  EXPECT_EQ(train.dense, (std::vector<float>{0, 1, 20, 21}));
  EXPECT_EQ(test.dense, (std::vector<float>{10, 11, 30, 31}));
  SplitEvery(Dense(), 3, &train, &test);
  EXPECT_EQ(train.labels, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(test.labels, (std::vector<int32_t>{2}));
  SplitEvery(Sparse(), 0, &train, &test);
  EXPECT_EQ(train.num_examples, 3);
  EXPECT_EQ(test.num_examples, 0);
  EXPECT_EQ(ValidateDataset(test), "");
}

}  // namespace
}  // namespace ps::data
