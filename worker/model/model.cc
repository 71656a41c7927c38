#include "worker/model/model.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ps::model {
namespace {

using compute::Backend;
using compute::Buffer;
using compute::ComputeStatus;
using compute::DType;
using data::Dataset;

std::string Str(uint64_t v) { return std::to_string(v); }

// Device buffers kept between calls, keyed by role; a buffer is reallocated only when
// it must grow. Not thread-safe.
class Workspace {
 public:
  explicit Workspace(Backend* backend) : backend_(backend) {}

  // A buffer of at least `n` elements of `dtype` (empty if allocation failed; the
  // backend then holds the error, which the next download reports).
  Buffer* Get(const std::string& key, DType dtype, int64_t n) {
    Buffer& b = slots_[key];
    if (b.owner() == nullptr || b.dtype() != dtype || b.size() < n) {
      b.Reset();
      b = backend_->Allocate(dtype, n);
    }
    return &b;
  }

  Buffer* Upload(const std::string& key, const float* host, int64_t n) {
    Buffer* b = Get(key, DType::kFloat32, n);
    backend_->CopyToDevice(host, n, b);
    return b;
  }

  Buffer* Upload(const std::string& key, const int32_t* host, int64_t n) {
    Buffer* b = Get(key, DType::kInt32, n);
    backend_->CopyToDevice(host, n, b);
    return b;
  }

 private:
  Backend* const backend_;  // Not owned.
  std::map<std::string, Buffer> slots_;
};

// Sums per-example losses (downloaded) in order, in double.
double SumLosses(const std::vector<float>& losses, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += losses[static_cast<size_t>(i)];
  return s;
}

// Running totals of an evaluation.
struct EvalAccumulator {
  int64_t examples = 0;
  double loss = 0;
  int64_t correct = 0;
  std::vector<float> scores;  // Binary models: a score increasing with P(label 1).
  std::vector<int32_t> labels;

  void Finish(bool binary, EvalResult* out) const {
    *out = EvalResult();
    out->examples = examples;
    if (examples == 0) return;
    out->loss = loss / static_cast<double>(examples);
    out->accuracy = static_cast<double>(correct) / static_cast<double>(examples);
    if (binary) out->has_auc = ComputeAuc(scores, labels, &out->auc);
  }
};

// softmax and mlp: dense layers, ReLU between them, softmax or sigmoid head.
class DenseNet final : public Model {
 public:
  DenseNet(ModelConfig config, Backend* backend) : Model(std::move(config), backend), ws_(backend) {
    widths_.push_back(config_.num_features);
    if (config_.kind == ModelKind::kMlp) {
      widths_.insert(widths_.end(), config_.hidden.begin(), config_.hidden.end());
    }
    widths_.push_back(sigmoid() ? 1 : config_.num_classes);
  }

  ComputeStatus ComputeGradients(const Dataset& batch, const std::vector<TableValues>& params,
                                 std::vector<TableValues>* grads, double* loss) override {
    PS_COMPUTE_RETURN_IF_ERROR(CheckData(batch, /*need_examples=*/true));
    PS_COMPUTE_RETURN_IF_ERROR(CheckParams(params));
    const int64_t m = batch.num_examples;
    UploadParams(params);
    Forward(m, batch.dense.data(), batch.labels.data(), /*grad=*/true);
    Backward(m);
    const int layers = num_layers();
    grads->assign(tables_.size(), TableValues());
    for (int l = 0; l < layers; ++l) {
      const auto li = static_cast<size_t>(l);
      std::vector<float>& gw = (*grads)[2 * li].values;
      std::vector<float>& gb = (*grads)[2 * li + 1].values;
      gw.resize(static_cast<size_t>(tables_[2 * li].size));
      gb.resize(static_cast<size_t>(tables_[2 * li + 1].size));
      PS_COMPUTE_RETURN_IF_ERROR(backend_->CopyToHost(
          *ws_.Get(Key("gw", l), DType::kFloat32, 0), static_cast<int64_t>(gw.size()), gw.data()));
      PS_COMPUTE_RETURN_IF_ERROR(backend_->CopyToHost(
          *ws_.Get(Key("gb", l), DType::kFloat32, 0), static_cast<int64_t>(gb.size()), gb.data()));
    }
    losses_.resize(static_cast<size_t>(m));
    PS_COMPUTE_RETURN_IF_ERROR(
        backend_->CopyToHost(*ws_.Get("loss", DType::kFloat32, 0), m, losses_.data()));
    *loss = SumLosses(losses_, m) / static_cast<double>(m);
    return ComputeStatus::Ok();
  }

