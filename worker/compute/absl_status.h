// The one conversion from the compute core's ComputeStatus to absl::Status.
#ifndef PS_WORKER_COMPUTE_ABSL_STATUS_H_
#define PS_WORKER_COMPUTE_ABSL_STATUS_H_

#include "absl/status/status.h"
#include "worker/compute/compute_status.h"

namespace ps::compute {

// Same code (by name) and message.
absl::Status ToAbslStatus(const ComputeStatus& status);

}  // namespace ps::compute

#endif  // PS_WORKER_COMPUTE_ABSL_STATUS_H_
