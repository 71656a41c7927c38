#include "worker/ps_routing.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/job_spec.h"

namespace ps {
namespace {

constexpr uint64_t kValueBytes = sizeof(float);
constexpr uint64_t kKeyBytes = sizeof(uint64_t);

// Cuts one shard's share into parts of at most `chunk_bytes` (a single value or row
// bigger than that travels alone).
class PartBuilder {
 public:
  explicit PartBuilder(uint64_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}

  void AddDense(uint32_t ref, uint64_t begin, uint64_t count) {
    while (count > 0) {
      uint64_t room = Room() / kValueBytes;
      if (room == 0) {
        if (!CurrentEmpty()) {
          NewPart();
          continue;
        }
        room = 1;
      }
      const uint64_t n = std::min({count, room, kMaxDenseSliceElements});
      PlanPart& part = Current();
      part.slices.push_back(PlanSlice{false, ref, begin, n, nullptr});
      part.floats += n;
      bytes_ += n * kValueBytes;
      begin += n;
      count -= n;
    }
  }

  void AddSparse(uint32_t ref, const uint32_t* positions, uint64_t count, uint32_t dim) {
    const uint64_t unit = kKeyBytes + kValueBytes * dim;
    while (count > 0) {
      uint64_t room = Room() / unit;
      if (room == 0) {
        if (!CurrentEmpty()) {
          NewPart();
          continue;
        }
        room = 1;
      }
      const uint64_t n = std::min({count, room, kMaxSparseSliceKeys});
      PlanPart& part = Current();
      part.slices.push_back(PlanSlice{true, ref, 0, n, positions});
      part.floats += n * dim;
      bytes_ += n * unit;
      positions += n;
      count -= n;
    }
  }

  std::vector<PlanPart> Take() { return std::move(parts_); }

 private:
  uint64_t Room() const { return bytes_ < chunk_bytes_ ? chunk_bytes_ - bytes_ : 0; }
  bool CurrentEmpty() const { return parts_.empty() || parts_.back().slices.empty(); }
  PlanPart& Current() {
    if (parts_.empty()) parts_.emplace_back();
    return parts_.back();
  }
  void NewPart() {
    parts_.emplace_back();
    bytes_ = 0;
  }

  const uint64_t chunk_bytes_;
  std::vector<PlanPart> parts_;
  uint64_t bytes_ = 0;  // Of the current part.
};

}  // namespace

absl::StatusOr<std::shared_ptr<const JobRoute>> JobRoute::Create(
    std::string job_id, uint32_t num_shards, const std::vector<TableSpec>& tables,
    Consistency mode, bool bf16_gradients) {
  if (num_shards == 0) return absl::InvalidArgumentError("num_shards: must be > 0");
  std::shared_ptr<JobRoute> route(
      new JobRoute(std::move(job_id), num_shards, mode, bf16_gradients));
  for (size_t i = 0; i < tables.size(); ++i) {
    const TableSpec& spec = tables[i];
    const std::string field = absl::StrCat("tables[", i, "]");
    if (absl::Status s = ValidateTableSpec(spec, field); !s.ok()) return s;
    TableRoute table;
    table.spec = spec;
    if (spec.kind() == TableSpec::DENSE) {
      absl::StatusOr<DensePartition> part =
          DensePartition::Create(spec.name(), spec.size(), num_shards);
      if (!part.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".size: ", part.status().message()));
      }
      table.dense = *std::move(part);
    }
    if (!route->tables_.emplace(spec.name(), std::move(table)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name: table '", spec.name(), "' appears twice"));
    }
  }
  return std::shared_ptr<const JobRoute>(std::move(route));
}

const TableRoute* JobRoute::Find(absl::string_view table) const {
  auto it = tables_.find(table);
  return it == tables_.end() ? nullptr : &it->second;
}