  ComputeStatus Evaluate(const Dataset& data, const std::vector<TableValues>& params,
                         EvalResult* result) override {
    PS_COMPUTE_RETURN_IF_ERROR(CheckData(data, /*need_examples=*/false));
    PS_COMPUTE_RETURN_IF_ERROR(CheckParams(params));
    UploadParams(params);
    const int64_t out = widths_.back();
    const bool binary = config_.num_classes == 2;
    EvalAccumulator acc;
    std::vector<float> logits;
    for (int64_t start = 0; start < data.num_examples; start += eval_chunk_) {
      const int64_t m = std::min(eval_chunk_, data.num_examples - start);
      const float* x = data.dense.data() + static_cast<size_t>(start) * config_.num_features;
      const int32_t* y = data.labels.data() + start;
      Forward(m, x, y, /*grad=*/false);
      logits.resize(static_cast<size_t>(m * out));
      losses_.resize(static_cast<size_t>(m));
      PS_COMPUTE_RETURN_IF_ERROR(backend_->CopyToHost(
          *ws_.Get(Key("a", num_layers()), DType::kFloat32, 0), m * out, logits.data()));
      PS_COMPUTE_RETURN_IF_ERROR(
          backend_->CopyToHost(*ws_.Get("loss", DType::kFloat32, 0), m, losses_.data()));
      acc.loss += SumLosses(losses_, m);
      for (int64_t i = 0; i < m; ++i) {
        const float* z = logits.data() + i * out;
        int32_t predicted;
        if (sigmoid()) {
          predicted = z[0] >= 0.0f ? 1 : 0;
        } else {
          predicted = static_cast<int32_t>(std::max_element(z, z + out) - z);
        }
        if (predicted == y[i]) ++acc.correct;
        if (binary) {
          acc.scores.push_back(sigmoid() ? z[0] : z[1] - z[0]);
          acc.labels.push_back(y[i]);
        }
      }
      acc.examples += m;
    }
    acc.Finish(binary, result);
    return backend_->Sync();  // Reports errors of an evaluation without downloads.
  }

 private:
  bool sigmoid() const { return config_.kind == ModelKind::kMlp && config_.head == Head::kSigmoid; }
  int num_layers() const { return static_cast<int>(widths_.size()) - 1; }
  static std::string Key(const char* role, int layer) { return role + std::to_string(layer); }

  void UploadParams(const std::vector<TableValues>& params) {
    for (int l = 0; l < num_layers(); ++l) {
      const auto li = static_cast<size_t>(l);
      const std::vector<float>& w = params[2 * li].values;
      const std::vector<float>& b = params[2 * li + 1].values;
      ws_.Upload(Key("w", l), w.data(), static_cast<int64_t>(w.size()));
      ws_.Upload(Key("b", l), b.data(), static_cast<int64_t>(b.size()));
    }
  }

  // Activations: "a0" = X [m x F], "a<l+1>" = layer l's output (ReLU applied for
  // hidden layers; the last one holds the logits). Then the per-example losses and,
  // with `grad`, "dz" = d(mean loss)/d(logits).
  void Forward(int64_t m, const float* x, const int32_t* labels, bool grad) {
    const int layers = num_layers();
    ws_.Upload("a0", x, m * widths_[0]);
    Buffer* y = ws_.Upload("labels", labels, m);
    for (int l = 0; l < layers; ++l) {
      const int64_t in = widths_[static_cast<size_t>(l)];
      const int64_t out = widths_[static_cast<size_t>(l) + 1];
      Buffer* a_in = ws_.Get(Key("a", l), DType::kFloat32, m * in);
      Buffer* a_out = ws_.Get(Key("a", l + 1), DType::kFloat32, m * out);
      backend_->Gemm(false, false, m, out, in, 1.0f, *a_in, *ws_.Get(Key("w", l), DType::kFloat32, 0),
                     0.0f, a_out);
      backend_->AddBias(m, out, *ws_.Get(Key("b", l), DType::kFloat32, 0), a_out);
      if (l + 1 < layers) backend_->Relu(m * out, *a_out, a_out);
    }
    const int64_t out = widths_.back();
    Buffer* logits = ws_.Get(Key("a", layers), DType::kFloat32, m * out);
    Buffer* loss = ws_.Get("loss", DType::kFloat32, m);
    Buffer* dz = grad ? ws_.Get("dz0", DType::kFloat32, m * out) : nullptr;
    const float scale = 1.0f / static_cast<float>(m);
    if (sigmoid()) {
      backend_->SigmoidCrossEntropy(m, *logits, *y, scale, loss, dz, nullptr);
    } else {
      backend_->SoftmaxCrossEntropy(m, out, *logits, *y, scale, loss, dz);
    }
  }

