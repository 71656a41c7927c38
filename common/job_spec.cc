#include "common/job_spec.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace ps {
namespace {

std::string Path(absl::string_view parent, absl::string_view child) {
  return absl::StrCat(parent, ".", child);
}

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

template <typename T>
absl::Status InRange(T value, T lo, T hi, absl::string_view field) {
  if (!(value >= lo && value <= hi)) {
    return Bad(field, absl::StrCat("must be in [", lo, ", ", hi, "], got ", value));
  }
  return absl::OkStatus();
}

absl::Status CheckInitializer(const Initializer& init, absl::string_view field) {
  if (!std::isfinite(init.scale()) || init.scale() < 0) {
    return Bad(Path(field, "scale"), absl::StrCat("must be finite and >= 0, got ",
                                                  init.scale()));
  }
  return absl::OkStatus();
}

absl::Status CheckUnit(float v, bool allow_zero, absl::string_view field) {
  // [0, 1) for betas and momentum.
  if (!std::isfinite(v) || v < 0 || v >= 1 || (!allow_zero && v == 0)) {
    return Bad(field, absl::StrCat("must be in [0, 1), got ", v));
  }
  return absl::OkStatus();
}

absl::Status CheckData(const DataSpec& data, absl::string_view f) {
  if (data.format() == FORMAT_UNSPECIFIED) {
    return Bad(Path(f, "format"), "must be IDX, CSV or LIBSVM");
  }
  if (data.train_path().empty()) return Bad(Path(f, "train_path"), "must be set");
  if (data.format() == IDX) {
    if (data.train_labels_path().empty()) {
      return Bad(Path(f, "train_labels_path"), "must be set for IDX data");
    }
    if (!data.test_path().empty() && data.test_labels_path().empty()) {
      return Bad(Path(f, "test_labels_path"), "must be set for IDX data with a test_path");
    }
  }
  if (auto s = InRange<uint32_t>(data.test_every(), 0, 1000, Path(f, "test_every")); !s.ok()) {
    return s;
  }
  if (data.test_every() == 1) {
    return Bad(Path(f, "test_every"), "1 would leave no training examples");
  }
  if (auto s = InRange<uint32_t>(data.num_features(), 1, 1u << 30, Path(f, "num_features"));
      !s.ok()) {
    return s;
  }
  if (auto s = InRange<uint32_t>(data.num_classes(), 2, 100000, Path(f, "num_classes"));
      !s.ok()) {
    return s;
  }
  if (data.label_column() < -1) {
    return Bad(Path(f, "label_column"), absl::StrCat("must be >= -1, got ",
                                                     data.label_column()));
  }
  if (!std::isfinite(data.feature_scale()) || data.feature_scale() < 0) {
    return Bad(Path(f, "feature_scale"), "must be finite and >= 0");
  }
  if (!DataSpec::Sharding_IsValid(data.sharding())) {
    return Bad(Path(f, "sharding"),
               absl::StrCat("must be STRIDED or GLOBAL_BATCH, got ", data.sharding()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateName(absl::string_view name, absl::string_view field) {
  if (name.empty() || name.size() > 64) {
    return Bad(field, absl::StrCat("must be 1 to 64 characters, got ", name.size()));
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) return Bad(field, "may hold only letters, digits, '_', '.' and '-'");
  }
  return absl::OkStatus();
}

absl::Status ValidateOptimizer(const OptimizerSpec& opt, absl::string_view f) {
  if (opt.kind_case() == OptimizerSpec::KIND_NOT_SET) {
    return Bad(f, "one of sgd, momentum, adagrad, adam must be set");
  }
  const float lr = opt.learning_rate();
  if (!std::isfinite(lr) || lr <= 0 || lr > 100) {
    return Bad(Path(f, "learning_rate"), absl::StrCat("must be > 0 and <= 100, got ", lr));
  }
  if (!std::isfinite(opt.weight_decay()) || opt.weight_decay() < 0) {
    return Bad(Path(f, "weight_decay"),
               absl::StrCat("must be finite and >= 0, got ", opt.weight_decay()));
  }
  switch (opt.kind_case()) {
    case OptimizerSpec::kMomentum:
      return CheckUnit(opt.momentum().momentum(), true, Path(f, "momentum.momentum"));
    case OptimizerSpec::kAdagrad:
      if (!std::isfinite(opt.adagrad().epsilon()) || opt.adagrad().epsilon() < 0) {
        return Bad(Path(f, "adagrad.epsilon"), "must be finite and >= 0");
      }
      if (!std::isfinite(opt.adagrad().initial_accumulator()) ||
          opt.adagrad().initial_accumulator() < 0) {
        return Bad(Path(f, "adagrad.initial_accumulator"), "must be finite and >= 0");
      }
      return absl::OkStatus();
    case OptimizerSpec::kAdam:
      if (auto s = CheckUnit(opt.adam().beta1(), true, Path(f, "adam.beta1")); !s.ok()) {
        return s;
      }
      if (auto s = CheckUnit(opt.adam().beta2(), true, Path(f, "adam.beta2")); !s.ok()) {
        return s;
      }
      if (!std::isfinite(opt.adam().epsilon()) || opt.adam().epsilon() < 0) {
        return Bad(Path(f, "adam.epsilon"), "must be finite and >= 0");
      }
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

absl::Status ValidateTableSpec(const TableSpec& table, absl::string_view f) {
  if (auto s = ValidateName(table.name(), Path(f, "name")); !s.ok()) return s;
  switch (table.kind()) {
    case TableSpec::DENSE:
      if (auto s = InRange<uint64_t>(table.size(), 1, uint64_t{1} << 34, Path(f, "size"));
          !s.ok()) {
        return s;
      }
      break;
    case TableSpec::SPARSE:
      if (auto s = InRange<uint32_t>(table.dim(), 1, 4096, Path(f, "dim")); !s.ok()) {
        return s;
      }
      break;
    default:
      return Bad(Path(f, "kind"), "must be DENSE or SPARSE");
  }
  if (auto s = CheckInitializer(table.init(), Path(f, "init")); !s.ok()) return s;
  return ValidateOptimizer(table.optimizer(), Path(f, "optimizer"));
}

absl::Status ValidateJobSpec(const JobSpec& spec) {
  const std::string f = "spec";
  if (spec.name().size() > 256) return Bad(Path(f, "name"), "must be at most 256 bytes");
  const ModelSpec& model = spec.model();
  switch (model.kind_case()) {
    case ModelSpec::kSoftmax:
      break;
    case ModelSpec::kMlp: {
      const auto& hidden = model.mlp().hidden();
      if (hidden.size() > 16) return Bad("spec.model.mlp.hidden", "at most 16 layers");
      for (int i = 0; i < hidden.size(); ++i) {
        if (auto s = InRange<uint32_t>(hidden[i], 1, 65536,
                                       absl::StrCat("spec.model.mlp.hidden[", i, "]"));
            !s.ok()) {
          return s;
        }
      }
      if (model.mlp().head() == ModelSpec::Mlp::SIGMOID && spec.data().num_classes() != 2) {
        return Bad("spec.model.mlp.head", "SIGMOID needs data.num_classes == 2");
      }
      break;
    }
    case ModelSpec::kLogisticSparse:
      if (spec.data().num_classes() != 2) {
        return Bad("spec.model.logistic_sparse", "needs data.num_classes == 2");
      }
      break;
    default:
      return Bad("spec.model", "one of softmax, mlp, logistic_sparse must be set");
  }
  if (auto s = CheckInitializer(model.init(), "spec.model.init"); !s.ok()) return s;
  if (auto s = CheckData(spec.data(), "spec.data"); !s.ok()) return s;
  if (auto s = ValidateOptimizer(spec.optimizer(), "spec.optimizer"); !s.ok()) return s;

  const ConsistencySpec& c = spec.consistency();
  if (c.mode() == CONSISTENCY_UNSPECIFIED) {
    return Bad("spec.consistency.mode", "must be SYNC, BOUNDED or ASYNC");
  }
  if (c.mode() == BOUNDED) {
    if (auto s = InRange<uint32_t>(c.staleness(), 0, 1000, "spec.consistency.staleness");
        !s.ok()) {
      return s;
    }
  } else if (c.staleness() != 0) {
    return Bad("spec.consistency.staleness",
               absl::StrCat("only BOUNDED takes a staleness; got ", c.staleness(), " with ",
                            Consistency_Name(c.mode())));
  }
  if (auto s = InRange<uint32_t>(spec.num_workers(), 1, 1024, "spec.num_workers"); !s.ok()) {
    return s;
  }
  if (auto s = InRange<uint32_t>(spec.batch_size(), 1, 65536, "spec.batch_size"); !s.ok()) {
    return s;
  }
  if (auto s = InRange<uint32_t>(spec.epochs(), 1, 100000, "spec.epochs"); !s.ok()) {
    return s;
  }
  const CheckpointSpec& ck = spec.checkpoint();
  if (auto s = InRange<uint32_t>(ck.interval_clocks(), 0, 1000000000,
                                 "spec.checkpoint.interval_clocks");
      !s.ok()) {
    return s;
  }
  if (auto s = InRange<uint32_t>(ck.interval_seconds(), 0, 86400,
                                 "spec.checkpoint.interval_seconds");
      !s.ok()) {
    return s;
  }
  if (auto s = InRange<uint32_t>(ck.keep(), 0, 1000, "spec.checkpoint.keep"); !s.ok()) {
    return s;
  }
  if (!std::isfinite(spec.target_accuracy()) || spec.target_accuracy() < 0 ||
      spec.target_accuracy() > 1) {
    return Bad("spec.target_accuracy", "must be in [0, 1]");
  }
  return absl::OkStatus();
}

bool TakesCheckpoints(const ConsistencySpec& consistency, const CheckpointSpec& checkpoint) {
  return consistency.mode() == ASYNC ? checkpoint.interval_seconds() > 0
                                     : checkpoint.interval_clocks() > 0;
}

}  // namespace ps