std::vector<std::string> JobRoute::TableNames() const {
  std::vector<std::string> names;
  names.reserve(tables_.size());
  for (const auto& [name, table] : tables_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

std::shared_ptr<const JobRoute> RouteCache::Find(const std::string& job_id) const {
  MutexLock lock(&mu_);
  auto it = routes_.find(job_id);
  return it == routes_.end() ? nullptr : it->second;
}

void RouteCache::Put(std::shared_ptr<const JobRoute> route) {
  MutexLock lock(&mu_);
  const std::string id = route->job_id();
  routes_[id] = std::move(route);
}

void RouteCache::Erase(const std::string& job_id) {
  MutexLock lock(&mu_);
  routes_.erase(job_id);
}

size_t Plan::num_requests() const {
  size_t n = 0;
  for (const auto& shard : parts_) n += shard.size();
  return n;
}

absl::StatusOr<Plan> Plan::Build(const JobRoute& route, absl::Span<const DenseRef> dense,
                                 absl::Span<const SparseRef> sparse, uint64_t chunk_bytes,
                                 Kind kind) {
  const uint32_t num_shards = route.num_shards();
  auto unknown = [&](absl::string_view field, const std::string& table) {
    return absl::NotFoundError(absl::StrCat(field, ".table: no table '", table, "' in job '",
                                            route.job_id(), "'"));
  };
  // Validate and route once; the chunking below may run more than once.
  std::vector<std::vector<DenseRange>> dense_ranges(dense.size());
  for (size_t i = 0; i < dense.size(); ++i) {
    const DenseRef& ref = dense[i];
    const std::string field = absl::StrCat("dense[", i, "]");
    const TableRoute* table = route.Find(ref.table);
    if (table == nullptr) return unknown(field, ref.table);
    if (!table->dense.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".table: '", ref.table, "' is a sparse table; use a SparseRef"));
    }
    if (ref.count == 0) continue;
    if (ref.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".data: null for ", ref.count,
                                                     " elements"));
    }
    if (ref.lendable != nullptr &&
        (ref.data < ref.lendable->data() ||
         ref.data > ref.lendable->data() + ref.lendable->size() ||
         ref.count > static_cast<uint64_t>(ref.lendable->data() + ref.lendable->size() - ref.data))) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".lendable: ", ref.count, " floats at data do not lie in its ",
          ref.lendable->size(), " floats"));
    }
    absl::StatusOr<std::vector<DenseRange>> ranges = table->dense->Split(ref.begin, ref.count);
    if (!ranges.ok()) {
      return absl::OutOfRangeError(absl::StrCat(field, ".begin: table '", ref.table, "': ",
                                                ranges.status().message()));
    }
    dense_ranges[i] = *std::move(ranges);
  }
  Plan plan;
  plan.positions_.resize(sparse.size());
  for (size_t i = 0; i < sparse.size(); ++i) {
    const SparseRef& ref = sparse[i];
    const std::string field = absl::StrCat("sparse[", i, "]");
    const TableRoute* table = route.Find(ref.table);
    if (table == nullptr) return unknown(field, ref.table);
    if (table->dense.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".table: '", ref.table, "' is a dense table; use a DenseRef"));
    }
    if (ref.dim != table->spec.dim()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".dim: ", ref.dim,
                                                     " differs from the row width ",
                                                     table->spec.dim(), " of table '",
                                                     ref.table, "'"));
    }
    if (ref.num_keys == 0) continue;
    if (ref.keys == nullptr || ref.data == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ref.keys == nullptr ? ".keys" : ".data", ": null for ", ref.num_keys, " keys"));
    }
    if (ref.num_keys > std::numeric_limits<uint32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".num_keys: ", ref.num_keys, " is more than 2^32 - 1"));
    }
    plan.positions_[i] = GroupKeysByShard(
        ref.table, absl::MakeConstSpan(ref.keys, ref.num_keys), num_shards);
  }

  uint64_t chunk = std::max<uint64_t>(chunk_bytes, 1);
  for (;;) {
    std::vector<PartBuilder> builders(num_shards, PartBuilder(chunk));
    for (size_t i = 0; i < dense.size(); ++i) {
      for (const DenseRange& r : dense_ranges[i]) {
        builders[r.shard].AddDense(static_cast<uint32_t>(i), r.begin, r.count);
      }
    }
    for (size_t i = 0; i < sparse.size(); ++i) {
      const std::vector<std::vector<uint32_t>>& groups = plan.positions_[i];
      for (uint32_t s = 0; s < groups.size(); ++s) {
        if (groups[s].empty()) continue;
        builders[s].AddSparse(static_cast<uint32_t>(i), groups[s].data(), groups[s].size(),
                              sparse[i].dim);
      }
    }
    plan.parts_.clear();
    size_t most = 0;
    for (PartBuilder& b : builders) {
      plan.parts_.push_back(b.Take());
      if (kind != Kind::kRead && plan.parts_.back().empty()) plan.parts_.back().emplace_back();
      most = std::max(most, plan.parts_.back().size());
    }
    if (most <= kMaxPushParts) break;
    // Too many parts for one (rank, clock): bigger chunks, the same for every shard.
    chunk = chunk * ((most + kMaxPushParts - 1) / kMaxPushParts) + 1;
  }
  return plan;
}