  // From "dz0" (gradient at the logits) down to the first layer: "gw<l>", "gb<l>".
  void Backward(int64_t m) {
    int cur = 0;  // The gradient at layer l's output is in "dz<cur>" (ping-pong).
    for (int l = num_layers() - 1; l >= 0; --l) {
      const int64_t in = widths_[static_cast<size_t>(l)];
      const int64_t out = widths_[static_cast<size_t>(l) + 1];
      Buffer* dz = ws_.Get(Key("dz", cur), DType::kFloat32, m * out);
      Buffer* a_in = ws_.Get(Key("a", l), DType::kFloat32, m * in);
      backend_->Gemm(true, false, in, out, m, 1.0f, *a_in, *dz, 0.0f,
                     ws_.Get(Key("gw", l), DType::kFloat32, in * out));
      backend_->ColumnSums(m, out, 1.0f, *dz, 0.0f, ws_.Get(Key("gb", l), DType::kFloat32, out));
      if (l > 0) {
        Buffer* da = ws_.Get(Key("dz", 1 - cur), DType::kFloat32, m * in);
        backend_->Gemm(false, true, m, in, out, 1.0f, *dz, *ws_.Get(Key("w", l), DType::kFloat32, 0),
                       0.0f, da);
        backend_->ReluBackward(m * in, *a_in, *da, da);
        cur = 1 - cur;
      }
    }
  }

  Workspace ws_;
  std::vector<int64_t> widths_;  // Layer widths: features, hidden..., outputs.
  std::vector<float> losses_;
};

// Binary logistic regression: p = sigmoid(sum_j x_j w[key_j] + b).
class LogisticSparse final : public Model {
 public:
  LogisticSparse(ModelConfig config, Backend* backend) : Model(std::move(config), backend), ws_(backend) {}

  ComputeStatus ComputeGradients(const Dataset& batch, const std::vector<TableValues>& params,
                                 std::vector<TableValues>* grads, double* loss) override {
    PS_COMPUTE_RETURN_IF_ERROR(CheckData(batch, /*need_examples=*/true));
    PS_COMPUTE_RETURN_IF_ERROR(CheckParams(params));
    PS_COMPUTE_RETURN_IF_ERROR(IndexKeys(params[0].keys));
    const int64_t m = batch.num_examples;
    const auto k = static_cast<int64_t>(params[0].keys.size());
    PS_COMPUTE_RETURN_IF_ERROR(Forward(batch, 0, m, params, /*grad=*/true));

    // Transposed CSR [keys x examples], entries of each key in increasing example
    // order: the gradient scatter-add as a deterministic gather.
    const auto nnz = static_cast<int64_t>(cols_.size());
    std::vector<int32_t> t_offsets(static_cast<size_t>(k) + 1, 0);
    for (int32_t c : cols_) ++t_offsets[static_cast<size_t>(c) + 1];
    for (size_t i = 1; i < t_offsets.size(); ++i) t_offsets[i] += t_offsets[i - 1];
    std::vector<int32_t> t_rows(static_cast<size_t>(nnz));
    std::vector<float> t_values(static_cast<size_t>(nnz));
    std::vector<int32_t> fill(t_offsets.begin(), t_offsets.end() - 1);
    for (int64_t i = 0; i < m; ++i) {
      for (int32_t j = offsets_[static_cast<size_t>(i)]; j < offsets_[static_cast<size_t>(i) + 1]; ++j) {
        const auto pos = static_cast<size_t>(fill[static_cast<size_t>(cols_[static_cast<size_t>(j)])]++);
        t_rows[pos] = static_cast<int32_t>(i);
        t_values[pos] = vals_[static_cast<size_t>(j)];
      }
    }
    Buffer* to = ws_.Upload("t_offsets", t_offsets.data(), k + 1);
    Buffer* tr = ws_.Upload("t_rows", t_rows.data(), nnz);
    Buffer* tv = ws_.Upload("t_values", t_values.data(), nnz);
    Buffer* dz = ws_.Get("dz", DType::kFloat32, m);
    Buffer* gw = ws_.Get("gw", DType::kFloat32, k);
    Buffer* gb = ws_.Get("gb", DType::kFloat32, 1);
    backend_->CsrMatMul(k, m, 1, nnz, *to, *tr, *tv, 1.0f, *dz, 0.0f, gw);
    backend_->ColumnSums(m, 1, 1.0f, *dz, 0.0f, gb);

    grads->assign(2, TableValues());
    (*grads)[0].keys = params[0].keys;
    (*grads)[0].values.resize(static_cast<size_t>(k));
    (*grads)[1].values.resize(1);
    PS_COMPUTE_RETURN_IF_ERROR(backend_->CopyToHost(*gw, k, (*grads)[0].values.data()));
    PS_COMPUTE_RETURN_IF_ERROR(backend_->CopyToHost(*gb, 1, (*grads)[1].values.data()));
    losses_.resize(static_cast<size_t>(m));
    PS_COMPUTE_RETURN_IF_ERROR(
        backend_->CopyToHost(*ws_.Get("loss", DType::kFloat32, 0), m, losses_.data()));
    *loss = SumLosses(losses_, m) / static_cast<double>(m);
    return ComputeStatus::Ok();
  }

