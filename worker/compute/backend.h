// The math the models need, behind one interface with a CPU implementation (the
// reference, worker/compute/cpu_backend.h) and a CUDA one (worker/cuda/cuda_backend.h).
//
// Data lives in Buffers: opaque, move-only handles to backend memory (host memory for
// the CPU backend, device memory for CUDA), so a model uploads a batch and its
// parameters once and every op of a step runs where the data is.
//
// Errors are sticky, as in the CUDA runtime: ops return nothing; a bad argument (a
// buffer too small, of the wrong type or of another backend) or a device failure is
// recorded as the backend's pending error, later ops are skipped, and the next
// CopyToHost() or Sync() returns the error and clears it. So a caller checks once per
// step, at the download, and no error is lost.
//
// Matrices are row-major. Results are deterministic: the same inputs give bitwise the
// same outputs on the same backend and hardware (no float atomics; every reduction
// runs in a fixed order). The two backends agree to rounding, not bitwise.
//
// Thread-safety: a Backend and its Buffers are used by one thread at a time;
// different Backend objects are independent. Ownership: a Buffer frees its memory on
// destruction and must not outlive the Backend that allocated it.
//
// Depends on nothing but the C++ standard library (see compute_status.h for why).
#ifndef PS_WORKER_COMPUTE_BACKEND_H_
#define PS_WORKER_COMPUTE_BACKEND_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "worker/compute/compute_status.h"

namespace ps::compute {

// Element type of a Buffer; both are 4 bytes.
enum class DType { kFloat32, kInt32 };

class Backend;

// Move-only handle to `size()` elements of backend memory. A default-constructed
// Buffer holds nothing (size 0, no owner).
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Reset(); }

  int64_t size() const { return size_; }
  DType dtype() const { return dtype_; }
  // The backend that allocated it; null for an empty handle.
  const Backend* owner() const { return owner_; }
  // Frees the memory now; the handle becomes empty.
  void Reset();

  // Backend-specific address (host or device); for Backend implementations.
  void* raw() const { return ptr_; }

 private:
  friend class Backend;
  Buffer(Backend* owner, void* ptr, int64_t size, DType dtype)
      : owner_(owner), ptr_(ptr), size_(size), dtype_(dtype) {}

  Backend* owner_ = nullptr;  // Not owned.
  void* ptr_ = nullptr;
  int64_t size_ = 0;
  DType dtype_ = DType::kFloat32;
};

class Backend {
 public:
  virtual ~Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Human-readable, e.g. "cpu (openblas)" or "cuda (NVIDIA H100 80GB HBM3)".
  virtual std::string name() const = 0;
  // True when buffers live in GPU memory.
  virtual bool is_gpu() const = 0;

  // --- Memory -----------------------------------------------------------------------

  // `n` (>= 0) elements of unspecified contents. On failure (out of memory: a pending
  // RESOURCE_EXHAUSTED) or with an error pending, returns an empty Buffer.
  Buffer Allocate(DType dtype, int64_t n);
  // Copies `n` elements from host memory into the start of `dst` (which must hold at
  // least n of the matching type). `host` may be reused as soon as this returns.
  void CopyToDevice(const float* host, int64_t n, Buffer* dst);
  void CopyToDevice(const int32_t* host, int64_t n, Buffer* dst);
  // Waits for queued work, copies the first `n` elements of `src` to `host`, and
  // returns the pending error (clearing it); on error `host` is unspecified.
  ComputeStatus CopyToHost(const Buffer& src, int64_t n, float* host);
  ComputeStatus CopyToHost(const Buffer& src, int64_t n, int32_t* host);
  // Waits for queued work; returns the pending error and clears it.
  ComputeStatus Sync();

  // Conveniences: a new buffer holding `values`; all of `src` into `*out` (resized).
  Buffer Upload(const std::vector<float>& values);
  Buffer Upload(const std::vector<int32_t>& values);
  ComputeStatus Download(const Buffer& src, std::vector<float>* out);

  // --- Dense ops (float32 buffers) ----------------------------------------------------

