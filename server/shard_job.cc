#include "server/shard_job.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/huge_pages.h"
#include "common/logging.h"
#include "common/packing.h"
#include "common/parallel_copy.h"
#include "common/partition.h"
#include "server/bytes.h"
#include "server/optimizer.h"

namespace ps {

bool MemoryBudget::TryReserve(uint64_t bytes) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (limit_ != 0 && used + bytes > limit_) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

struct ShardJob::Parsed {
  Table* table = nullptr;  // Not owned. Null in a SYNC part once its table is dropped.
  uint64_t begin = 0;
  uint64_t count = 0;            // Dense elements.
  std::vector<uint64_t> keys;    // Sparse.
  // Sparse, a push: the row of each key when the push was checked (RowIndex::kNone:
  // none yet), so that applying it looks up no key twice. Rows keep their numbers
  // while their table lives; a SYNC step looks up the kNone ones again.
  std::vector<uint64_t> rows;
  uint64_t floats = 0;  // The slice's values.
};

namespace {

// The checkpoint record of a table's state.
std::string StateRecordName(absl::string_view table) {
  return absl::StrCat("table/", table, "/state");
}

constexpr uint64_t kMaxSliceElements = uint64_t{1} << 28;
constexpr uint64_t kMaxSliceKeys = uint64_t{1} << 22;

std::string SliceField(absl::string_view field, size_t i, absl::string_view member) {
  return absl::StrCat(field, "[", i, "].", member);
}

// Applies the rows of a sparse slice whose gradients are values [first, first +
// keys.size() * dim) of `values`, where they lie in the request's pieces; only a row cut
// between two pieces is gathered first. `rows` as Table::CountMissing gave them.
void ApplyRowsWhereTheyLie(Table* table, absl::Span<const uint64_t> keys,
                           absl::Span<const uint64_t> rows, const PackedFloats& values,
                           uint64_t first) {
  const size_t dim = table->width();
  std::vector<float> cut(dim);
  size_t in_cut = 0;  // Floats of the cut row gathered so far.
  values.ForEachFloatRun(first, keys.size() * dim, [&](uint64_t at, const char* bytes, size_t k) {
    uint64_t i = at - first;  // The slice's float at `bytes`.
    if (in_cut > 0) {
      const size_t take = std::min(dim - in_cut, k);
      std::memcpy(cut.data() + in_cut, bytes, take * sizeof(float));
      in_cut += take;
      bytes += take * sizeof(float);
      k -= take;
      i += take;
      if (in_cut < dim) return;
      const size_t r = i / dim - 1;
      table->ApplyRowsAt(keys.subspan(r, 1), rows.subspan(r, 1), cut.data());
      in_cut = 0;
    }
    // Here i is a row's first float.
    if (const size_t whole = k / dim; whole > 0) {
      table->ApplyRowsAt(keys.subspan(i / dim, whole), rows.subspan(i / dim, whole), bytes);
      bytes += whole * dim * sizeof(float);
      k -= whole * dim;
    }
    std::memcpy(cut.data(), bytes, k * sizeof(float));
    in_cut = k;
  });
}

// A sparse slice's share of a step: its keys, their rows as Table::CountMissing or
// FindRows gave them in this hold of the job's lock, and where its gradients lie.
struct RowGrads {
  absl::Span<const uint64_t> keys;
  absl::Span<const uint64_t> rows;
  const PackedFloats* values;
  uint64_t first;  // Its first value in `values`.
};

// How a step takes a sparse table's gradients.
struct RowStep {
  bool zero_nonfinite = false;  // Non-finite gradients count as 0.
  // A SYNC clock's mean over `mean_of` workers: each key's sum starts from 0 and is
  // divided by it. 0: one push's gradients, as they are.
  float mean_of = 0;
};

// One optimizer step of `table` (begun by the caller) with the gradients of `slices`,
// in order. A key that comes more than once takes the sum of its gradients, added in
// order at its first place. Without repeats, mean or policy, the gradients are applied
// where they lie.
void ApplyRowGrads(Table* table, absl::Span<const RowGrads> slices, RowStep how) {
  absl::Span<const uint64_t> keys = slices[0].keys;
  absl::Span<const uint64_t> rows = slices[0].rows;
  std::vector<uint64_t> joined_keys;
  std::vector<uint64_t> joined_rows;
  if (slices.size() > 1) {
    for (const RowGrads& s : slices) {
      joined_keys.insert(joined_keys.end(), s.keys.begin(), s.keys.end());
      joined_rows.insert(joined_rows.end(), s.rows.begin(), s.rows.end());
    }
    keys = joined_keys;
    rows = joined_rows;
  }
  std::vector<uint32_t> first;
  const bool repeats = table->FirstOccurrences(keys, rows, &first);
  if (!repeats && !how.zero_nonfinite && how.mean_of == 0) {
    for (const RowGrads& s : slices) {
      ApplyRowsWhereTheyLie(table, s.keys, s.rows, *s.values, s.first);
    }
    return;
  }
  // Each key's place among the sums: first occurrences in order.
  std::vector<uint32_t> place(keys.size());
  std::vector<uint64_t> sum_keys;
  std::vector<uint64_t> sum_rows;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (first[i] != i) {
      place[i] = place[first[i]];
      continue;
    }
    place[i] = static_cast<uint32_t>(sum_keys.size());
    sum_keys.push_back(keys[i]);
    sum_rows.push_back(rows[i]);
  }
  const size_t dim = table->width();
  // Never zero-filled: a key's first occurrence writes its values.
  std::unique_ptr<float[]> sums(new float[sum_keys.size() * dim]);
  size_t i = 0;  // The key whose value comes next, over all slices.
  size_t j = 0;  // Its value.
  const GradTerm first_term = how.mean_of > 0 ? GradTerm::kFirstOfMean : GradTerm::kFirst;
  auto add = [&](uint64_t, const char* bytes, size_t k) {
    while (k > 0) {  // The run's values of key i, in one go.
      const size_t n = std::min(k, dim - j);
      AddGradient(first[i] != i ? GradTerm::kNext : first_term, bytes,
                  sums.get() + size_t{place[i]} * dim + j, n, how.zero_nonfinite);
      bytes += n * sizeof(float);
      k -= n;
      j += n;
      if (j == dim) {
        j = 0;
        ++i;
      }
    }
  };
  for (const RowGrads& s : slices) s.values->ForEachFloatRun(s.first, s.keys.size() * dim, add);
  if (how.mean_of > 0) DivideBy(sums.get(), sum_keys.size() * dim, how.mean_of);
  table->ApplyRowsAt(sum_keys, sum_rows, sums.get());
}

}  // namespace

