// In-memory examples: dense float rows or sparse CSR rows, with integer labels.
//
// Depends on nothing but the C++ standard library, so the models (and the CUDA
// equivalence test, which runs on machines without abseil) can use it.
#ifndef PS_WORKER_DATA_DATASET_H_
#define PS_WORKER_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ps::data {

// A set of labelled examples. A plain value type: copyable, movable; thread-compatible
// (concurrent const use is safe). Readers produce valid datasets; code that builds one
// by hand can check it with ValidateDataset().
//
// Dense (`sparse == false`): `dense` holds num_examples x num_features float32,
// row-major. Sparse (`sparse == true`): CSR rows; example i has the nonzeros
// [row_offsets[i], row_offsets[i + 1]) of `indices` (0-based feature index) and
// `values`. Labels are class ids in [0, num_classes); binary data uses 0 and 1.
struct Dataset {
  int64_t num_examples = 0;
  uint32_t num_features = 0;
  uint32_t num_classes = 0;
  bool sparse = false;

  std::vector<float> dense;           // Dense only: num_examples * num_features.
  std::vector<int64_t> row_offsets;   // Sparse only: num_examples + 1, starts at 0.
  std::vector<uint64_t> indices;      // Sparse only: feature index per nonzero.
  std::vector<float> values;          // Sparse only: value per nonzero.
  std::vector<int32_t> labels;        // num_examples.

  // Number of stored nonzeros (sparse) or 0 (dense).
  int64_t nnz() const { return sparse ? static_cast<int64_t>(indices.size()) : 0; }
};

// An empty dataset with the same shape (features, classes, dense/sparse) as `like`.
Dataset EmptyLike(const Dataset& like);

// Checks the invariants above: array sizes, monotone offsets, feature indices below
// num_features, labels in [0, num_classes), finite values. Returns an empty string
// when valid, else a description of the first problem.
std::string ValidateDataset(const Dataset& data);

// The examples `rows[0..n)` of `data`, in that order (a row may repeat). Every
// row must be in [0, data.num_examples); the caller guarantees it.
Dataset GatherRows(const Dataset& data, const int64_t* rows, int64_t n);

// Splits `data` by example index: example i goes to `*test` iff
// i % every == every - 1, else to `*train`; both keep the order. every == 0 puts
// everything into `*train` and leaves `*test` empty.
void SplitEvery(const Dataset& data, uint32_t every, Dataset* train, Dataset* test);

}  // namespace ps::data

#endif  // PS_WORKER_DATA_DATASET_H_
