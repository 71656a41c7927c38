// Readers that turn files into Datasets: IDX (MNIST-style), CSV and libsvm, each
// gzipped or plain (zlib reads both), and LoadData() for a job's DataSpec.
//
// Errors (never a crash, never a skipped example):
//   NOT_FOUND         the file cannot be opened ("path: cannot open: reason");
//   INVALID_ARGUMENT  malformed content. Text formats name the file and the 1-based
//                     line: "data.csv:17: expected 65 columns, got 12"; IDX names the
//                     file and what is wrong: "train-images.gz: bad magic 0x00000801".
//                     Out-of-range values (label >= num_classes, feature index >=
//                     num_features, NaN or Inf) are malformed content too;
//   DATA_LOSS         a read error or truncated gzip stream.
// All functions are thread-safe (they share no state).
#ifndef PS_WORKER_DATA_READERS_H_
#define PS_WORKER_DATA_READERS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "worker/data/dataset.h"

namespace ps::data {

// Shape and scaling shared by every reader.
struct ReadOptions {
  uint32_t num_features = 0;   // Required, >= 1.
  uint32_t num_classes = 0;    // Required, >= 2; labels must be below it.
  float feature_scale = 1.0f;  // Every feature value is multiplied by this.
};

// IDX image + label files (e.g. MNIST, Fashion-MNIST): images are unsigned bytes
// with magic 0x00000803 [n, rows, cols], labels unsigned bytes with magic 0x00000801
// [n]. Needs rows * cols == num_features. A dense dataset; pixel values are 0..255
// times feature_scale.
absl::StatusOr<Dataset> ReadIdx(const std::string& images_path,
                                const std::string& labels_path,
                                const ReadOptions& options);

// CSV: one example per line, num_features + 1 comma-separated numbers; the label
// column (0-based, -1 = last) holds an integer class id. Lines of only whitespace
// are skipped (they hold no example); `header` skips line 1. A dense dataset.
absl::StatusOr<Dataset> ReadCsv(const std::string& path, const ReadOptions& options,
                                int32_t label_column, bool header);

// libsvm: "label index:value index:value ...", whitespace-separated; '#' starts a
// comment; blank and comment-only lines are skipped. Labels -1/+1 or 0/1 (any
// numeric spelling of those, e.g. "+1", "-1.0") map to 0/1; anything else is an
// error, as is num_classes != 2. Indices are 1-based when `one_based`, else 0-based,
// and must be below num_features after that shift. A sparse dataset whose rows keep
// the file's order of nonzeros.
absl::StatusOr<Dataset> ReadLibsvm(const std::string& path, const ReadOptions& options,
                                   bool one_based);

// The training and test examples of a job.
struct TrainTest {
  Dataset train;
  Dataset test;  // Empty (num_examples 0, same shape) when the spec has no test set.
};

// Resolves a DataSpec path inside `data_root` (one directory or a colon-separated
// list; common/data_paths.h): relative paths under the first root holding them,
// absolute ones only inside a root, symlinks followed. INVALID_ARGUMENT (naming
// `field`) for an empty path, a ".." component, a missing file or one outside.
absl::StatusOr<std::string> ResolveDataPath(const std::string& path,
                                            const std::string& data_root,
                                            const std::string& field);

// Reads the job's data: train_path (and train_labels_path for IDX); the test set
// from test_path (+ test_labels_path) when given, else every test_every-th example
// of the training file (0-based example i is a test example iff
// i % test_every == test_every - 1), else none. feature_scale 0 means 1. Errors as
// above, plus INVALID_ARGUMENT naming the spec field for an unusable spec.
absl::StatusOr<TrainTest> LoadData(const DataSpec& spec, const std::string& data_root);

}  // namespace ps::data

#endif  // PS_WORKER_DATA_READERS_H_
