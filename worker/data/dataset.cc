#include "worker/data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

namespace ps::data {

Dataset EmptyLike(const Dataset& like) {
  Dataset out;
  out.num_features = like.num_features;
  out.num_classes = like.num_classes;
  out.sparse = like.sparse;
  if (out.sparse) out.row_offsets.push_back(0);
  return out;
}

std::string ValidateDataset(const Dataset& d) {
  if (d.num_examples < 0) return "negative num_examples";
  const size_t n = static_cast<size_t>(d.num_examples);
  if (d.labels.size() != n) {
    return "labels has " + std::to_string(d.labels.size()) + " entries, want " +
           std::to_string(n);
  }
  for (size_t i = 0; i < n; ++i) {
    if (d.labels[i] < 0 || static_cast<uint32_t>(d.labels[i]) >= d.num_classes) {
      return "example " + std::to_string(i) + ": label " + std::to_string(d.labels[i]) +
             " outside [0, " + std::to_string(d.num_classes) + ")";
    }
  }
  if (!d.sparse) {
    if (d.dense.size() != n * d.num_features) {
      return "dense has " + std::to_string(d.dense.size()) + " values, want " +
             std::to_string(n * d.num_features);
    }
    for (size_t i = 0; i < d.dense.size(); ++i) {
      if (!std::isfinite(d.dense[i])) {
        return "example " + std::to_string(i / d.num_features) + ": non-finite feature";
      }
    }
    return "";
  }
  if (d.row_offsets.size() != n + 1 || d.row_offsets[0] != 0) {
    return "row_offsets must have num_examples + 1 entries starting at 0";
  }
  for (size_t i = 0; i < n; ++i) {
    if (d.row_offsets[i + 1] < d.row_offsets[i]) {
      return "row_offsets decrease at example " + std::to_string(i);
    }
  }
  const size_t nnz = static_cast<size_t>(d.row_offsets[n]);
  if (d.indices.size() != nnz || d.values.size() != nnz) {
    return "indices/values must have row_offsets.back() = " + std::to_string(nnz) +
           " entries";
  }
  for (size_t j = 0; j < nnz; ++j) {
    if (d.indices[j] >= d.num_features) {
      return "feature index " + std::to_string(d.indices[j]) + " >= num_features " +
             std::to_string(d.num_features);
    }
    if (!std::isfinite(d.values[j])) return "non-finite feature value";
  }
  return "";
}

Dataset GatherRows(const Dataset& data, const int64_t* rows, int64_t n) {
  Dataset out = EmptyLike(data);
  out.num_examples = n;
  out.labels.reserve(static_cast<size_t>(n));
  if (!data.sparse) {
    const size_t f = data.num_features;
    out.dense.resize(static_cast<size_t>(n) * f);
    for (int64_t i = 0; i < n; ++i) {
      const float* src = data.dense.data() + static_cast<size_t>(rows[i]) * f;
      std::copy(src, src + f, out.dense.begin() + static_cast<ptrdiff_t>(i * f));
      out.labels.push_back(data.labels[static_cast<size_t>(rows[i])]);
    }
    return out;
  }
  out.row_offsets.reserve(static_cast<size_t>(n) + 1);
  for (int64_t i = 0; i < n; ++i) {
    const size_t r = static_cast<size_t>(rows[i]);
    const auto begin = static_cast<size_t>(data.row_offsets[r]);
    const auto end = static_cast<size_t>(data.row_offsets[r + 1]);
    out.indices.insert(out.indices.end(), data.indices.begin() + begin,
                       data.indices.begin() + end);
    out.values.insert(out.values.end(), data.values.begin() + begin,
                      data.values.begin() + end);
    out.row_offsets.push_back(static_cast<int64_t>(out.indices.size()));
    out.labels.push_back(data.labels[r]);
  }
  return out;
}

void SplitEvery(const Dataset& data, uint32_t every, Dataset* train, Dataset* test) {
  std::vector<int64_t> train_rows, test_rows;
  train_rows.reserve(static_cast<size_t>(data.num_examples));
  for (int64_t i = 0; i < data.num_examples; ++i) {
    if (every != 0 && i % every == every - 1) {
      test_rows.push_back(i);
    } else {
      train_rows.push_back(i);
    }
  }
  *train = GatherRows(data, train_rows.data(), static_cast<int64_t>(train_rows.size()));
  *test = GatherRows(data, test_rows.data(), static_cast<int64_t>(test_rows.size()));
}

}  // namespace ps::data
