// The bridge from a JobSpec to the compute core: which model, which parameter tables
// (for the coordinator/trainer to create on the shards), which device. abseil and
// protobuf enter here and not in model.h, which the CUDA test binaries link.
#ifndef PS_WORKER_MODEL_JOB_MODEL_H_
#define PS_WORKER_MODEL_JOB_MODEL_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "worker/compute/backend.h"
#include "worker/compute/device_choice.h"
#include "worker/model/model.h"

namespace ps::model {

// The model of `spec` (model kind, data.num_features, data.num_classes, hidden
// widths, head). INVALID_ARGUMENT naming the spec field when the spec cannot make a
// model: no model kind, softmax/mlp over LIBSVM data, logistic_sparse over dense
// data, a SIGMOID head or logistic_sparse with num_classes != 2, a zero width.
absl::StatusOr<ModelConfig> ModelConfigFromSpec(const JobSpec& spec);

// The parameter tables of `spec`'s model, ready for the shards: names and shapes of
// ModelTables(), weights initialised by spec.model.init, biases ZEROS, every table
// with spec.optimizer. Errors as ModelConfigFromSpec().
absl::StatusOr<std::vector<TableSpec>> TablesForJob(const JobSpec& spec);

// The model of `spec` on `backend` (not owned; must outlive the model).
absl::StatusOr<std::unique_ptr<Model>> CreateModelForJob(const JobSpec& spec,
                                                         compute::Backend* backend);

// spec.device as a DeviceChoice for compute::CreateBackend() (worker/compute/factory.h).
compute::DeviceChoice DeviceChoiceForJob(const JobSpec& spec);

}  // namespace ps::model

#endif  // PS_WORKER_MODEL_JOB_MODEL_H_
