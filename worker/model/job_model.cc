#include "worker/model/job_model.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/compute/absl_status.h"

namespace ps::model {

absl::StatusOr<ModelConfig> ModelConfigFromSpec(const JobSpec& spec) {
  ModelConfig c;
  c.num_features = spec.data().num_features();
  c.num_classes = spec.data().num_classes();
  const bool sparse_data = spec.data().format() == LIBSVM;
  switch (spec.model().kind_case()) {
    case ModelSpec::kSoftmax:
      c.kind = ModelKind::kSoftmax;
      break;
    case ModelSpec::kMlp:
      c.kind = ModelKind::kMlp;
      c.hidden.assign(spec.model().mlp().hidden().begin(), spec.model().mlp().hidden().end());
      c.head = spec.model().mlp().head() == ModelSpec::Mlp::SIGMOID ? Head::kSigmoid
                                                                    : Head::kSoftmax;
      break;
    case ModelSpec::kLogisticSparse:
      c.kind = ModelKind::kLogisticSparse;
      c.head = Head::kSigmoid;
      break;
    default:
      return absl::InvalidArgumentError(
          "spec.model: one of softmax, mlp, logistic_sparse must be set");
  }
  if (c.kind == ModelKind::kLogisticSparse && !sparse_data) {
    return absl::InvalidArgumentError(
        "spec.model.logistic_sparse: needs LIBSVM data (spec.data.format)");
  }
  if (c.kind != ModelKind::kLogisticSparse && sparse_data) {
    return absl::InvalidArgumentError(
        "spec.data.format: LIBSVM data needs the logistic_sparse model");
  }
  const std::string problem = ValidateConfig(c);
  if (!problem.empty()) return absl::InvalidArgumentError(absl::StrCat("spec.model: ", problem));
  return c;
}

absl::StatusOr<std::vector<TableSpec>> TablesForJob(const JobSpec& spec) {
  PS_ASSIGN_OR_RETURN(const ModelConfig config, ModelConfigFromSpec(spec));
  std::vector<TableSpec> out;
  for (const TableDecl& t : ModelTables(config)) {
    TableSpec ts;
    ts.set_name(t.name);
    if (t.sparse) {
      ts.set_kind(TableSpec::SPARSE);
      ts.set_dim(t.dim);
    } else {
      ts.set_kind(TableSpec::DENSE);
      ts.set_size(t.size);
    }
    if (t.weight) {
      *ts.mutable_init() = spec.model().init();
    } else {
      ts.mutable_init()->set_kind(Initializer::ZEROS);
    }
    *ts.mutable_optimizer() = spec.optimizer();
    out.push_back(std::move(ts));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Model>> CreateModelForJob(const JobSpec& spec,
                                                         compute::Backend* backend) {
  PS_ASSIGN_OR_RETURN(const ModelConfig config, ModelConfigFromSpec(spec));
  std::unique_ptr<Model> model;
  PS_RETURN_IF_ERROR(compute::ToAbslStatus(CreateModel(config, backend, &model)));
  return model;
}

compute::DeviceChoice DeviceChoiceForJob(const JobSpec& spec) {
  switch (spec.device()) {
    case DEVICE_CPU:
      return compute::DeviceChoice::kCpu;
    case DEVICE_GPU:
      return compute::DeviceChoice::kGpu;
    default:
      return compute::DeviceChoice::kAuto;
  }
}

}  // namespace ps::model
