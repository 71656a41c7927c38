#include "worker/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "worker/compute/backend.h"
#include "worker/cuda/kernels.h"

namespace ps::cuda {
namespace {

using compute::ComputeStatus;

std::string CudaText(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

class CudaBackend final : public compute::Backend {
 public:
  // Takes ownership of `stream` and `blas`.
  CudaBackend(int device, std::string device_name, cudaStream_t stream, void* blas)
      : device_(device), device_name_(std::move(device_name)), stream_(stream), blas_(blas) {}

  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    BlasDestroy(blas_);
    cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda (" + device_name_ + ")"; }
  bool is_gpu() const override { return true; }

 protected:
  void* AllocateImpl(int64_t bytes) override {
    if (!Cuda(cudaSetDevice(device_), "cudaSetDevice")) return nullptr;
    void* ptr = nullptr;
    const cudaError_t e = cudaMalloc(&ptr, static_cast<size_t>(bytes));
    if (e != cudaSuccess) {
      cudaGetLastError();  // Clear the (non-sticky) allocation error.
      return nullptr;      // The caller records RESOURCE_EXHAUSTED.
    }
    return ptr;
  }

  void FreeImpl(void* ptr) override {
    cudaSetDevice(device_);
    Cuda(cudaFree(ptr), "cudaFree");
  }

  void CopyToDeviceImpl(const void* host, int64_t bytes, void* dst) override {
    // From pageable host memory this returns once `host` has been staged, so the
    // caller may reuse it at once.
    Cuda(cudaMemcpyAsync(dst, host, static_cast<size_t>(bytes), cudaMemcpyHostToDevice,
                         stream_),
         "cudaMemcpyAsync to device");
  }

  void CopyToHostImpl(const void* src, int64_t bytes, void* host) override {
    // Completed by the SyncImpl() that CopyToHost() runs next.
    Cuda(cudaMemcpyAsync(host, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost,
                         stream_),
         "cudaMemcpyAsync to host");
  }

  void SyncImpl() override { Cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"); }

  void GemmImpl(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                const float* a, const float* b, float beta, float* c) override {
    Launched(BlasGemm(blas_, trans_a, trans_b, m, n, k, alpha, a, b, beta, c));
  }

  void AddBiasImpl(int64_t m, int64_t n, const float* bias, float* y) override {
    Launched(LaunchAddBias(stream_, m, n, bias, y));
  }
  void ColumnSumsImpl(int64_t m, int64_t n, float alpha, const float* x, float beta,
                      float* out) override {
    Launched(LaunchColumnSums(stream_, m, n, alpha, x, beta, out));
  }
  void ReluImpl(int64_t n, const float* x, float* y) override {
    Launched(LaunchRelu(stream_, n, x, y));
  }
  void ReluBackwardImpl(int64_t n, const float* y, const float* dy, float* dx) override {
    Launched(LaunchReluBackward(stream_, n, y, dy, dx));
  }
  void AxpyImpl(int64_t n, float alpha, const float* x, float* y) override {
    Launched(LaunchAxpy(stream_, n, alpha, x, y));
  }
  void ScaleImpl(int64_t n, float alpha, float* x) override {
    Launched(LaunchScale(stream_, n, alpha, x));
  }
  void FillImpl(int64_t n, float value, float* x) override {
    Launched(LaunchFill(stream_, n, value, x));
  }
  void SoftmaxCrossEntropyImpl(int64_t m, int64_t c, const float* logits,
                               const int32_t* labels, float grad_scale, float* loss,
                               float* dlogits) override {
    Launched(LaunchSoftmaxCrossEntropy(stream_, m, c, logits, labels, grad_scale, loss,
                                       dlogits));
  }
  void SigmoidCrossEntropyImpl(int64_t m, const float* logits, const int32_t* labels,
                               float grad_scale, float* loss, float* dlogits,
                               float* prob) override {
    Launched(LaunchSigmoidCrossEntropy(stream_, m, logits, labels, grad_scale, loss, dlogits,
                                       prob));
  }
  void CsrMatMulImpl(int64_t rows, int64_t /*cols*/, int64_t dim, int64_t /*nnz*/,
                     const int32_t* offsets, const int32_t* indices, const float* values,
                     float alpha, const float* b, float beta, float* c) override {
    Launched(LaunchCsrMatMul(stream_, rows, dim, offsets, indices, values, alpha, b, beta, c));
  }

 private:
  bool Cuda(cudaError_t e, const char* what) {
    if (e == cudaSuccess) return true;
    SetError(e == cudaErrorMemoryAllocation
                 ? ComputeStatus::ResourceExhausted(std::string(what) + ": " + CudaText(e))
                 : ComputeStatus::Internal(std::string(what) + ": " + CudaText(e)));
    return false;
  }

  void Launched(const std::string& error) {
    if (!error.empty()) SetError(ComputeStatus::Internal(error));
  }

  // Constant after construction.
  const int device_;
  const std::string device_name_;
  cudaStream_t const stream_;
  void* const blas_;  // cublasHandle_t.
};

}  // namespace

std::unique_ptr<compute::Backend> CreateCudaBackend(int device, std::string* error) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || device < 0 || device >= count) {
    *error = e != cudaSuccess ? CudaText(e)
                              : "device " + std::to_string(device) + " of " +
                                    std::to_string(count) + " CUDA devices";
    cudaGetLastError();
    return nullptr;
  }
  cudaDeviceProp prop;
  e = cudaSetDevice(device);
  if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, device);
  cudaStream_t stream = nullptr;
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    *error = CudaText(e);
    cudaGetLastError();
    return nullptr;
  }
  void* blas = nullptr;
  const std::string blas_error = BlasCreate(stream, &blas);
  if (!blas_error.empty()) {
    *error = blas_error;
    cudaStreamDestroy(stream);
    return nullptr;
  }
  return std::make_unique<CudaBackend>(device, prop.name, stream, blas);
}

}  // namespace ps::cuda
