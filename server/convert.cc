#include "server/convert.h"

#include "absl/strings/str_cat.h"
#include "common/job_spec.h"

namespace ps {
namespace {

absl::Status Bad(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

OptimizerConfig OptimizerFromProto(const OptimizerSpec& o) {
  OptimizerConfig c;
  c.learning_rate = o.learning_rate();
  c.weight_decay = o.weight_decay();
  switch (o.kind_case()) {
    case OptimizerSpec::kMomentum:
      c.kind = OptimizerKind::kMomentum;
      c.momentum = o.momentum().momentum();
      c.nesterov = o.momentum().nesterov();
      break;
    case OptimizerSpec::kAdagrad:
      c.kind = OptimizerKind::kAdagrad;
      c.epsilon = o.adagrad().epsilon();
      c.initial_accumulator = o.adagrad().initial_accumulator();
      break;
    case OptimizerSpec::kAdam:
      c.kind = OptimizerKind::kAdam;
      c.beta1 = o.adam().beta1();
      c.beta2 = o.adam().beta2();
      c.epsilon = o.adam().epsilon();
      break;
    default:
      c.kind = OptimizerKind::kSgd;
  }
  return c;
}

}  // namespace

absl::StatusOr<JobConfig> JobConfigFromProto(const ShardJobConfig& p) {
  if (auto s = ValidateName(p.job_id(), "config.job_id"); !s.ok()) return s;
  if (p.num_workers() < 1 || p.num_workers() > 1024) {
    return Bad("config.num_workers", absl::StrCat("must be 1 to 1024, got ", p.num_workers()));
  }
  if (p.num_shards() < 1 || p.num_shards() > 4096) {
    return Bad("config.num_shards", absl::StrCat("must be 1 to 4096, got ", p.num_shards()));
  }
  JobConfig c;
  switch (p.consistency().mode()) {
    case SYNC:
      c.mode = ConsistencyMode::kSync;
      break;
    case BOUNDED:
      c.mode = ConsistencyMode::kBounded;
      break;
    case ASYNC:
      c.mode = ConsistencyMode::kAsync;
      break;
    default:
      return Bad("config.consistency.mode", "must be SYNC, BOUNDED or ASYNC");
  }
  if (p.consistency().staleness() > 1000) {
    return Bad("config.consistency.staleness", "must be at most 1000");
  }
  if (c.mode != ConsistencyMode::kBounded && p.consistency().staleness() != 0) {
    return Bad("config.consistency.staleness", "only BOUNDED takes a staleness");
  }
  c.job_id = p.job_id();
  c.seed = p.seed();
  c.staleness = p.consistency().staleness();
  c.num_workers = p.num_workers();
  c.num_shards = p.num_shards();
  c.checkpoint_every_clocks = p.checkpoint().interval_clocks();
  c.checkpoint_every_seconds = p.checkpoint().interval_seconds();
  c.checkpoint_keep = p.checkpoint().keep() == 0 ? 3 : p.checkpoint().keep();
  c.takes_checkpoints = TakesCheckpoints(p.consistency(), p.checkpoint());
  c.total_clocks = p.total_clocks();
  c.zero_nonfinite = p.nonfinite() == NONFINITE_ZERO;
  c.config_blob = p.SerializeAsString();
  return c;
}

absl::StatusOr<JobConfig> JobConfigFromBlob(const std::string& blob) {
  ShardJobConfig p;
  if (!p.ParseFromString(blob)) return absl::DataLossError("job record: not a ShardJobConfig");
  return JobConfigFromProto(p);
}

bool SameJobConfig(const std::string& held, const std::string& offered) {
  ShardJobConfig h, o;
  if (!h.ParseFromString(held) || !o.ParseFromString(offered)) return false;
  if (h.total_clocks() == 0 || o.total_clocks() == 0) {
    h.clear_total_clocks();
    o.clear_total_clocks();
  }
  return h.SerializeAsString() == o.SerializeAsString();
}

void UseProtoConfigs(ShardCore::Options* options) {
  options->decode_job = JobConfigFromBlob;
  options->decode_table = TableConfigFromBlob;
  options->same_job = SameJobConfig;
}

absl::StatusOr<TableConfig> TableConfigFromProto(const TableSpec& spec) {
  if (auto s = ValidateTableSpec(spec, "table"); !s.ok()) return s;
  TableConfig t;
  t.name = spec.name();
  t.sparse = spec.kind() == TableSpec::SPARSE;
  t.size = spec.size();
  t.dim = spec.dim();
  switch (spec.init().kind()) {
    case Initializer::UNIFORM:
      t.init = InitKind::kUniform;
      break;
    case Initializer::NORMAL:
      t.init = InitKind::kNormal;
      break;
    default:
      t.init = InitKind::kZeros;
  }
  t.init_scale = spec.init().scale();
  t.optimizer = OptimizerFromProto(spec.optimizer());
  t.spec_blob = spec.SerializeAsString();
  return t;
}

absl::StatusOr<TableConfig> TableConfigFromBlob(const std::string& blob) {
  TableSpec spec;
  if (!spec.ParseFromString(blob)) return absl::DataLossError("table record: not a TableSpec");
  return TableConfigFromProto(spec);
}

absl::StatusOr<ValueEncoding> ValueEncodingFromProto(GradientEncoding encoding) {
  switch (encoding) {
    case FLOAT32:
      return ValueEncoding::kFloat32;
    case BFLOAT16:
      return ValueEncoding::kBf16;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("encoding: unknown GradientEncoding ", static_cast<int>(encoding)));
  }
}

}  // namespace ps
