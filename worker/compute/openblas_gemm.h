// GEMM through OpenBLAS's cblas_sgemm, and the production CPU backend built on it.
//
// OpenBLAS splits a GEMM over threads by blocks of C, never along k, so its results
// do not depend on the thread count: deterministic, as Backend requires.
#ifndef PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_
#define PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_

#include <cstdint>
#include <memory>

#include "worker/compute/backend.h"

namespace ps::compute {

// A GemmFn (worker/compute/cpu_backend.h) calling cblas_sgemm; thread-safe.
void OpenBlasGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, const float* b, float beta, float* c);

// The CPU backend with OpenBLAS GEMMs; name() is "cpu (openblas)".
std::unique_ptr<Backend> CreateOpenBlasBackend();

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_
