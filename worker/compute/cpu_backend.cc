#include "worker/compute/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

namespace ps::compute {
namespace {

constexpr std::align_val_t kAlign{64};

class CpuBackend final : public Backend {
 public:
  CpuBackend(GemmFn gemm, std::string name) : gemm_(gemm), name_(std::move(name)) {}

  std::string name() const override { return name_; }
  bool is_gpu() const override { return false; }

 protected:
  void* AllocateImpl(int64_t bytes) override {
    return ::operator new(static_cast<size_t>(bytes), kAlign, std::nothrow);
  }
  void FreeImpl(void* ptr) override { ::operator delete(ptr, kAlign); }
  void CopyToDeviceImpl(const void* host, int64_t bytes, void* dst) override {
    std::memcpy(dst, host, static_cast<size_t>(bytes));
  }
  void CopyToHostImpl(const void* src, int64_t bytes, void* host) override {
    std::memcpy(host, src, static_cast<size_t>(bytes));
  }
  void SyncImpl() override {}

  void GemmImpl(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, const float* b, float beta, float* c) override {
    gemm_(trans_a, trans_b, m, n, k, alpha, a, b, beta, c);
  }

  void AddBiasImpl(int64_t m, int64_t n, const float* bias, float* y) override {
    for (int64_t i = 0; i < m; ++i) {
      float* row = y + i * n;
      for (int64_t j = 0; j < n; ++j) row[j] += bias[j];
    }
  }

  void ColumnSumsImpl(int64_t m, int64_t n, float alpha, const float* x, float beta,
                      float* out) override {
    // Row by row for locality; each column still sums its rows in increasing order,
    // as the CUDA kernel does.
    std::vector<float> acc(static_cast<size_t>(n), 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      const float* row = x + i * n;
      for (int64_t j = 0; j < n; ++j) acc[static_cast<size_t>(j)] += row[j];
    }
    for (int64_t j = 0; j < n; ++j) {
      const float s = alpha * acc[static_cast<size_t>(j)];
      out[j] = beta == 0.0f ? s : s + beta * out[j];
    }
  }

  void ReluImpl(int64_t n, const float* x, float* y) override {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
  }

  void ReluBackwardImpl(int64_t n, const float* y, const float* dy, float* dx) override {
    for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }

  void AxpyImpl(int64_t n, float alpha, const float* x, float* y) override {
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }

  void ScaleImpl(int64_t n, float alpha, float* x) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
  }

  void FillImpl(int64_t n, float value, float* x) override { std::fill(x, x + n, value); }

  void SoftmaxCrossEntropyImpl(int64_t m, int64_t c, const float* logits,
                               const int32_t* labels, float grad_scale, float* loss,
                               float* dlogits) override {
    for (int64_t i = 0; i < m; ++i) {
      const float* z = logits + i * c;
      float mx = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < c; ++j) mx = std::max(mx, z[j]);
      float s = 0.0f;
      for (int64_t j = 0; j < c; ++j) s += std::exp(z[j] - mx);
      const int32_t y = labels[i];
      const bool valid = y >= 0 && y < c;
      loss[i] = valid ? mx + std::log(s) - z[y] : std::numeric_limits<float>::quiet_NaN();
      if (dlogits != nullptr) {
        float* d = dlogits + i * c;  // May be z: each element is read before written.
        for (int64_t j = 0; j < c; ++j) {
          const float p = std::exp(z[j] - mx) / s;
          d[j] = (p - (j == y ? 1.0f : 0.0f)) * grad_scale;
        }
      }
    }
  }

  void SigmoidCrossEntropyImpl(int64_t m, const float* logits, const int32_t* labels,
                               float grad_scale, float* loss, float* dlogits,
                               float* prob) override {
    for (int64_t i = 0; i < m; ++i) {
      const float z = logits[i];
      const float y = static_cast<float>(labels[i]);
      loss[i] = std::max(z, 0.0f) - z * y + std::log1p(std::exp(-std::fabs(z)));
      const float e = std::exp(-std::fabs(z));
      const float p = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
      if (dlogits != nullptr) dlogits[i] = (p - y) * grad_scale;
      if (prob != nullptr) prob[i] = p;
    }
  }

  void CsrMatMulImpl(int64_t rows, int64_t cols, int64_t dim, int64_t nnz,
                     const int32_t* offsets, const int32_t* indices, const float* values,
                     float alpha, const float* b, float beta, float* c) override {
    if (offsets[0] != 0 || offsets[rows] != nnz) {
      SetError(ComputeStatus::InvalidArgument("CsrMatMul: offsets must run from 0 to nnz"));
      return;
    }
    for (int64_t i = 0; i < rows; ++i) {
      if (offsets[i + 1] < offsets[i]) {
        SetError(ComputeStatus::InvalidArgument("CsrMatMul: offsets decrease at row " +
                                                std::to_string(i)));
        return;
      }
    }
    for (int64_t j = 0; j < nnz; ++j) {
      if (indices[j] < 0 || indices[j] >= cols) {
        SetError(ComputeStatus::InvalidArgument("CsrMatMul: column " +
                                                std::to_string(indices[j]) +
                                                " outside [0, " + std::to_string(cols) + ")"));
        return;
      }
    }
    std::vector<float> acc(static_cast<size_t>(dim));
    for (int64_t i = 0; i < rows; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t j = offsets[i]; j < offsets[i + 1]; ++j) {
        const float v = values[j];
        const float* brow = b + static_cast<int64_t>(indices[j]) * dim;
        for (int64_t d = 0; d < dim; ++d) acc[static_cast<size_t>(d)] += v * brow[d];
      }
      float* crow = c + i * dim;
      for (int64_t d = 0; d < dim; ++d) {
        const float s = alpha * acc[static_cast<size_t>(d)];
        crow[d] = beta == 0.0f ? s : s + beta * crow[d];
      }
    }
  }

 private:
  const GemmFn gemm_;
  const std::string name_;
};

}  // namespace

void NaiveGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, const float* b, float beta, float* c) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = trans_a ? a[p * m + i] : a[i * k + p];
        const float bv = trans_b ? b[j * k + p] : b[p * n + j];
        s += static_cast<double>(av) * static_cast<double>(bv);
      }
      const double r = static_cast<double>(alpha) * s;
      c[i * n + j] = static_cast<float>(
          beta == 0.0f ? r : r + static_cast<double>(beta) * static_cast<double>(c[i * n + j]));
    }
  }
}

std::unique_ptr<Backend> CreateCpuBackend(GemmFn gemm, std::string name) {
  return std::make_unique<CpuBackend>(gemm, std::move(name));
}

}  // namespace ps::compute
