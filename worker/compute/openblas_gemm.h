// GEMM through OpenBLAS's cblas_sgemm, and the production CPU backend built on it.
//
// OpenBLAS splits a GEMM over threads by blocks of C, never along k, so its results
// do not depend on the thread count: deterministic, as Backend requires.
#ifndef PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_
#define PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "worker/compute/backend.h"

namespace ps::compute {

// A GemmFn (worker/compute/cpu_backend.h) calling cblas_sgemm; thread-safe.
void OpenBlasGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, const float* b, float beta, float* c);

// The CPU backend with OpenBLAS GEMMs; name() is "cpu (openblas)".
std::unique_ptr<Backend> CreateOpenBlasBackend();

// Threads of each GEMM, for the whole process (OpenBLAS keeps one pool): `threads` >= 1;
// INVALID_ARGUMENT otherwise. Unset, OpenBLAS takes OPENBLAS_NUM_THREADS, else one per
// core. Daemons sharing a host should divide its cores: OpenBLAS's threads spin for a
// while after each GEMM, so with the shards and two workers on 2 cores the default
// took the cores the shards needed (the Fashion-MNIST MLP's step 0.5 -> 1.8 ms with a
// second worker; 1 thread each: 0.5 ms).
absl::Status SetCpuGemmThreads(int threads);
// The threads OpenBLAS uses for a GEMM now.
int CpuGemmThreads();

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_OPENBLAS_GEMM_H_
