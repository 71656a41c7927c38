// The CUDA implementation of compute::Backend: cuBLAS for GEMMs, the kernels of
// kernels.h for everything else, one CUDA stream per backend. Buffers are device
// memory (cudaMalloc). Depends only on the CUDA runtime (static), cuBLAS and the C++
// standard library, so binaries using it run on GPU machines without Bazel, abseil
// or gRPC.
//
// Determinism: one stream, cuBLAS in its default FP32 math mode (no TF32) with
// atomics disallowed, and kernels without atomics: same inputs, same GPU model, same
// library versions give bitwise the same outputs.
#ifndef PS_WORKER_CUDA_CUDA_BACKEND_H_
#define PS_WORKER_CUDA_CUDA_BACKEND_H_

#include <memory>
#include <string>

#include "worker/compute/backend.h"

namespace ps::cuda {

// A backend on CUDA device `device`, or null with the reason in `*error` (no device,
// driver missing, cuBLAS failed to start). Thread-safe; the returned backend is used
// by one thread at a time, like every Backend.
std::unique_ptr<compute::Backend> CreateCudaBackend(int device, std::string* error);

}  // namespace ps::cuda

#endif  // PS_WORKER_CUDA_CUDA_BACKEND_H_
