#include "worker/compute/factory.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/cuda/cuda_backend.h"
#include "worker/cuda/device.h"

namespace ps::compute {

absl::StatusOr<DeviceChoice> ParseDeviceChoice(absl::string_view text) {
  if (text == "auto") return DeviceChoice::kAuto;
  if (text == "cpu") return DeviceChoice::kCpu;
  if (text == "gpu") return DeviceChoice::kGpu;
  return absl::InvalidArgumentError(
      absl::StrCat("device must be auto, cpu or gpu, got \"", text, "\""));
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(DeviceChoice choice) {
  if (choice == DeviceChoice::kCpu) {
    auto backend = CreateOpenBlasBackend();
    PS_LOG(INFO) << "compute backend: " << backend->name() << " (asked for cpu)";
    return backend;
  }
  std::string why;
  if (cuda::DeviceCount(&why) > 0) {
    std::unique_ptr<Backend> gpu = cuda::CreateCudaBackend(0, &why);
    if (gpu != nullptr) {
      PS_LOG(INFO) << "compute backend: " << gpu->name()
                   << (choice == DeviceChoice::kAuto ? " (auto: a GPU is present)"
                                                     : " (asked for gpu)");
      return gpu;
    }
  }
  if (choice == DeviceChoice::kGpu) {
    return absl::FailedPreconditionError(
        absl::StrCat("device gpu: no usable CUDA device: ", why));
  }
  auto backend = CreateOpenBlasBackend();
  PS_LOG(INFO) << "compute backend: " << backend->name() << " (auto: no GPU: " << why << ")";
  return backend;
}

}  // namespace ps::compute
