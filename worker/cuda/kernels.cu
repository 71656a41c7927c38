#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "worker/cuda/kernels.h"

namespace ps::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 65535;
constexpr unsigned kFullMask = 0xffffffffu;

int Blocks(int64_t work) {
  int64_t b = (work + kThreads - 1) / kThreads;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return static_cast<int>(b < 1 ? 1 : b);
}

__device__ int64_t GlobalIndex() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ int64_t GlobalStride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

__global__ void AddBiasKernel(int64_t m, int64_t n, const float* bias, float* y) {
  const int64_t total = m * n;
  for (int64_t i = GlobalIndex(); i < total; i += GlobalStride()) y[i] += bias[i % n];
}

__global__ void ColumnSumsKernel(int64_t m, int64_t n, float alpha, const float* x,
                                 float beta, float* out) {
  for (int64_t j = GlobalIndex(); j < n; j += GlobalStride()) {
    float s = 0.0f;
    for (int64_t i = 0; i < m; ++i) s += x[i * n + j];
    const float r = alpha * s;
    out[j] = beta == 0.0f ? r : r + beta * out[j];
  }
}

__global__ void ReluKernel(int64_t n, const float* x, float* y) {
  for (int64_t i = GlobalIndex(); i < n; i += GlobalStride()) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

__global__ void ReluBackwardKernel(int64_t n, const float* y, const float* dy, float* dx) {
  for (int64_t i = GlobalIndex(); i < n; i += GlobalStride()) {
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }
}

__global__ void AxpyKernel(int64_t n, float alpha, const float* x, float* y) {
  for (int64_t i = GlobalIndex(); i < n; i += GlobalStride()) y[i] += alpha * x[i];
}

__global__ void ScaleKernel(int64_t n, float alpha, float* x) {
  for (int64_t i = GlobalIndex(); i < n; i += GlobalStride()) x[i] *= alpha;
}

__global__ void FillKernel(int64_t n, float value, float* x) {
  for (int64_t i = GlobalIndex(); i < n; i += GlobalStride()) x[i] = value;
}

// One warp per row. Lane l handles columns l, l + 32, ...; the 32 partials are then
// combined by a xor butterfly, after which every lane holds the same value (each
// step adds the same two operands on both partner lanes, and float addition is
// commutative), so the result does not depend on timing.
__global__ void SoftmaxCrossEntropyKernel(int64_t m, int64_t c, const float* logits,
                                          const int32_t* labels, float grad_scale,
                                          float* loss, float* dlogits) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = GlobalIndex() / 32;
  const int64_t warps = GlobalStride() / 32;
  for (int64_t row = warp; row < m; row += warps) {  // Uniform within the warp.
    const float* z = logits + row * c;
    float mx = -INFINITY;
    for (int64_t j = lane; j < c; j += 32) mx = fmaxf(mx, z[j]);
    for (int off = 16; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(kFullMask, mx, off));
    float s = 0.0f;
    for (int64_t j = lane; j < c; j += 32) s += expf(z[j] - mx);
    for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(kFullMask, s, off);
    const int32_t y = labels[row];
    const bool valid = y >= 0 && y < c;
    // Every lane reads z[y] before any lane overwrites it (dlogits may be logits).
    const float zy = valid ? z[y] : 0.0f;
    __syncwarp(kFullMask);
    if (lane == 0) loss[row] = valid ? mx + logf(s) - zy : NAN;
    if (dlogits != nullptr) {
      float* d = dlogits + row * c;
      for (int64_t j = lane; j < c; j += 32) {
        const float p = expf(z[j] - mx) / s;
        d[j] = (p - (j == y ? 1.0f : 0.0f)) * grad_scale;
      }
    }
  }
}

__global__ void SigmoidCrossEntropyKernel(int64_t m, const float* logits,
                                          const int32_t* labels, float grad_scale,
                                          float* loss, float* dlogits, float* prob) {
  for (int64_t i = GlobalIndex(); i < m; i += GlobalStride()) {
    const float z = logits[i];
    const float y = static_cast<float>(labels[i]);
    loss[i] = fmaxf(z, 0.0f) - z * y + log1pf(expf(-fabsf(z)));
    const float e = expf(-fabsf(z));
    const float p = z >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    if (dlogits != nullptr) dlogits[i] = (p - y) * grad_scale;
    if (prob != nullptr) prob[i] = p;
  }
}