  ComputeStatus Evaluate(const Dataset& data, const std::vector<TableValues>& params,
                         EvalResult* result) override {
    PS_COMPUTE_RETURN_IF_ERROR(CheckData(data, /*need_examples=*/false));
    PS_COMPUTE_RETURN_IF_ERROR(CheckParams(params));
    PS_COMPUTE_RETURN_IF_ERROR(IndexKeys(params[0].keys));
    EvalAccumulator acc;
    std::vector<float> logits;
    for (int64_t start = 0; start < data.num_examples; start += eval_chunk_) {
      const int64_t m = std::min(eval_chunk_, data.num_examples - start);
      PS_COMPUTE_RETURN_IF_ERROR(Forward(data, start, m, params, /*grad=*/false));
      logits.resize(static_cast<size_t>(m));
      losses_.resize(static_cast<size_t>(m));
      PS_COMPUTE_RETURN_IF_ERROR(
          backend_->CopyToHost(*ws_.Get("logits", DType::kFloat32, 0), m, logits.data()));
      PS_COMPUTE_RETURN_IF_ERROR(
          backend_->CopyToHost(*ws_.Get("loss", DType::kFloat32, 0), m, losses_.data()));
      acc.loss += SumLosses(losses_, m);
      for (int64_t i = 0; i < m; ++i) {
        const int32_t y = data.labels[static_cast<size_t>(start + i)];
        if ((logits[static_cast<size_t>(i)] >= 0.0f ? 1 : 0) == y) ++acc.correct;
        acc.scores.push_back(logits[static_cast<size_t>(i)]);
        acc.labels.push_back(y);
      }
      acc.examples += m;
    }
    acc.Finish(/*binary=*/true, result);
    return backend_->Sync();
  }

