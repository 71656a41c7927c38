// The CPU backend: the reference implementation of Backend, in plain loops except for
// GEMM, which is pluggable. The production CPU backend plugs in OpenBLAS
// (worker/compute/openblas_gemm.h); tests that must not link OpenBLAS (the CUDA
// equivalence test, which runs on machines with nothing but the CUDA driver) use
// NaiveGemm.
//
// Depends on nothing but the C++ standard library.
#ifndef PS_WORKER_COMPUTE_CPU_BACKEND_H_
#define PS_WORKER_COMPUTE_CPU_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>

#include "worker/compute/backend.h"

namespace ps::compute {

// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C with Backend::Gemm's
// conventions (m, n, k > 0; beta == 0: C is not read). Must be deterministic.
using GemmFn = void (*)(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const float* a, const float* b, float beta, float* c);

// Reference GEMM: triple loop accumulating each dot product in double, in increasing
// k. Slow; for tests and as the ground truth for the other GEMMs.
void NaiveGemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
               const float* a, const float* b, float beta, float* c);

// A CPU backend using `gemm`, reporting `name` from name(). Buffers are 64-byte
// aligned host memory. Thread-safety as for every Backend (one thread at a time).
std::unique_ptr<Backend> CreateCpuBackend(GemmFn gemm = NaiveGemm,
                                          std::string name = "cpu (naive gemm)");

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_CPU_BACKEND_H_