ShardJob::ShardJob(JobConfig config, MemoryBudget* budget, SnapshotSink sink,
                   ShardLimits limits)
    : config_(std::move(config)),
      budget_(budget),
      sink_(std::move(sink)),
      limits_(limits),
      total_clocks_(config_.total_clocks),
      record_blob_(config_.config_blob) {
  ranks_.resize(config_.num_workers);
}

uint64_t ShardJob::total_clocks() const {
  ReaderMutexLock lock(&mu_);
  return total_clocks_;
}

uint64_t ShardJob::AdoptTotalClocks(uint64_t total, std::string config_blob) {
  MutexLock lock(&mu_);
  if (total_clocks_ == 0 && total != 0) {
    total_clocks_ = total;
    record_blob_ = std::move(config_blob);
  }
  return total_clocks_;
}

ShardJob::~ShardJob() {
  MutexLock lock(&mu_);
  budget_->Release(reserved_);
}

uint64_t ShardJob::MemoryLocked() const {
  uint64_t total = 0;
  for (const auto& [name, table] : tables_) total += table->MemoryBytes();
  return total;
}

void ShardJob::SettleMemoryLocked() {
  uint64_t now = MemoryLocked();
  // The rows a held SYNC clock will create stay reserved until its step.
  for (const SyncNewKeys& n : sync_new_keys_) now += n.keys.size() * n.table->RowBytes();
  if (now > reserved_) {
    // Restores and applied pushes must not fail half-way: take it unconditionally.
    budget_->Force(now - reserved_);
  } else {
    budget_->Release(reserved_ - now);
  }
  reserved_ = now;
}

absl::Status ShardJob::CreateTable(TableConfig config) {
  MutexLock lock(&mu_);
  return CreateTableLocked(std::move(config));
}

absl::Status ShardJob::CreateTableLocked(TableConfig config) {
  auto it = tables_.find(config.name);
  if (it != tables_.end()) {
    if (it->second->config().spec_blob == config.spec_blob) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "table: '", config.name, "' exists in job '", config_.job_id, "' with another spec"));
  }
  if (tables_.size() >= limits_.max_tables_per_job) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "table: job '", config_.job_id, "' has ", tables_.size(),
        " tables, the shard's budget per job (--max_tables_per_job)"));
  }
  uint64_t begin = 0, count = 0;
  if (!config.sparse) {
    auto part = DensePartition::Create(config.name, config.size, config_.num_shards);
    if (!part.ok()) return absl::InvalidArgumentError(absl::StrCat("table.size: ", part.status().message()));
    const DenseRange r = part->RangeOf(config_.shard_id);
    begin = r.begin;
    count = r.count;
  }
  const std::string name = config.name;
  // Reserve before building: the Table allocates its whole dense part at once, so a
  // table past the budget must be refused before it exists (Table::MemoryBytes()).
  const uint64_t bytes =
      config.sparse ? 0 : count * sizeof(float) * (1 + NumSlots(config.optimizer.kind));
  if (!budget_->TryReserve(bytes)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "table: '", name, "' needs ", bytes, " bytes; the shard's memory budget of ",
        budget_->limit(), " bytes has ", budget_->limit() - std::min(budget_->limit(), budget_->used()),
        " left"));
  }
  reserved_ += bytes;
  auto table = std::make_unique<Table>(std::move(config), config_.seed, begin, count);
  tables_.emplace(name, std::move(table));
  return absl::OkStatus();
}

absl::Status ShardJob::DropTable(absl::string_view name) {
  MutexLock lock(&mu_);
  auto it = tables_.find(name);
  if (it == tables_.end()) {
    return absl::NotFoundError(absl::StrCat("table: no table '", name, "' in job '",
                                            config_.job_id, "'"));
  }
  // Gradients of a SYNC clock not applied yet, for the dropped table, are dropped with
  // it: their slices no longer name a table (a table created later may be given the
  // same address), and the rows they would have made are no longer reserved.
  for (RankState& r : ranks_) {
    for (auto& [clock, pc] : r.pending) {
      for (const std::unique_ptr<Part>& part : pc.parts) {
        if (part == nullptr) continue;
        for (Parsed& p : part->slices) {
          if (p.table == it->second.get()) p.table = nullptr;
        }
      }
    }
  }
  sync_new_keys_.erase(
      std::remove_if(sync_new_keys_.begin(), sync_new_keys_.end(),
                     [&](const SyncNewKeys& n) { return n.table == it->second.get(); }),
      sync_new_keys_.end());
  tables_.erase(it);
  SettleMemoryLocked();
  return absl::OkStatus();
}