__global__ void CsrMatMulKernel(int64_t rows, int64_t dim, const int32_t* offsets,
                                const int32_t* indices, const float* values, float alpha,
                                const float* b, float beta, float* c) {
  const int64_t total = rows * dim;
  for (int64_t t = GlobalIndex(); t < total; t += GlobalStride()) {
    const int64_t i = t / dim;
    const int64_t d = t % dim;
    float s = 0.0f;
    for (int32_t j = offsets[i]; j < offsets[i + 1]; ++j) {
      s += values[j] * b[static_cast<int64_t>(indices[j]) * dim + d];
    }
    const float r = alpha * s;
    c[t] = beta == 0.0f ? r : r + beta * c[t];
  }
}

std::string LaunchResult(const char* kernel) {
  const cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) return "";
  return std::string(kernel) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
}

cudaStream_t S(void* stream) { return static_cast<cudaStream_t>(stream); }

}  // namespace

std::string LaunchAddBias(void* stream, int64_t m, int64_t n, const float* bias, float* y) {
  AddBiasKernel<<<Blocks(m * n), kThreads, 0, S(stream)>>>(m, n, bias, y);
  return LaunchResult("AddBias");
}

std::string LaunchColumnSums(void* stream, int64_t m, int64_t n, float alpha,
                             const float* x, float beta, float* out) {
  ColumnSumsKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(m, n, alpha, x, beta, out);
  return LaunchResult("ColumnSums");
}

std::string LaunchRelu(void* stream, int64_t n, const float* x, float* y) {
  ReluKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(n, x, y);
  return LaunchResult("Relu");
}

std::string LaunchReluBackward(void* stream, int64_t n, const float* y, const float* dy,
                               float* dx) {
  ReluBackwardKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(n, y, dy, dx);
  return LaunchResult("ReluBackward");
}

std::string LaunchAxpy(void* stream, int64_t n, float alpha, const float* x, float* y) {
  AxpyKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(n, alpha, x, y);
  return LaunchResult("Axpy");
}

std::string LaunchScale(void* stream, int64_t n, float alpha, float* x) {
  ScaleKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(n, alpha, x);
  return LaunchResult("Scale");
}

std::string LaunchFill(void* stream, int64_t n, float value, float* x) {
  FillKernel<<<Blocks(n), kThreads, 0, S(stream)>>>(n, value, x);
  return LaunchResult("Fill");
}

std::string LaunchSoftmaxCrossEntropy(void* stream, int64_t m, int64_t c,
                                      const float* logits, const int32_t* labels,
                                      float grad_scale, float* loss, float* dlogits) {
  SoftmaxCrossEntropyKernel<<<Blocks(m * 32), kThreads, 0, S(stream)>>>(
      m, c, logits, labels, grad_scale, loss, dlogits);
  return LaunchResult("SoftmaxCrossEntropy");
}

std::string LaunchSigmoidCrossEntropy(void* stream, int64_t m, const float* logits,
                                      const int32_t* labels, float grad_scale, float* loss,
                                      float* dlogits, float* prob) {
  SigmoidCrossEntropyKernel<<<Blocks(m), kThreads, 0, S(stream)>>>(m, logits, labels,
                                                                    grad_scale, loss,
                                                                    dlogits, prob);
  return LaunchResult("SigmoidCrossEntropy");
}

std::string LaunchCsrMatMul(void* stream, int64_t rows, int64_t dim,
                            const int32_t* offsets, const int32_t* indices,
                            const float* values, float alpha, const float* b, float beta,
                            float* c) {
  CsrMatMulKernel<<<Blocks(rows * dim), kThreads, 0, S(stream)>>>(
      rows, dim, offsets, indices, values, alpha, b, beta, c);
  return LaunchResult("CsrMatMul");
}

}  // namespace ps::cuda
