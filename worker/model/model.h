// Models written once against compute::Backend: `softmax` (multinomial logistic
// regression), `mlp` (ReLU hidden layers, softmax or sigmoid head) and
// `logistic_sparse` (binary logistic regression over a sparse weight table).
//
// The boundary is host memory, because the trainer moves parameters and gradients
// between the parameter server and host buffers: a model takes the current values of
// its tables (TableValues, one per table in tables() order) and a batch, uploads both
// to the backend, runs the forward and backward pass there and downloads the mean loss
// and the gradients (same layout as the parameters, averaged over the batch).
//
// Table layouts (row-major):
//   softmax          "softmax.w" dense [num_features x num_classes] (weight),
//                    "softmax.b" dense [num_classes] (bias);
//   mlp              "mlp.w<l>" dense [in_l x out_l] and "mlp.b<l>" dense [out_l] for
//                    l = 0..H, where in_0 = num_features, out_l = hidden[l] and the
//                    last layer's out is num_classes (SOFTMAX head) or 1 (SIGMOID);
//   logistic_sparse  "lr.w" sparse, dim 1, keyed by 0-based feature index (weight),
//                    "lr.b" dense [1] (bias).
// Weights start from ModelSpec.init, biases at 0 (worker/model/job_model.h).
//
// Depends only on the Backend interface, the Dataset struct and the C++ standard
// library, so the CUDA equivalence test can run a model step on a bare GPU machine.
#ifndef PS_WORKER_MODEL_MODEL_H_
#define PS_WORKER_MODEL_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/compute/backend.h"
#include "worker/compute/compute_status.h"
#include "worker/data/dataset.h"

namespace ps::model {

enum class ModelKind { kSoftmax, kMlp, kLogisticSparse };
enum class Head { kSoftmax, kSigmoid };

// What a model is; see ModelConfigFromSpec() in job_model.h for the JobSpec mapping.
struct ModelConfig {
  ModelKind kind = ModelKind::kSoftmax;
  uint32_t num_features = 0;     // >= 1.
  uint32_t num_classes = 0;      // >= 2; 2 for kLogisticSparse and a kSigmoid head.
  std::vector<uint32_t> hidden;  // kMlp only: hidden layer widths, each >= 1.
  Head head = Head::kSoftmax;    // kMlp only (softmax: kSoftmax; logistic: kSigmoid).
};

// "" when `config` is usable, else what is wrong.
std::string ValidateConfig(const ModelConfig& config);

// A parameter table a model needs.
struct TableDecl {
  std::string name;
  bool sparse = false;
  uint64_t size = 0;    // Dense: number of float32 elements.
  uint32_t dim = 0;     // Sparse: row width.
  bool weight = false;  // True: initialised by ModelSpec.init; false: zeros (a bias).
};

// The tables of `config` (which must be valid), in the order models use.
std::vector<TableDecl> ModelTables(const ModelConfig& config);

// Values (or gradients) of one table. Dense: `values` holds the whole table and `keys`
// is empty. Sparse: `values` holds keys.size() rows of `dim` floats, row i for keys[i].
struct TableValues {
  std::vector<uint64_t> keys;
  std::vector<float> values;
};

struct EvalResult {
  int64_t examples = 0;
  double loss = 0;      // Mean over the examples.
  double accuracy = 0;  // Fraction predicted right (argmax; sigmoid: p >= 0.5).
  // Binary models (a sigmoid head, logistic_sparse, or softmax over 2 classes) with
  // both labels present: area under the ROC curve, ties counted as 1/2.
  bool has_auc = false;
  double auc = 0;
};

// A model bound to a backend. Not thread-safe (it keeps device buffers between calls);
// use one per worker thread. Borrows the backend, which must outlive it. Errors are
// INVALID_ARGUMENT for inputs that do not fit the model (wrong shapes, a batch feature
// missing from the sparse keys, labels out of range) and the backend's codes for
// device failures; outputs are unspecified on error.
class Model {
 public:
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const std::vector<TableDecl>& tables() const { return tables_; }

  // Shapes `*params` for `data` (a batch or an evaluation set): one entry per table,
  // dense values sized to the table, sparse keys = the sorted distinct feature indices
  // of `data` (the rows to pull), values sized to match. Values are zero: the trainer
  // fills them from the parameter server. Thread-safe (touches no device state).
  compute::ComputeStatus PrepareParams(const data::Dataset& data,
                                       std::vector<TableValues>* params) const;

  // Mean loss over `batch` and its gradients with respect to `params`: `*grads` gets
  // one entry per table, dense values of the table's size, sparse rows for exactly
  // params' keys in the same order (rows the batch does not touch are 0). `params`'
  // sparse keys must cover the batch's features and be distinct, in any order.
  virtual compute::ComputeStatus ComputeGradients(const data::Dataset& batch,
                                                  const std::vector<TableValues>& params,
                                                  std::vector<TableValues>* grads,
                                                  double* loss) = 0;

  // Loss, accuracy and (binary) AUC over all of `data`, in chunks of at most
  // 4096 examples.
  virtual compute::ComputeStatus Evaluate(const data::Dataset& data,
                                          const std::vector<TableValues>& params,
                                          EvalResult* result) = 0;

  // Test hook: the evaluation chunk size.
  void SetEvalChunkForTest(int64_t examples) { eval_chunk_ = examples; }

 protected:
  Model(ModelConfig config, compute::Backend* backend);

  // INVALID_ARGUMENT unless `data` matches the config (dense or sparse as the model
  // needs, num_features, num_classes) and is internally valid.
  compute::ComputeStatus CheckData(const data::Dataset& data, bool need_examples) const;
  // INVALID_ARGUMENT unless `params` has one entry per table of the right size.
  compute::ComputeStatus CheckParams(const std::vector<TableValues>& params) const;

  // Constant after construction.
  const ModelConfig config_;
  const std::vector<TableDecl> tables_;
  compute::Backend* const backend_;  // Not owned.
  int64_t eval_chunk_ = 4096;
};

// Creates the model of `config` on `backend` (not owned; must outlive the model).
// INVALID_ARGUMENT when the config is not valid.
compute::ComputeStatus CreateModel(const ModelConfig& config, compute::Backend* backend,
                                   std::unique_ptr<Model>* model);

// Area under the ROC curve of `scores` against 0/1 `labels` (ties count 1/2);
// false when either class is absent or a score is NaN. Exposed for tests.
bool ComputeAuc(const std::vector<float>& scores, const std::vector<int32_t>& labels,
                double* auc);

}  // namespace ps::model

#endif  // PS_WORKER_MODEL_MODEL_H_