std::vector<ShardJob::TableInfo> ShardJob::ListTables() const {
  ReaderMutexLock lock(&mu_);
  std::vector<TableInfo> out;
  for (const auto& [name, t] : tables_) {
    out.push_back(TableInfo{t->config(), t->local_begin(), t->local_count()});
  }
  return out;
}

absl::Status ShardJob::ParseSlices(absl::Span<const SliceArgs> slices, std::vector<Parsed>* out,
                                   uint64_t* floats, absl::string_view field) const {
  if (out != nullptr) {
    out->clear();
    out->reserve(slices.size());
  }
  *floats = 0;
  uint64_t call_keys = 0;
  for (size_t i = 0; i < slices.size(); ++i) {
    const SliceArgs& s = slices[i];
    auto it = tables_.find(s.table);
    if (it == tables_.end()) {
      return absl::NotFoundError(absl::StrCat(SliceField(field, i, "table"), ": no table '",
                                              s.table, "' in job '", config_.job_id, "'"));
    }
    Parsed p;
    p.table = it->second.get();
    if (p.table->sparse()) {
      if (s.count != 0 || s.begin != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            SliceField(field, i, "begin/count"), ": must be 0 for sparse table '", s.table, "'"));
      }
      absl::StatusOr<uint64_t> n = CountKeys(s.keys, SliceField(field, i, "keys"));
      if (!n.ok()) return n.status();
      if (*n == 0 || *n > kMaxSliceKeys) {
        return absl::InvalidArgumentError(absl::StrCat(SliceField(field, i, "keys"),
                                                       ": must hold 1 to ", kMaxSliceKeys,
                                                       " keys, got ", *n));
      }
      call_keys += *n;
      if (call_keys > limits_.max_keys_per_call) {
        return absl::InvalidArgumentError(absl::StrCat(
            SliceField(field, i, "keys"), ": the call holds more than ", limits_.max_keys_per_call,
            " sparse keys (--max_keys_per_call); split it"));
      }
      if (out != nullptr) {  // Checked only: the keys are not copied.
        p.keys.resize(*n);
        std::memcpy(p.keys.data(), s.keys.data(), s.keys.size());
      }
    } else {
      if (!s.keys.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            SliceField(field, i, "keys"), ": must be empty for dense table '", s.table, "'"));
      }
      if (s.count == 0 || s.count > kMaxSliceElements) {
        return absl::InvalidArgumentError(absl::StrCat(SliceField(field, i, "count"),
                                                       ": must be 1 to ", kMaxSliceElements,
                                                       ", got ", s.count));
      }
      if (absl::Status st =
              p.table->CheckDenseRange(s.begin, s.count, SliceField(field, i, "begin"));
          !st.ok()) {
        return st;
      }
      p.begin = s.begin;
      p.count = s.count;
    }
    if (out == nullptr) continue;
    p.floats = p.table->sparse() ? p.keys.size() * p.table->width() : p.count;
    *floats += p.floats;
    out->push_back(std::move(p));
  }
  return absl::OkStatus();
}

absl::Status ShardJob::CheckSlices(absl::Span<const SliceArgs> slices,
                                   absl::string_view field) const {
  uint64_t floats = 0;
  ReaderMutexLock lock(&mu_);
  return ParseSlices(slices, /*out=*/nullptr, &floats, field);
}

uint64_t ShardJob::CountNewToTheClockLocked(const Parsed& p,
                                            std::vector<SyncNewKeys>* fresh) const {
  auto held = std::find_if(sync_new_keys_.begin(), sync_new_keys_.end(),
                           [&](const SyncNewKeys& n) { return n.table == p.table; });
  auto mine = std::find_if(fresh->begin(), fresh->end(),
                           [&](const SyncNewKeys& n) { return n.table == p.table; });
  if (mine == fresh->end()) mine = fresh->insert(mine, SyncNewKeys{p.table, {}});
  uint64_t count = 0;
  for (size_t k = 0; k < p.keys.size(); ++k) {
    if (p.rows[k] != RowIndex::kNone) continue;
    if (held != sync_new_keys_.end() && held->keys.contains(p.keys[k])) continue;
    if (mine->keys.insert(p.keys[k]).second) ++count;
  }
  return count;
}

absl::Status ShardJob::CheckRowLimitLocked(const std::vector<Parsed>& parsed,
                                           absl::Span<const uint64_t> missing,
                                           absl::string_view field) const {
  // Missing rows per table, over every slice of the call (a table may come twice).
  std::vector<std::pair<const Table*, uint64_t>> added;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const Parsed& p = parsed[i];
    if (missing[i] == 0) continue;
    auto it = std::find_if(added.begin(), added.end(),
                           [&](const auto& a) { return a.first == p.table; });
    if (it == added.end()) it = added.insert(added.end(), {p.table, 0});
    it->second += missing[i];
    // Rows the current SYNC clock will create at its step count as held.
    uint64_t coming = 0;
    for (const SyncNewKeys& n : sync_new_keys_) {
      if (n.table == p.table) coming += n.keys.size();
    }
    if (p.table->num_rows() + coming + it->second > limits_.max_sparse_rows_per_table) {
      return absl::ResourceExhaustedError(absl::StrCat(
          SliceField(field, i, "keys"), ": sparse table '", p.table->config().name, "' holds ",
          p.table->num_rows(), " rows here",
          coming > 0 ? absl::StrCat(" and this SYNC clock's step will make ", coming) : "", "; ",
          it->second, " more would pass its row budget of ", limits_.max_sparse_rows_per_table,
          " (--max_sparse_rows_per_table)"));
    }
  }
  return absl::OkStatus();
}