void AppendSliceKeys(const PlanSlice& s, absl::Span<const SparseRef> sparse, std::string* out) {
  const SparseRef& ref = sparse[s.ref];
  const size_t start = out->size();
  out->resize(start + s.count * kKeyBytes);
  char* dst = &(*out)[start];
  for (uint64_t k = 0; k < s.count; ++k) {
    std::memcpy(dst + k * kKeyBytes, &ref.keys[s.positions[k]], kKeyBytes);
  }
}

void GatherValues(const PlanPart& part, absl::Span<const DenseRef> dense,
                  absl::Span<const SparseRef> sparse, std::string* out,
                  ValueEncoding encoding, std::vector<LentBytes>* lent) {
  const bool bf16 = encoding == ValueEncoding::kBf16;
  if (lent != nullptr && !bf16) {
    uint64_t copied = part.floats;  // Less the dense slices that are lent.
    for (const PlanSlice& s : part.slices) {
      if (!s.sparse && dense[s.ref].lendable != nullptr) copied -= s.count;
    }
    out->reserve(out->size() + copied * kValueBytes);
  } else {
    out->reserve(out->size() + part.floats * (bf16 ? sizeof(uint16_t) : kValueBytes));
  }
  auto append = [&](const float* values, size_t n) {
    if (bf16) {
      AppendBf16(absl::MakeConstSpan(values, n), out);
    } else {
      out->append(reinterpret_cast<const char*>(values), n * kValueBytes);
    }
  };
  for (const PlanSlice& s : part.slices) {
    if (!s.sparse) {
      const DenseRef& ref = dense[s.ref];
      const float* values = ref.data + (s.begin - ref.begin);
      if (lent != nullptr && !bf16 && ref.lendable != nullptr) {
        lent->push_back(LentBytes{out->size(), reinterpret_cast<const char*>(values),
                                  s.count * kValueBytes, LendableFloats::Lend(ref.lendable)});
      } else {
        append(values, s.count);
      }
      continue;
    }
    const SparseRef& ref = sparse[s.ref];
    for (uint64_t k = 0; k < s.count; ++k) {
      append(ref.data + size_t{s.positions[k]} * ref.dim, ref.dim);
    }
  }
}

absl::Status ScatterValues(const PlanPart& part, absl::string_view bytes,
                           absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse) {
  return ScatterValuesFrom(
      part, bytes.size(),
      [&bytes](size_t offset, size_t n, char* dst) { std::memcpy(dst, bytes.data() + offset, n); },
      dense, sparse);
}

}  // namespace ps
