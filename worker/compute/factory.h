// Picks and creates the worker's compute backend (--device=auto|cpu|gpu).
#ifndef PS_WORKER_COMPUTE_FACTORY_H_
#define PS_WORKER_COMPUTE_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/compute/backend.h"
#include "worker/compute/device_choice.h"

namespace ps::compute {

// "auto", "cpu" or "gpu"; INVALID_ARGUMENT otherwise.
absl::StatusOr<DeviceChoice> ParseDeviceChoice(absl::string_view text);

// Creates the backend and logs (INFO) which one it picked and why; backend->name()
// says it too. kGpu without a usable device is FAILED_PRECONDITION with the CUDA
// runtime's reason; kAuto falls back to the CPU (logging the reason) when the GPU
// backend cannot start. Thread-safe.
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(DeviceChoice choice);

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_FACTORY_H_