uint64_t ShardJob::MinWorkerClockLocked() const {
  uint64_t m = ~uint64_t{0};
  for (const RankState& r : ranks_) m = std::min(m, r.done_below);
  return ranks_.empty() ? 0 : m;
}

uint64_t ShardJob::SnapshotClockLocked() const {
  return config_.mode == ConsistencyMode::kSync ? applied_clock_ : MinWorkerClockLocked();
}

bool ShardJob::PullReadyLocked(uint64_t clock) const {
  switch (config_.mode) {
    case ConsistencyMode::kSync:
      return clock <= applied_clock_;
    case ConsistencyMode::kBounded:
      return clock <= config_.staleness || MinWorkerClockLocked() >= clock - config_.staleness;
    case ConsistencyMode::kAsync:
      return true;
  }
  return true;
}

absl::StatusOr<bool> ShardJob::TryPull(uint32_t rank, uint64_t clock,
                                       absl::Span<const SliceArgs> slices, bool no_wait,
                                       std::string* out, uint64_t* applied_clock,
                                       std::function<void()> wake, uint64_t* ticket,
                                       std::vector<LentBytes>* lent, absl::string_view field) {
  std::vector<Parsed> parsed;
  uint64_t floats = 0;
  bool need_rows = false;
  auto read_dense = [out, lent](const Parsed& p) {
    if (lent != nullptr) {
      p.table->LendDense(p.begin, p.count, out->size(), lent);
    } else {
      p.table->ReadDense(p.begin, p.count, out);
    }
  };
  // Room for the bytes copied into `out`: every value, less dense ones that are lent.
  auto reserve = [&] {
    uint64_t copied = floats;
    for (const Parsed& p : parsed) {
      if (lent != nullptr && !p.table->sparse()) copied -= p.floats;
    }
    out->reserve(out->size() + copied * sizeof(float));
  };
  {
    ReaderMutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("shard is shutting down");
    if (!no_wait && rank >= config_.num_workers) {
      return absl::InvalidArgumentError(absl::StrCat("rank: ", rank, " is not below num_workers ",
                                                     config_.num_workers));
    }
    if (absl::Status s = ParseSlices(slices, &parsed, &floats, field); !s.ok()) return s;
    if (!no_wait && !PullReadyLocked(clock)) {
      if (!wake) {
        return absl::DeadlineExceededError(absl::StrCat("clock ", clock, " is not ready"));
      }
    } else {
      // Under the shared lock while every row exists (the common case, one lookup per
      // key); a pull that must create rows starts over under the exclusive lock.
      const size_t start = out->size();
      const size_t lent_start = lent != nullptr ? lent->size() : 0;
      reserve();
      for (const Parsed& p : parsed) {
        if (!p.table->sparse()) {
          read_dense(p);
        } else if (no_wait) {
          p.table->ReadRows(p.keys, out);
        } else if (!p.table->TryReadRows(p.keys, out)) {
          need_rows = true;
          break;
        }
      }
      if (!need_rows) {
        *applied_clock = SnapshotClockLocked();
        return true;
      }
      out->resize(start);
      if (lent != nullptr) lent->resize(lent_start);
    }
  }
  MutexLock lock(&mu_);
  // Tables may have changed while unlocked: parse again under the exclusive lock.
  if (closed_) return absl::UnavailableError("shard is shutting down");
  if (absl::Status s = ParseSlices(slices, &parsed, &floats, field); !s.ok()) return s;
  if (!no_wait && !PullReadyLocked(clock)) {
    if (!wake) return absl::DeadlineExceededError(absl::StrCat("clock ", clock, " is not ready"));
    *ticket = next_ticket_++;
    waiters_.emplace(*ticket, Waiter{rank, clock, std::move(wake)});
    return false;
  }
  std::vector<uint64_t> missing(parsed.size(), 0);
  uint64_t new_bytes = 0;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const Parsed& p = parsed[i];
    if (!p.table->sparse()) continue;
    missing[i] = p.table->CountMissing(p.keys);
    new_bytes += missing[i] * p.table->RowBytes();
  }
  if (new_bytes > 0) {
    if (absl::Status s = CheckRowLimitLocked(parsed, missing, field); !s.ok()) return s;
    if (!budget_->TryReserve(new_bytes)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          field, ": creating the missing sparse rows needs ", new_bytes,
          " bytes past the shard's memory budget of ", budget_->limit(), " bytes"));
    }
    reserved_ += new_bytes;
    for (const Parsed& p : parsed) {
      if (p.table->sparse()) p.table->CreateRows(p.keys);
    }
  }
  reserve();
  for (const Parsed& p : parsed) {
    if (p.table->sparse()) {
      p.table->ReadRows(p.keys, out);
    } else {
      read_dense(p);
    }
  }
  *applied_clock = SnapshotClockLocked();
  return true;
}

bool ShardJob::CancelWait(uint64_t ticket) {
  MutexLock lock(&mu_);
  return waiters_.erase(ticket) > 0;
}

