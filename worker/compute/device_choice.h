// Which compute backend a worker asks for (--device=auto|cpu|gpu). Header-only and
// dependency-free, so code that only maps a JobSpec (e.g. worker/model/job_model.h,
// which the coordinator may use for TablesForJob) does not link CUDA or OpenBLAS.
#ifndef PS_WORKER_COMPUTE_DEVICE_CHOICE_H_
#define PS_WORKER_COMPUTE_DEVICE_CHOICE_H_

namespace ps::compute {

enum class DeviceChoice {
  kAuto,  // The GPU when worker/cuda finds one, else the CPU.
  kCpu,   // The CPU backend with OpenBLAS.
  kGpu,   // CUDA device 0; an error without one.
};

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_DEVICE_CHOICE_H_