  // C[m x n] = alpha * op(A) * op(B) + beta * C, where op(A) is m x k (A is stored
  // k x m when trans_a) and op(B) is k x n (B stored n x k when trans_b). With
  // beta == 0, C is not read (NaN there is ignored). C must not alias A or B.
  void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
            const Buffer& a, const Buffer& b, float beta, Buffer* c);
  // Y[i, j] += bias[j] for Y [m x n].
  void AddBias(int64_t m, int64_t n, const Buffer& bias, Buffer* y);
  // out[j] = alpha * sum_i X[i, j] + beta * out[j] for X [m x n], summing i in
  // increasing order. beta == 0: out is not read.
  void ColumnSums(int64_t m, int64_t n, float alpha, const Buffer& x, float beta,
                  Buffer* out);
  // y = max(x, 0) over n elements; y may be x.
  void Relu(int64_t n, const Buffer& x, Buffer* y);
  // dx = (y > 0) ? dy : 0, where y is the ReLU output; dx may be dy.
  void ReluBackward(int64_t n, const Buffer& y, const Buffer& dy, Buffer* dx);
  // y += alpha * x over n elements.
  void Axpy(int64_t n, float alpha, const Buffer& x, Buffer* y);
  // x *= alpha over n elements.
  void Scale(int64_t n, float alpha, Buffer* x);
  // x = value over n elements.
  void Fill(int64_t n, float value, Buffer* x);

  // --- Losses -------------------------------------------------------------------------

  // Softmax cross-entropy of logits Z [m x c] against int32 `labels` [m]:
  // loss[i] = logsumexp(Z[i, :]) - Z[i, labels[i]] (computed stably, with the row max
  // subtracted) and, when `dlogits` is not null, dlogits[i, j] =
  // grad_scale * (softmax(Z[i, :])[j] - [j == labels[i]]). dlogits may be the logits
  // buffer. A label outside [0, c) gives loss NaN for its row (callers validate).
  void SoftmaxCrossEntropy(int64_t m, int64_t c, const Buffer& logits,
                           const Buffer& labels, float grad_scale, Buffer* loss,
                           Buffer* dlogits);
  // Sigmoid binary cross-entropy of logits z [m] against int32 labels y [m] in {0, 1}:
  // loss[i] = max(z, 0) - z * y + log1p(exp(-|z|)) (stable for any z); when not null,
  // dlogits[i] = grad_scale * (sigmoid(z) - y) and prob[i] = sigmoid(z).
  void SigmoidCrossEntropy(int64_t m, const Buffer& logits, const Buffer& labels,
                           float grad_scale, Buffer* loss, Buffer* dlogits, Buffer* prob);

  // --- Sparse -------------------------------------------------------------------------

  // C[rows x dim] = alpha * S * B + beta * C, where S [rows x cols] is CSR: row i has
  // the entries [offsets[i], offsets[i + 1]) of int32 `indices` (column) and float
  // `values`; B is [cols x dim]. Each C[i, d] sums its row's entries in stored order.
  // This is the gather of sparse rows (S = a batch, B = pulled embedding rows); the
  // scatter-add of their gradients is the same op with the transposed CSR (built on
  // the host), which keeps it deterministic without atomics. `offsets` must rise from 0
  // to nnz and every index be in [0, cols): the CPU backend checks this (a pending
  // INVALID_ARGUMENT), the CUDA backend does not read device data back to check.
  // beta == 0: C is not read.
  void CsrMatMul(int64_t rows, int64_t cols, int64_t dim, int64_t nnz,
                 const Buffer& offsets, const Buffer& indices, const Buffer& values,
                 float alpha, const Buffer& b, float beta, Buffer* c);

 protected:
  Backend() = default;

  // Records `status` as the pending error unless one is pending already.
  void SetError(ComputeStatus status);
  bool has_error() const { return !error_.ok(); }

  // Implementations. Called only with no error pending, validated shapes (all sizes
  // > 0 unless noted) and buffers of this backend; pointers are raw() addresses.
  // A failing implementation calls SetError().
  virtual void* AllocateImpl(int64_t bytes) = 0;  // bytes > 0; null on failure.
  virtual void FreeImpl(void* ptr) = 0;
  virtual void CopyToDeviceImpl(const void* host, int64_t bytes, void* dst) = 0;
  virtual void CopyToHostImpl(const void* src, int64_t bytes, void* host) = 0;
  virtual void SyncImpl() = 0;
  // k > 0 here; k == 0 is handled as a Scale of C by beta.
  virtual void GemmImpl(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const float* a, const float* b, float beta,
                        float* c) = 0;
  virtual void AddBiasImpl(int64_t m, int64_t n, const float* bias, float* y) = 0;
  // m may be 0 (then out = beta * out, or 0 when beta == 0).
  virtual void ColumnSumsImpl(int64_t m, int64_t n, float alpha, const float* x,
                              float beta, float* out) = 0;
  virtual void ReluImpl(int64_t n, const float* x, float* y) = 0;
  virtual void ReluBackwardImpl(int64_t n, const float* y, const float* dy,
                                float* dx) = 0;
  virtual void AxpyImpl(int64_t n, float alpha, const float* x, float* y) = 0;
  virtual void ScaleImpl(int64_t n, float alpha, float* x) = 0;
  virtual void FillImpl(int64_t n, float value, float* x) = 0;
  // dlogits may be null.
  virtual void SoftmaxCrossEntropyImpl(int64_t m, int64_t c, const float* logits,
                                       const int32_t* labels, float grad_scale,
                                       float* loss, float* dlogits) = 0;
  // dlogits and prob may be null.
  virtual void SigmoidCrossEntropyImpl(int64_t m, const float* logits,
                                       const int32_t* labels, float grad_scale,
                                       float* loss, float* dlogits, float* prob) = 0;
  // nnz may be 0.
  virtual void CsrMatMulImpl(int64_t rows, int64_t cols, int64_t dim, int64_t nnz,
                             const int32_t* offsets, const int32_t* indices,
                             const float* values, float alpha, const float* b,
                             float beta, float* c) = 0;

 private:
  friend class Buffer;

  // Checks that `buf` is a buffer of this backend of type `dtype` with at least `n`
  // elements; records INVALID_ARGUMENT naming `op` and `what` otherwise.
  bool Check(const char* op, const char* what, const Buffer& buf, DType dtype, int64_t n);
  bool CheckDims(const char* op, std::initializer_list<int64_t> dims);
  void CopyIn(const void* host, int64_t n, DType dtype, Buffer* dst);
  ComputeStatus CopyOut(const Buffer& src, int64_t n, DType dtype, void* host);

  ComputeStatus error_;
};

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_BACKEND_H_