std::vector<std::function<void()>> ShardJob::TakeReadyWaitersLocked() {
  std::vector<std::function<void()>> ready;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (closed_ || PullReadyLocked(it->second.clock)) {
      ready.push_back(std::move(it->second.wake));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  return ready;
}

void ShardJob::ApplyPartLocked(const std::vector<Parsed>& slices, const PackedFloats& values) {
  // One optimizer step per table touched by this part; a table's slices apply in order.
  std::vector<Table*> stepped;
  uint64_t offset = 0;
  // Dense gradients copied out of the request to zero the non-finite ones; one buffer
  // for the part, never zero-filled (the copy writes every value).
  std::unique_ptr<float[]> copied;
  uint64_t copied_size = 0;
  for (const Parsed& p : slices) {
    if (std::find(stepped.begin(), stepped.end(), p.table) == stepped.end()) {
      p.table->BeginStep();
      stepped.push_back(p.table);
    }
    const uint64_t n = p.floats;
    const uint64_t first = offset;
    offset += n;
    if (p.table->sparse()) {
      // At the rows the push's check found in this lock hold.
      PS_CHECK(p.rows.size() == p.keys.size());
      const RowGrads grads{p.keys, p.rows, &values, first};
      ApplyRowGrads(p.table, {&grads, 1}, RowStep{config_.zero_nonfinite, 0});
      continue;
    }
    if (!config_.zero_nonfinite) {
      // The request's bytes are the gradient: applied where they lie, not copied first.
      values.ForEachFloatRun(first, n, [&](uint64_t at, const char* bytes, size_t k) {
        p.table->ApplyDense(p.begin + (at - first), bytes, k);
      });
      continue;
    }
    if (n > copied_size) {
      copied.reset(new float[n]);
      copied_size = n;
    }
    // Copied with the non-finite values zeroed, in one pass.
    values.ForEachFloatRun(first, n, [&](uint64_t at, const char* bytes, size_t k) {
      AddGradient(GradTerm::kFirst, bytes, copied.get() + (at - first), k, /*zero_nonfinite=*/true);
    });
    p.table->ApplyDense(p.begin, copied.get(), n);
  }
}

void ShardJob::ApplySyncStepLocked() {
  const uint64_t clock = applied_clock_;
  for (const auto& [name, table_ptr] : tables_) {
    Table* table = table_ptr.get();
    bool touched = false;
    std::vector<float> dense_sum;
    std::vector<RowGrads> sparse;
    // Rank order, then part order, then slice order: the sum does not depend on timing.
    for (RankState& r : ranks_) {
      PendingClock& pc = r.pending.at(clock);
      for (const auto& part : pc.parts) {
        uint64_t offset = 0;
        for (Parsed& p : part->slices) {
          const uint64_t n = p.floats;
          const uint64_t first = offset;
          offset += n;
          if (p.table != table) continue;
          touched = true;
          if (!table->sparse()) {
            if (dense_sum.empty()) dense_sum.assign(table->local_count(), 0.0f);
            float* const dst = dense_sum.data() + (p.begin - table->local_begin());
            part->values.ForEachFloatRun(first, n, [&](uint64_t at, const char* bytes, size_t k) {
              AddGradient(GradTerm::kNext, bytes, dst + (at - first), k, config_.zero_nonfinite);
            });
            continue;
          }
          // Keys without a row at the push may have one now (an earlier slice of this
          // step makes them too late for this lookup; FirstOccurrences takes those by key).
          table->FindMissingRows(p.keys, &p.rows);
          sparse.push_back(RowGrads{p.keys, p.rows, &part->values, first});
        }
      }
    }
    if (!touched) continue;
    // The mean over workers (DivideBy).
    const float workers = static_cast<float>(config_.num_workers);
    table->BeginStep();
    if (!table->sparse()) {
      DivideBy(dense_sum.data(), dense_sum.size(), workers);
      table->ApplyDense(table->local_begin(), dense_sum.data(), dense_sum.size());
    } else {
      ApplyRowGrads(table, sparse, RowStep{config_.zero_nonfinite, workers});
    }
  }
  for (RankState& r : ranks_) {
    r.pending.erase(clock);
    r.done_below = clock + 1;
  }
  applied_clock_ = clock + 1;
  sync_new_keys_.clear();  // Created now; the caller settles the memory.
}

absl::StatusOr<PushResult> ShardJob::Push(const PushArgs& args) {
  if (args.rank >= config_.num_workers) {
    return absl::InvalidArgumentError(absl::StrCat("rank: ", args.rank,
                                                   " is not below num_workers ",
                                                   config_.num_workers));
  }
  if (args.num_parts == 0 || args.num_parts > 65536) {
    return absl::InvalidArgumentError(absl::StrCat("num_parts: must be 1 to 65536, got ",
                                                   args.num_parts));
  }
  if (args.part >= args.num_parts) {
    return absl::InvalidArgumentError(absl::StrCat("part: ", args.part,
                                                   " is not below num_parts ", args.num_parts));
  }
  // Scanned before taking the job's lock: it reads only the request.
  if (!config_.zero_nonfinite) {
    const int64_t bad = args.values.FirstNonFinite();
    if (bad >= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "values: gradient ", bad, " is ", std::isnan(args.values.At(bad)) ? "NaN" : "infinite",
          "; the job's nonfinite policy is REJECT"));
    }
  }
  std::vector<std::function<void()>> wake;
  JobSnapshot snapshot;
  bool snapshot_due = false;
  PushResult result;
  {
    MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("shard is shutting down");
    std::vector<Parsed> parsed;
    uint64_t floats = 0;
    if (absl::Status s = ParseSlices(args.slices, &parsed, &floats); !s.ok()) return s;
    if (absl::Status s = args.values.CheckCount(floats, "values"); !s.ok()) return s;
    RankState& rank = ranks_[args.rank];
    if (config_.mode == ConsistencyMode::kAsync && args.clock > rank.done_below &&
        (rank.pending.empty() || rank.pending.begin()->first < args.clock)) {
      // A worker pushes clock c only once every part of c-1 was acknowledged, so the
      // rank's clocks below c that this shard lacks were acknowledged by an earlier
      // incarnation of it and lost with the restart (ASYNC jobs are not rolled back):
      // they will not come again. Without this the rank's record would wait for them.
      rank.pending.erase(rank.pending.begin(), rank.pending.lower_bound(args.clock));
      rank.done_below = args.clock;
    }
    // Exactly once: a part seen before is acknowledged, not applied.
    bool duplicate = args.clock < rank.done_below;
    auto pending = rank.pending.find(args.clock);
    if (!duplicate && pending != rank.pending.end()) {
      if (pending->second.num_parts != args.num_parts) {
        return absl::InvalidArgumentError(absl::StrCat(
            "num_parts: ", args.num_parts, " differs from the ", pending->second.num_parts,
            " of earlier parts of rank ", args.rank, " clock ", args.clock));
      }
      duplicate = pending->second.have[args.part];
    }
    if (duplicate) {
      ++pushes_duplicate_;
      result.duplicate = true;
      result.clock = SnapshotClockLocked();
      return result;
    }
    std::vector<uint64_t> missing(parsed.size(), 0);
    // SYNC: the keys without a row that no part held for this clock has yet, per table.
    std::vector<SyncNewKeys> fresh;
    uint64_t new_bytes = 0;
    for (size_t i = 0; i < parsed.size(); ++i) {
      Parsed& p = parsed[i];
      if (!p.table->sparse()) continue;
      if (config_.mode == ConsistencyMode::kSync) {
        p.table->FindRows(p.keys, &p.rows);
        missing[i] = CountNewToTheClockLocked(p, &fresh);
      } else {
        missing[i] = p.table->CountMissing(p.keys, &p.rows);
      }
      new_bytes += missing[i] * p.table->RowBytes();
    }
    if (config_.mode == ConsistencyMode::kSync && args.clock != applied_clock_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "clock: ", args.clock, " is not the shard's current clock ", applied_clock_,
          " (SYNC applies clocks in order; pull clock ", args.clock, " first)"));
    }
    if (new_bytes > 0) {
      if (absl::Status s = CheckRowLimitLocked(parsed, missing, "slices"); !s.ok()) return s;
      if (!budget_->TryReserve(new_bytes)) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "slices: the new sparse rows need ", new_bytes,
            " bytes past the shard's memory budget of ", budget_->limit(), " bytes"));
      }
      reserved_ += new_bytes;
    }
    if (pending == rank.pending.end()) {
      pending = rank.pending.emplace(args.clock, PendingClock{}).first;
      pending->second.num_parts = args.num_parts;
      pending->second.have.assign(args.num_parts, false);
      if (config_.mode == ConsistencyMode::kSync) pending->second.parts.resize(args.num_parts);
    }
    PendingClock& pc = pending->second;
    pc.have[args.part] = true;
    ++pc.received;
    ++pushes_applied_;
    const uint64_t before = SnapshotClockLocked();
    if (config_.mode == ConsistencyMode::kSync) {
      auto part = std::make_unique<Part>();
      part->slices = std::move(parsed);
      if (args.values_owner != nullptr) {
        part->values = args.values;  // The received bytes, held until the clock applies.
        part->owner = args.values_owner;
      } else {
        part->copy.reserve(args.values.size_bytes());
        for (absl::string_view piece : args.values.pieces()) {
          part->copy.append(piece.data(), piece.size());
        }
        part->values = PackedFloats({part->copy}, args.values.encoding());
      }
      pc.parts[args.part] = std::move(part);
      // The rows it will create stay reserved until the step (SettleMemoryLocked).
      for (SyncNewKeys& f : fresh) {
        auto it = std::find_if(sync_new_keys_.begin(), sync_new_keys_.end(),
                               [&](const SyncNewKeys& n) { return n.table == f.table; });
        if (it == sync_new_keys_.end()) {
          sync_new_keys_.push_back(std::move(f));
        } else {
          it->keys.merge(f.keys);
        }
      }
      const bool all_in = std::all_of(ranks_.begin(), ranks_.end(), [&](const RankState& r) {
        auto it = r.pending.find(applied_clock_);
        return it != r.pending.end() && it->second.received == it->second.num_parts;
      });
      if (all_in) ApplySyncStepLocked();
    } else {
      ApplyPartLocked(parsed, args.values);
      // Advance the rank's clock over every clock whose parts are all in.
      while (!rank.pending.empty() && rank.pending.begin()->first == rank.done_below &&
             rank.pending.begin()->second.received == rank.pending.begin()->second.num_parts) {
        rank.pending.erase(rank.pending.begin());
        ++rank.done_below;
      }
    }
    SettleMemoryLocked();
    const uint64_t after = SnapshotClockLocked();
    result.clock = after;
    if (after != before) {
      wake = TakeReadyWaitersLocked();
      const uint32_t every = config_.checkpoint_every_clocks;
      const bool periodic = every > 0 && config_.mode != ConsistencyMode::kAsync &&
                            after / every != before / every;
      // The finished model, whatever the interval (JobConfig::total_clocks).
      const uint64_t total = total_clocks_;
      const bool final =
          config_.takes_checkpoints && total > 0 && before < total && after >= total;
      if (sink_ && (periodic || final)) {
        snapshot = SnapshotLocked();
        snapshot_due = true;
      }
    }
  }
  for (auto& w : wake) w();
  if (snapshot_due) sink_(std::move(snapshot));  // Borrowed: the sink copies it.
  return result;
}

