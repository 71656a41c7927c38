#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "worker/cuda/kernels.h"

namespace ps::cuda {
namespace {

std::string CublasText(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s);
}

}  // namespace

std::string BlasCreate(void* stream, void** handle) {
  cublasHandle_t blas = nullptr;
  cublasStatus_t s = cublasCreate(&blas);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(blas, static_cast<cudaStream_t>(stream));
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetAtomicsMode(blas, CUBLAS_ATOMICS_NOT_ALLOWED);
  if (s != CUBLAS_STATUS_SUCCESS) {
    if (blas != nullptr) cublasDestroy(blas);
    return "cuBLAS: " + CublasText(s);
  }
  *handle = blas;
  return "";
}

void BlasDestroy(void* handle) {
  if (handle != nullptr) cublasDestroy(static_cast<cublasHandle_t>(handle));
}

std::string BlasGemm(void* handle, bool trans_a, bool trans_b, int64_t m, int64_t n,
                     int64_t k, float alpha, const float* a, const float* b, float beta,
                     float* c) {
  // cuBLAS is column-major, where a row-major matrix reads as its transpose; so
  // compute C^T [n x m] = op(B)^T op(A)^T, i.e. swap the operands.
  const int lda = static_cast<int>(trans_a ? m : k);
  const int ldb = static_cast<int>(trans_b ? k : n);
  const cublasStatus_t s = cublasSgemm(
      static_cast<cublasHandle_t>(handle), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
      trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
      static_cast<int>(k), &alpha, b, ldb, a, lda, &beta, c, static_cast<int>(n));
  return s == CUBLAS_STATUS_SUCCESS ? "" : "cublasSgemm: " + CublasText(s);
}

}  // namespace ps::cuda
