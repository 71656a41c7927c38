// A small status type for the compute core (backends and models).
//
// The compute core links into the CUDA test binaries, which run on GPU machines that
// have neither abseil nor gRPC, so it cannot use absl::Status. ToAbslStatus()
// (worker/compute/absl_status.h) converts at the boundary to the rest of the worker.
// Header-only; a value type, thread-compatible.
#ifndef PS_WORKER_COMPUTE_COMPUTE_STATUS_H_
#define PS_WORKER_COMPUTE_COMPUTE_STATUS_H_

#include <string>
#include <utility>

namespace ps::compute {

// OK, or an error code with a message. [[nodiscard]]: a status is never dropped
// silently (an intended ignore is `.IgnoreError()`).
class [[nodiscard]] ComputeStatus {
 public:
  // Codes map 1:1 to absl::StatusCode of the same name.
  enum class Code {
    kOk = 0,
    kInvalidArgument,     // Bad shapes or values from the caller; do not retry.
    kFailedPrecondition,  // E.g. a GPU backend asked for where there is no GPU.
    kResourceExhausted,   // Out of (device) memory.
    kInternal,            // The device or library failed.
  };

  ComputeStatus() = default;
  ComputeStatus(Code code, std::string message)
      : code_(code), message_(code == Code::kOk ? "" : std::move(message)) {}

  static ComputeStatus Ok() { return ComputeStatus(); }
  static ComputeStatus InvalidArgument(std::string m) {
    return ComputeStatus(Code::kInvalidArgument, std::move(m));
  }
  static ComputeStatus FailedPrecondition(std::string m) {
    return ComputeStatus(Code::kFailedPrecondition, std::move(m));
  }
  static ComputeStatus ResourceExhausted(std::string m) {
    return ComputeStatus(Code::kResourceExhausted, std::move(m));
  }
  static ComputeStatus Internal(std::string m) {
    return ComputeStatus(Code::kInternal, std::move(m));
  }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK" or "INVALID_ARGUMENT: message".
  std::string ToString() const {
    static const char* const kNames[] = {"OK", "INVALID_ARGUMENT", "FAILED_PRECONDITION",
                                         "RESOURCE_EXHAUSTED", "INTERNAL"};
    if (ok()) return "OK";
    return std::string(kNames[static_cast<int>(code_)]) + ": " + message_;
  }
  // Explicitly discards the status.
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

}  // namespace ps::compute

// Returns from the enclosing function if `expr` (a ComputeStatus) is not OK.
#define PS_COMPUTE_RETURN_IF_ERROR(expr)                  \
  do {                                                    \
    ::ps::compute::ComputeStatus ps_compute_status_ = (expr); \
    if (!ps_compute_status_.ok()) return ps_compute_status_; \
  } while (false)

#endif  // PS_WORKER_COMPUTE_COMPUTE_STATUS_H_