JobSnapshot ShardJob::Snapshot() {
  // Map the buffers first, outside the lock (on this machine kind a fresh page costs
  // ~20 µs; a 256 MiB table is 65,536 of them), then copy under the lock.
  std::vector<std::pair<std::string, uint64_t>> needed;
  {
    ReaderMutexLock lock(&mu_);
    for (const auto& [name, t] : tables_) needed.emplace_back(StateRecordName(name), t->StateBytes());
  }
  for (const auto& [record, bytes] : needed) {
    std::string buffer;
    {
      MutexLock lock(&spare_mu_);
      auto it = spare_.find(record);
      if (it != spare_.end()) buffer = std::move(it->second);
    }
    if (buffer.capacity() < bytes) {
      buffer = std::string();
      ReserveHuge(&buffer, bytes);
      buffer.resize(bytes);  // Touches every page.
    }
    MutexLock lock(&spare_mu_);
    spare_[record] = std::move(buffer);
  }
  JobSnapshot snap;
  {
    ReaderMutexLock lock(&mu_);
    snap = SnapshotLocked();
  }
  FillBorrowed(&snap);
  return snap;
}

void ShardJob::FillBorrowed(JobSnapshot* snap) {
  if (snap->borrowed.empty()) return;
  const auto start = std::chrono::steady_clock::now();
  for (auto& [record, lent] : snap->borrowed) {
    std::string& bytes = snap->records[record].bytes;
    size_t size = lent.front().at;
    for (const LentBytes& l : lent) size += l.size;
    if (bytes.size() < size) {
      // A buffer that was new under the lock holds only the header
      // (Table::SaveStateInto): mapped here, outside it.
      if (bytes.capacity() < size) {
        std::string sized;
        ReserveHuge(&sized, size);
        sized.assign(bytes);
        bytes.swap(sized);
      }
      bytes.resize(size);
    }
    // One dense table's weights and slots: consecutive ranges of its record, in order.
    std::vector<ByteRun> runs;
    runs.reserve(lent.size());
    for (const LentBytes& l : lent) runs.push_back(ByteRun{l.data, l.size});
    ParallelGather(snap->records[record].bytes.data() + lent.front().at, runs);
    lent.clear();  // The loans go back: pushes write these blocks in place again.
  }
  snap->borrowed.clear();
  snap->fill_us += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                             std::chrono::steady_clock::now() - start)
                                             .count());
}

