#include "worker/compute/absl_status.h"

#include "absl/status/status.h"

namespace ps::compute {

absl::Status ToAbslStatus(const ComputeStatus& status) {
  using Code = ComputeStatus::Code;
  switch (status.code()) {
    case Code::kOk:
      return absl::OkStatus();
    case Code::kInvalidArgument:
      return absl::InvalidArgumentError(status.message());
    case Code::kFailedPrecondition:
      return absl::FailedPreconditionError(status.message());
    case Code::kResourceExhausted:
      return absl::ResourceExhaustedError(status.message());
    case Code::kInternal:
      return absl::InternalError(status.message());
  }
  return absl::UnknownError(status.message());
}

}  // namespace ps::compute
