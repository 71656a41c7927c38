// Validation of a JobSpec and of names used on the wire, and what its checkpoint
// settings mean. Every error is
// INVALID_ARGUMENT and starts with the field's path, e.g.
// "spec.optimizer.learning_rate: must be > 0, got -0.1".
#ifndef PS_COMMON_JOB_SPEC_H_
#define PS_COMMON_JOB_SPEC_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proto/job.pb.h"

namespace ps {

// Checks every field of `spec` against the ranges documented in proto/job.proto. Does
// not touch the file system (the coordinator checks data paths under --data_root).
absl::Status ValidateJobSpec(const JobSpec& spec);

// Checks an optimizer; `field` is its path for messages.
absl::Status ValidateOptimizer(const OptimizerSpec& opt, absl::string_view field);

// Checks a table spec; `field` is its path for messages.
absl::Status ValidateTableSpec(const TableSpec& table, absl::string_view field);

// Job and table ids: [A-Za-z0-9_.-]{1,64}.
absl::Status ValidateName(absl::string_view name, absl::string_view field);

// Whether shards checkpoint a job of this consistency: SYNC and BOUNDED every
// checkpoint.interval_clocks, ASYNC every checkpoint.interval_seconds (0 = never).
bool TakesCheckpoints(const ConsistencySpec& consistency, const CheckpointSpec& checkpoint);

}  // namespace ps

#endif  // PS_COMMON_JOB_SPEC_H_