void ShardJob::Recycle(std::vector<StateRecord> records) {
  MutexLock lock(&spare_mu_);
  spare_.clear();  // Of tables that may have been dropped since.
  for (StateRecord& r : records) {
    if (absl::StartsWith(r.name, "table/") && absl::EndsWith(r.name, "/state")) {
      spare_[r.name] = std::move(r.bytes);
    }
  }
}

JobSnapshot ShardJob::SnapshotLocked() {
  const auto start = std::chrono::steady_clock::now();
  JobSnapshot snap;
  snap.job_id = config_.job_id;
  snap.clock = SnapshotClockLocked();
  snap.keep = config_.checkpoint_keep;
  snap.rolls_back = config_.mode != ConsistencyMode::kAsync;
  snap.records.push_back(StateRecord{"job", record_blob_});
  std::string state;
  ByteWriter w(&state);
  w.U64(snap.clock);
  w.U64(applied_clock_);
  w.U32(static_cast<uint32_t>(ranks_.size()));
  for (const RankState& r : ranks_) {
    w.U64(r.done_below);
    // Parts applied of later clocks (BOUNDED/ASYNC; SYNC buffers are not state: the
    // workers push them again after a restore to this clock).
    uint32_t n = 0;
    if (config_.mode != ConsistencyMode::kSync) n = static_cast<uint32_t>(r.pending.size());
    w.U32(n);
    if (n == 0) continue;
    for (const auto& [clock, pc] : r.pending) {
      w.U64(clock);
      w.U32(pc.num_parts);
      for (uint32_t i = 0; i < pc.num_parts; ++i) w.U32(pc.have[i] ? 1 : 0);
    }
  }
  w.U64(pushes_applied_);
  w.U64(pushes_duplicate_);
  snap.records.push_back(StateRecord{"state", std::move(state)});
  for (const auto& [name, t] : tables_) {
    snap.records.push_back(StateRecord{"table/" + name + "/spec", t->config().spec_blob});
    StateRecord state{StateRecordName(name), std::string()};
    {
      MutexLock spare_lock(&spare_mu_);
      auto it = spare_.find(state.name);
      if (it != spare_.end()) {
        state.bytes = std::move(it->second);
        spare_.erase(it);
      }
    }
    std::vector<LentBytes> lent;
    t->SaveStateInto(&state.bytes, &lent);
    if (!lent.empty()) snap.borrowed.emplace_back(snap.records.size(), std::move(lent));
    snap.records.push_back(std::move(state));
  }
  snap.pause_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                            std::chrono::steady_clock::now() - start)
                                            .count());
  return snap;
}

