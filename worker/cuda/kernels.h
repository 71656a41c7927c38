// CUDA kernels of the compute backend, on raw device pointers. Compiled by nvcc
// (cuda_library); used by cuda_backend.cc. Each function enqueues its kernel on
// `stream` (a cudaStream_t) and returns an empty string, or the launch error.
// Shapes are validated by compute::Backend before these are called (all > 0).
//
// Determinism: no atomics; every reduction runs in a fixed order (a per-column or
// per-output loop in increasing index, or a fixed warp butterfly), so the same inputs
// give bitwise the same outputs on the same GPU. The kernels are compiled with
// --fmad=false so that they round like the CPU reference.
#ifndef PS_WORKER_CUDA_KERNELS_H_
#define PS_WORKER_CUDA_KERNELS_H_

#include <cstdint>
#include <string>

namespace ps::cuda {

// Y[i, j] += bias[j], Y [m x n].
std::string LaunchAddBias(void* stream, int64_t m, int64_t n, const float* bias, float* y);
// out[j] = alpha * sum_i X[i, j] + beta * out[j] (beta == 0: out not read); one thread
// per column sums i = 0, 1, ... in order. m may be 0.
std::string LaunchColumnSums(void* stream, int64_t m, int64_t n, float alpha,
                             const float* x, float beta, float* out);
std::string LaunchRelu(void* stream, int64_t n, const float* x, float* y);
std::string LaunchReluBackward(void* stream, int64_t n, const float* y, const float* dy,
                               float* dx);
std::string LaunchAxpy(void* stream, int64_t n, float alpha, const float* x, float* y);
std::string LaunchScale(void* stream, int64_t n, float alpha, float* x);
std::string LaunchFill(void* stream, int64_t n, float value, float* x);
// One warp per row; dlogits may be null or equal to logits.
std::string LaunchSoftmaxCrossEntropy(void* stream, int64_t m, int64_t c,
                                      const float* logits, const int32_t* labels,
                                      float grad_scale, float* loss, float* dlogits);
// dlogits and prob may be null.
std::string LaunchSigmoidCrossEntropy(void* stream, int64_t m, const float* logits,
                                      const int32_t* labels, float grad_scale, float* loss,
                                      float* dlogits, float* prob);
// C = alpha * CSR * B + beta * C; one thread per output element sums its row's
// entries in stored order. nnz may be 0.
std::string LaunchCsrMatMul(void* stream, int64_t rows, int64_t dim,
                            const int32_t* offsets, const int32_t* indices,
                            const float* values, float alpha, const float* b, float beta,
                            float* c);

// cuBLAS, wrapped here because its headers need nvcc's include setup. `handle` is a
// cublasHandle_t. BlasCreate makes a handle on `stream` in FP32 math (never TF32) with
// atomics disallowed, so GEMMs are bitwise reproducible; returns "" or the error.
std::string BlasCreate(void* stream, void** handle);
void BlasDestroy(void* handle);
// Row-major C[m x n] = alpha * op(A) op(B) + beta * C (compute::Backend::Gemm); the
// dimensions fit int. Returns "" or the cuBLAS error.
std::string BlasGemm(void* handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float* a, const float* b, float beta,
                     float* c);

}  // namespace ps::cuda

#endif  // PS_WORKER_CUDA_KERNELS_H_
