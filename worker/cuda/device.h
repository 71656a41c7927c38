// GPU discovery for the CUDA backend. Depends only on the CUDA runtime.
#ifndef PS_WORKER_CUDA_DEVICE_H_
#define PS_WORKER_CUDA_DEVICE_H_

#include <string>

namespace ps::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device. `why`, when
// not null, receives the runtime's reason for 0.
int DeviceCount(std::string* why = nullptr);

// Name of device 0, e.g. "NVIDIA H100 80GB HBM3"; empty when none.
std::string DeviceName();

// y[i] = a * x[i] + y[i] on device 0 (copying in and out). Returns an empty string on
// success, else the CUDA error. The smallest end-to-end proof that our nvcc rule, the
// static runtime and a device work together.
std::string Saxpy(float a, const float* x, float* y, int n);

}  // namespace ps::cuda

#endif  // PS_WORKER_CUDA_DEVICE_H_