absl::Status ShardJob::Restore(const std::vector<StateRecord>& records,
                               const std::vector<TableConfig>& table_configs) {
  std::vector<std::function<void()>> wake;
  {
    MutexLock lock(&mu_);
    const StateRecord* state = nullptr;
    std::map<std::string, const StateRecord*> table_states;
    for (const StateRecord& r : records) {
      if (r.name == "state") state = &r;
      constexpr absl::string_view kPrefix = "table/";
      constexpr absl::string_view kSuffix = "/state";
      absl::string_view n = r.name;
      if (n.size() > kPrefix.size() + kSuffix.size() && n.substr(0, kPrefix.size()) == kPrefix &&
          n.substr(n.size() - kSuffix.size()) == kSuffix) {
        table_states[std::string(n.substr(kPrefix.size(), n.size() - kPrefix.size() - kSuffix.size()))] = &r;
      }
    }
    if (state == nullptr) return absl::DataLossError("checkpoint has no 'state' record");
    ByteReader rd(state->bytes, "state");
    uint64_t snap_clock = 0, applied = 0, pa = 0, pd = 0;
    uint32_t nranks = 0;
    if (auto s = rd.U64(&snap_clock); !s.ok()) return s;
    if (auto s = rd.U64(&applied); !s.ok()) return s;
    if (auto s = rd.U32(&nranks); !s.ok()) return s;
    if (nranks != config_.num_workers) {
      return absl::DataLossError(absl::StrCat("checkpoint has ", nranks, " ranks, the job has ",
                                              config_.num_workers));
    }
    std::vector<RankState> ranks(nranks);
    for (RankState& r : ranks) {
      uint32_t n = 0;
      if (auto s = rd.U64(&r.done_below); !s.ok()) return s;
      if (auto s = rd.U32(&n); !s.ok()) return s;
      for (uint32_t i = 0; i < n; ++i) {
        uint64_t clock = 0;
        PendingClock pc;
        if (auto s = rd.U64(&clock); !s.ok()) return s;
        if (auto s = rd.U32(&pc.num_parts); !s.ok()) return s;
        if (pc.num_parts == 0 || pc.num_parts > 65536) return absl::DataLossError("state: bad num_parts");
        pc.have.resize(pc.num_parts);
        for (uint32_t k = 0; k < pc.num_parts; ++k) {
          uint32_t h = 0;
          if (auto s = rd.U32(&h); !s.ok()) return s;
          pc.have[k] = h != 0;
          pc.received += h != 0;
        }
        r.pending.emplace(clock, std::move(pc));
      }
    }
    if (auto s = rd.U64(&pa); !s.ok()) return s;
    if (auto s = rd.U64(&pd); !s.ok()) return s;
    // Tables: create the missing ones, then load every table's state into fresh tables
    // so that a failure leaves the job as it was.
    std::map<std::string, std::unique_ptr<Table>, std::less<>> fresh;
    for (const TableConfig& tc : table_configs) {
      uint64_t begin = 0, count = 0;
      if (!tc.sparse) {
        auto part = DensePartition::Create(tc.name, tc.size, config_.num_shards);
        if (!part.ok()) return absl::DataLossError(std::string(part.status().message()));
        const DenseRange r = part->RangeOf(config_.shard_id);
        begin = r.begin;
        count = r.count;
      }
      fresh.emplace(tc.name, std::make_unique<Table>(tc, config_.seed, begin, count));
    }
    for (auto& [name, table] : fresh) {
      auto it = table_states.find(name);
      if (it == table_states.end()) {
        return absl::DataLossError(absl::StrCat("checkpoint has no state of table '", name, "'"));
      }
      if (auto s = table->LoadState(it->second->bytes); !s.ok()) return s;
    }
    tables_ = std::move(fresh);
    ranks_ = std::move(ranks);  // A checkpoint holds no SYNC parts.
    sync_new_keys_.clear();
    applied_clock_ = applied;
    pushes_applied_ = pa;
    pushes_duplicate_ = pd;
    last_snapshot_clock_ = snap_clock;
    SettleMemoryLocked();
    wake = TakeReadyWaitersLocked();
  }
  for (auto& w : wake) w();
  return absl::OkStatus();
}

void ShardJob::Reset() {
  std::vector<std::function<void()>> wake;
  {
    MutexLock lock(&mu_);
    std::map<std::string, std::unique_ptr<Table>, std::less<>> fresh;
    for (const auto& [name, t] : tables_) {
      fresh.emplace(name, std::make_unique<Table>(t->config(), config_.seed, t->local_begin(),
                                                  t->local_count()));
    }
    tables_ = std::move(fresh);
    ranks_.clear();
    ranks_.resize(config_.num_workers);
    sync_new_keys_.clear();
    applied_clock_ = 0;
    last_snapshot_clock_ = 0;
    SettleMemoryLocked();
    wake = TakeReadyWaitersLocked();
  }
  for (auto& w : wake) w();
}

JobCounters ShardJob::Counters(bool with_digest) const {
  ReaderMutexLock lock(&mu_);
  JobCounters c;
  c.clock = SnapshotClockLocked();
  for (const RankState& r : ranks_) c.worker_clocks.push_back(r.done_below);
  c.pushes_applied = pushes_applied_;
  c.pushes_duplicate = pushes_duplicate_;
  for (const auto& [name, t] : tables_) {
    if (t->sparse()) {
      c.sparse_rows += t->num_rows();
    } else {
      c.dense_elements += t->local_count();
      c.dense_copies_on_write += t->copies_on_write();
    }
  }
  c.memory_bytes = MemoryLocked();
  if (with_digest) {
    uint64_t h = kFnvOffset;
    for (const auto& [name, t] : tables_) {
      h = Fnv1a64(name, h);
      h = Fnv1a64(t->SaveState(), h);
    }
    c.digest = h;
  }
  return c;
}

uint64_t ShardJob::clock() const {
  ReaderMutexLock lock(&mu_);
  return SnapshotClockLocked();
}

void ShardJob::Close() {
  std::vector<std::function<void()>> wake;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    wake = TakeReadyWaitersLocked();
  }
  for (auto& w : wake) w();
}

}  // namespace ps