 private:
  // Maps each key to its row in the pulled values; INVALID_ARGUMENT on a repeat.
  ComputeStatus IndexKeys(const std::vector<uint64_t>& keys) {
    if (keys.size() > static_cast<size_t>(INT32_MAX)) {
      return ComputeStatus::InvalidArgument("too many sparse keys: " + Str(keys.size()));
    }
    position_.clear();
    position_.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!position_.emplace(keys[i], static_cast<int32_t>(i)).second) {
        return ComputeStatus::InvalidArgument("table " + tables_[0].name + ": key " +
                                              Str(keys[i]) + " appears twice");
      }
    }
    return ComputeStatus::Ok();
  }

  // Builds the CSR of examples [start, start + m) over key positions and runs the
  // forward pass: "logits", "loss" and, with `grad`, "dz".
  ComputeStatus Forward(const Dataset& data, int64_t start, int64_t m,
                        const std::vector<TableValues>& params, bool grad) {
    const auto first = data.row_offsets[static_cast<size_t>(start)];
    const auto last = data.row_offsets[static_cast<size_t>(start + m)];
    if (last - first > INT32_MAX) {
      return ComputeStatus::InvalidArgument("too many nonzeros in one batch: " + Str(static_cast<uint64_t>(last - first)));
    }
    offsets_.resize(static_cast<size_t>(m) + 1);
    cols_.resize(static_cast<size_t>(last - first));
    vals_.assign(data.values.begin() + first, data.values.begin() + last);
    for (int64_t i = 0; i <= m; ++i) {
      offsets_[static_cast<size_t>(i)] =
          static_cast<int32_t>(data.row_offsets[static_cast<size_t>(start + i)] - first);
    }
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = data.row_offsets[static_cast<size_t>(start + i)];
           j < data.row_offsets[static_cast<size_t>(start + i) + 1]; ++j) {
        const uint64_t feature = data.indices[static_cast<size_t>(j)];
        const auto it = position_.find(feature);
        if (it == position_.end()) {
          return ComputeStatus::InvalidArgument(
              "table " + tables_[0].name + ": feature " + Str(feature) + " of example " +
              Str(static_cast<uint64_t>(start + i)) + " is not among the " +
              Str(params[0].keys.size()) + " keys given");
        }
        cols_[static_cast<size_t>(j - first)] = it->second;
      }
    }
    const auto k = static_cast<int64_t>(params[0].keys.size());
    const auto nnz = static_cast<int64_t>(cols_.size());
    Buffer* o = ws_.Upload("offsets", offsets_.data(), m + 1);
    Buffer* c = ws_.Upload("cols", cols_.data(), nnz);
    Buffer* v = ws_.Upload("vals", vals_.data(), nnz);
    Buffer* w = ws_.Upload("w", params[0].values.data(), k);
    Buffer* b = ws_.Upload("b", params[1].values.data(), 1);
    Buffer* y = ws_.Upload("labels", data.labels.data() + start, m);
    Buffer* logits = ws_.Get("logits", DType::kFloat32, m);
    backend_->CsrMatMul(m, k, 1, nnz, *o, *c, *v, 1.0f, *w, 0.0f, logits);
    backend_->AddBias(m, 1, *b, logits);
    backend_->SigmoidCrossEntropy(m, *logits, *y, 1.0f / static_cast<float>(m),
                                  ws_.Get("loss", DType::kFloat32, m),
                                  grad ? ws_.Get("dz", DType::kFloat32, m) : nullptr, nullptr);
    return ComputeStatus::Ok();
  }

  Workspace ws_;
  std::unordered_map<uint64_t, int32_t> position_;  // Key -> row of params[0].
  // CSR of the current batch over key positions (host staging).
  std::vector<int32_t> offsets_;
  std::vector<int32_t> cols_;
  std::vector<float> vals_;
  std::vector<float> losses_;
};

}  // namespace

std::string ValidateConfig(const ModelConfig& c) {
  if (c.num_features == 0) return "num_features must be >= 1";
  if (c.num_classes < 2) return "num_classes must be >= 2, got " + Str(c.num_classes);
  switch (c.kind) {
    case ModelKind::kSoftmax:
      return "";
    case ModelKind::kMlp:
      for (size_t i = 0; i < c.hidden.size(); ++i) {
        if (c.hidden[i] == 0) return "hidden[" + Str(i) + "] must be >= 1";
      }
      if (c.head == Head::kSigmoid && c.num_classes != 2) {
        return "a sigmoid head needs num_classes == 2, got " + Str(c.num_classes);
      }
      return "";
    case ModelKind::kLogisticSparse:
      if (c.num_classes != 2) {
        return "logistic_sparse needs num_classes == 2, got " + Str(c.num_classes);
      }
      return "";
  }
  return "unknown model kind";
}

std::vector<TableDecl> ModelTables(const ModelConfig& c) {
  const auto dense = [](std::string name, uint64_t size, bool weight) {
    TableDecl t;
    t.name = std::move(name);
    t.size = size;
    t.weight = weight;
    return t;
  };
  std::vector<TableDecl> out;
  switch (c.kind) {
    case ModelKind::kSoftmax:
      out.push_back(dense("softmax.w", uint64_t{c.num_features} * c.num_classes, true));
      out.push_back(dense("softmax.b", c.num_classes, false));
      break;
    case ModelKind::kMlp: {
      std::vector<uint64_t> widths = {c.num_features};
      widths.insert(widths.end(), c.hidden.begin(), c.hidden.end());
      widths.push_back(c.head == Head::kSigmoid ? 1 : c.num_classes);
      for (size_t l = 0; l + 1 < widths.size(); ++l) {
        out.push_back(dense("mlp.w" + Str(l), widths[l] * widths[l + 1], true));
        out.push_back(dense("mlp.b" + Str(l), widths[l + 1], false));
      }
      break;
    }
    case ModelKind::kLogisticSparse: {
      TableDecl w;
      w.name = "lr.w";
      w.sparse = true;
      w.dim = 1;
      w.weight = true;
      out.push_back(w);
      out.push_back(dense("lr.b", 1, false));
      break;
    }
  }
  return out;
}

Model::Model(ModelConfig config, Backend* backend)
    : config_(std::move(config)), tables_(ModelTables(config_)), backend_(backend) {}

ComputeStatus Model::CheckData(const Dataset& data, bool need_examples) const {
  const bool want_sparse = config_.kind == ModelKind::kLogisticSparse;
  if (data.sparse != want_sparse) {
    return ComputeStatus::InvalidArgument(std::string("the model needs ") +
                                          (want_sparse ? "sparse" : "dense") + " data");
  }
  if (data.num_features != config_.num_features || data.num_classes != config_.num_classes) {
    return ComputeStatus::InvalidArgument(
        "data has " + Str(data.num_features) + " features and " + Str(data.num_classes) +
        " classes, the model " + Str(config_.num_features) + " and " + Str(config_.num_classes));
  }
  if (need_examples && data.num_examples == 0) {
    return ComputeStatus::InvalidArgument("empty batch");
  }
  const std::string problem = data::ValidateDataset(data);
  if (!problem.empty()) return ComputeStatus::InvalidArgument("bad data: " + problem);
  return ComputeStatus::Ok();
}

ComputeStatus Model::CheckParams(const std::vector<TableValues>& params) const {
  if (params.size() != tables_.size()) {
    return ComputeStatus::InvalidArgument("got " + Str(params.size()) + " parameter tables, the model has " +
                                          Str(tables_.size()));
  }
  for (size_t i = 0; i < tables_.size(); ++i) {
    const TableDecl& t = tables_[i];
    const TableValues& p = params[i];
    const uint64_t want = t.sparse ? p.keys.size() * t.dim : t.size;
    if (p.values.size() != want || (!t.sparse && !p.keys.empty())) {
      return ComputeStatus::InvalidArgument("table " + t.name + ": got " + Str(p.values.size()) +
                                            " values" + (t.sparse ? "" : " and " + Str(p.keys.size()) + " keys") +
                                            ", want " + Str(want));
    }
  }
  return ComputeStatus::Ok();
}

ComputeStatus Model::PrepareParams(const Dataset& data, std::vector<TableValues>* params) const {
  PS_COMPUTE_RETURN_IF_ERROR(CheckData(data, /*need_examples=*/false));
  params->assign(tables_.size(), TableValues());
  for (size_t i = 0; i < tables_.size(); ++i) {
    TableValues& p = (*params)[i];
    if (tables_[i].sparse) {
      p.keys = data.indices;
      std::sort(p.keys.begin(), p.keys.end());
      p.keys.erase(std::unique(p.keys.begin(), p.keys.end()), p.keys.end());
      p.values.assign(p.keys.size() * tables_[i].dim, 0.0f);
    } else {
      p.values.assign(static_cast<size_t>(tables_[i].size), 0.0f);
    }
  }
  return ComputeStatus::Ok();
}

ComputeStatus CreateModel(const ModelConfig& config, Backend* backend,
                          std::unique_ptr<Model>* model) {
  const std::string problem = ValidateConfig(config);
  if (!problem.empty()) return ComputeStatus::InvalidArgument("model config: " + problem);
  if (backend == nullptr) return ComputeStatus::InvalidArgument("no backend");
  if (config.kind == ModelKind::kLogisticSparse) {
    model->reset(new LogisticSparse(config, backend));
  } else {
    model->reset(new DenseNet(config, backend));
  }
  return ComputeStatus::Ok();
}

bool ComputeAuc(const std::vector<float>& scores, const std::vector<int32_t>& labels,
                double* auc) {
  const size_t n = scores.size();
  for (float s : scores) {
    if (s != s) return false;  // NaN: no ordering.
  }
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Mann-Whitney: sum of the positives' ranks, ties sharing their mean rank.
  double positive_rank_sum = 0;
  uint64_t positives = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2;
    for (size_t t = i; t < j; ++t) {
      if (labels[order[t]] == 1) {
        positive_rank_sum += mean_rank;
        ++positives;
      }
    }
    i = j;
  }
  const uint64_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return false;
  const auto p = static_cast<double>(positives);
  *auc = (positive_rank_sum - p * (p + 1) / 2) / (p * static_cast<double>(negatives));
  return true;
}

}  // namespace ps::model
