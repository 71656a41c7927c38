#include "server/table.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/hash.h"
#include "common/huge_pages.h"
#include "common/logging.h"
#include "common/parallel_copy.h"
#include "server/bytes.h"

namespace ps {
namespace {

// Keys arrive in random order, so every index lookup misses the cache. Loops over keys
// call this at each i to prefetch the index slot a few keys ahead, overlapping those
// misses (and the first few at i == 0).
// Always inlined: GCC 12 counts a prefetch as no side effect, so an out-of-line copy of
// this function is "const" to it, and it deleted every call (no index prefetch was
// issued at all until this was found).
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PrefetchAhead(const RowIndex& index,
                                                       absl::Span<const uint64_t> keys,
                                                       size_t i) {
  constexpr size_t kAhead = 16;
  if (i == 0) {
    for (size_t j = 0; j < std::min(kAhead, keys.size()); ++j) index.Prefetch(keys[j]);
  }
  if (i + kAhead < keys.size()) index.Prefetch(keys[i + kAhead]);
}

// Calls f(i, row of keys[i] or RowIndex::kNone) for each key in order, prefetching.
template <typename F>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void ForEachFoundRow(const RowIndex& index,
                                                         absl::Span<const uint64_t> keys, F&& f) {
  for (size_t i = 0; i < keys.size(); ++i) {
    PrefetchAhead(index, keys, i);
    f(i, index.Find(keys[i]));
  }
}

// Rows are prefetched this many ahead of the one copied or updated.
constexpr size_t kRowsAhead = 8;

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void PrefetchBytes(const void* p, size_t n) {
  for (size_t b = 0; b < n; b += 64) __builtin_prefetch(static_cast<const char*>(p) + b);
}

// `n` copies of `fill` in memory advised for huge pages before its first touch: fewer
// faults, and fewer TLB misses in every pass over a dense table (the snapshot's copy
// under the lock among them).
std::vector<float> HugeValues(size_t n, float fill) {
  std::vector<float> v;
  v.reserve(n);
  AdviseHugePages(v.data(), n * sizeof(float));
  v.resize(n, fill);
  return v;
}

// Uniform in [0, 1) from the top 24 bits: exactly representable as float.
float Unit(uint64_t bits) { return static_cast<float>(bits >> 40) * (1.0f / 16777216.0f); }

}  // namespace

float InitialValue(const TableConfig& config, uint64_t seed, uint64_t index, uint32_t j) {
  if (config.init == InitKind::kZeros || config.init_scale == 0.0f) return 0.0f;
  const uint64_t h = HashCombine(HashCombine(Mix64(seed), Fnv1a64(config.name)), index);
  if (config.init == InitKind::kUniform) {
    return config.init_scale * (2.0f * Unit(Mix64(h + j)) - 1.0f);
  }
  // Box-Muller over two independent uniforms; u1 in (0, 1].
  const double u1 = 1.0 - static_cast<double>(Unit(Mix64(h + 2 * uint64_t{j})));
  const double u2 = static_cast<double>(Unit(Mix64(h + 2 * uint64_t{j} + 1)));
  const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  return static_cast<float>(config.init_scale * z);
}

Table::Table(TableConfig config, uint64_t job_seed, uint64_t local_begin, uint64_t local_count)
    : config_(std::move(config)),
      seed_(job_seed),
      local_begin_(config_.sparse ? 0 : local_begin),
      local_count_(config_.sparse ? 0 : local_count),
      num_slots_(NumSlots(config_.optimizer.kind)) {
  if (config_.sparse) {
    slots_.resize(num_slots_);
  } else {
    dense_ = DenseValues(local_count_);  // Zeros: the values of a zero initialiser.
    if (config_.init != InitKind::kZeros && config_.init_scale != 0.0f) {
      dense_.MutableRuns(0, local_count_, [&](size_t at, float* w, size_t k) {
        for (size_t i = 0; i < k; ++i) {
          w[i] = InitialValue(config_, seed_, local_begin_ + at + i, 0);
        }
      });
    }
    for (int s = 0; s < num_slots_; ++s) {
      dense_slots_.emplace_back(local_count_, InitialSlotValue(config_.optimizer, s));
    }
  }
}

uint64_t Table::copies_on_write() const {
  uint64_t copies = dense_.copies_on_write();
  for (const DenseValues& s : dense_slots_) copies += s.copies_on_write();
  return copies;
}

uint64_t Table::RowBytes() const {
  // Sparse: the key in keys_ and at least two 16-byte entries of the half-full index.
  return uint64_t{width()} * sizeof(float) * (1 + num_slots_) +
         (config_.sparse ? sizeof(uint64_t) + 2 * RowIndex::kEntryBytes : 0);
}

uint64_t Table::MemoryBytes() const {
  return config_.sparse ? RowBytes() * keys_.size() : RowBytes() * local_count_;
}

absl::Status Table::CheckDenseRange(uint64_t begin, uint64_t count,
                                    absl::string_view field) const {
  if (begin < local_begin_ || begin > local_begin_ + local_count_ ||
      count > local_begin_ + local_count_ - begin) {
    return absl::OutOfRangeError(absl::StrCat(
        field, ": range [", begin, ", ", begin + count, ") of table '", config_.name,
        "' is not held here (this shard holds [", local_begin_, ", ",
        local_begin_ + local_count_, ") of ", config_.size, ")"));
  }
  return absl::OkStatus();
}

void Table::ReadDense(uint64_t begin, uint64_t count, std::string* out) const {
  dense_.ConstRuns(begin - local_begin_, count, [out](size_t, const float* w, size_t k) {
    out->append(reinterpret_cast<const char*>(w), k * sizeof(float));
  });
}

void Table::LendDense(uint64_t begin, uint64_t count, size_t at,
                      std::vector<LentBytes>* out) const {
  dense_.Lend(begin - local_begin_, count, at, out);
}

uint64_t Table::CountMissing(absl::Span<const uint64_t> keys, std::vector<uint64_t>* rows) const {
  absl::flat_hash_set<uint64_t> seen;
  uint64_t missing = 0;
  if (rows != nullptr) rows->resize(keys.size());
  ForEachFoundRow(index_, keys, [&](size_t i, uint64_t row) {
    if (rows != nullptr) (*rows)[i] = row;
    if (row == RowIndex::kNone && seen.insert(keys[i]).second) ++missing;
  });
  return missing;
}

void Table::FindRows(absl::Span<const uint64_t> keys, std::vector<uint64_t>* rows) const {
  rows->resize(keys.size());
  ForEachFoundRow(index_, keys, [rows](size_t i, uint64_t row) { (*rows)[i] = row; });
}

void Table::FindMissingRows(absl::Span<const uint64_t> keys, std::vector<uint64_t>* rows) const {
  PS_CHECK(rows->size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    if ((*rows)[i] == RowIndex::kNone) (*rows)[i] = index_.Find(keys[i]);
  }
}

bool Table::FirstOccurrences(absl::Span<const uint64_t> keys, absl::Span<const uint64_t> rows,
                             std::vector<uint32_t>* first) {
  PS_CHECK(keys.size() < (uint64_t{1} << 32));
  // Keys with a row come again when their rows do: a bit per row (the bitmap of a table
  // of a million rows is 128 KiB) finds those, and only they go in a map to their first
  // place. A map of every key took 2.5 % of the CPU of a sparse ps_bench run.
  if (marks_.size() * 64 < keys_.size()) marks_.resize((keys_.size() + 63) / 64);
  auto bit = [](uint64_t row) { return uint64_t{1} << (row % 64); };
  constexpr uint32_t kUnset = ~uint32_t{0};
  absl::flat_hash_map<uint64_t, uint32_t> again;    // Row -> first place.
  absl::flat_hash_map<uint64_t, uint32_t> missing;  // Key without a row (few) -> first place.
  bool repeats = false;
  first->resize(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const uint32_t at = static_cast<uint32_t>(i);
    if (rows[i] == RowIndex::kNone) {
      const auto [it, fresh] = missing.emplace(keys[i], at);
      (*first)[i] = it->second;
      repeats |= !fresh;
      continue;
    }
    (*first)[i] = at;
    uint64_t& word = marks_[rows[i] / 64];
    if ((word & bit(rows[i])) != 0) {
      again.emplace(rows[i], kUnset);
      repeats = true;
    }
    word |= bit(rows[i]);
  }
  for (size_t i = 0; i < keys.size(); ++i) {  // Clear again.
    if (rows[i] != RowIndex::kNone) marks_[rows[i] / 64] = 0;
  }
  if (again.empty()) return repeats;
  // Second pass: the rows that come again, marked, take their first place.
  for (const auto& [row, unused] : again) marks_[row / 64] |= bit(row);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (rows[i] == RowIndex::kNone || (marks_[rows[i] / 64] & bit(rows[i])) == 0) continue;
    uint32_t& place = again.find(rows[i])->second;
    if (place == kUnset) place = static_cast<uint32_t>(i);
    (*first)[i] = place;
  }
  for (const auto& [row, unused] : again) marks_[row / 64] = 0;
  return repeats;
}

uint64_t Table::RowOf(uint64_t key) {
  const auto [row, inserted] = index_.Insert(key, keys_.size());
  if (inserted) {
    const uint32_t dim = config_.dim;
    keys_.push_back(key);
    for (uint32_t j = 0; j < dim; ++j) weights_.push_back(InitialValue(config_, seed_, key, j));
    for (int s = 0; s < num_slots_; ++s) {
      slots_[s].resize(slots_[s].size() + dim, InitialSlotValue(config_.optimizer, s));
    }
  }
  return row;
}

void Table::CreateRows(absl::Span<const uint64_t> keys) {
  for (uint64_t k : keys) RowOf(k);
}

bool Table::TryReadRows(absl::Span<const uint64_t> keys, std::string* out) const {
  const size_t row_bytes = size_t{config_.dim} * sizeof(float);
  const size_t start = out->size();
  out->reserve(start + keys.size() * row_bytes);
  // In blocks, two passes each: look up the block's rows (prefetching index entries
  // ahead), then append them (prefetching rows ahead), so that both kinds of cache
  // miss overlap. Appending, not resizing first, spares a pass zero-filling `out`.
  constexpr size_t kBlock = 256;
  const char* rows[kBlock];
  for (size_t base = 0; base < keys.size(); base += kBlock) {
    const absl::Span<const uint64_t> block = keys.subspan(base, kBlock);
    for (size_t i = 0; i < block.size(); ++i) {
      PrefetchAhead(index_, keys, base + i);
      const uint64_t row = index_.Find(block[i]);
      if (row == RowIndex::kNone) {
        out->resize(start);
        return false;
      }
      rows[i] = reinterpret_cast<const char*>(weights_.data() + row * config_.dim);
      if (i < kRowsAhead) PrefetchBytes(rows[i], row_bytes);
    }
    for (size_t i = 0; i < block.size(); ++i) {
      if (i + kRowsAhead < block.size()) PrefetchBytes(rows[i + kRowsAhead], row_bytes);
      out->append(rows[i], row_bytes);
    }
  }
  return true;
}

void Table::ReadRows(absl::Span<const uint64_t> keys, std::string* out) const {
  const uint32_t dim = config_.dim;
  const size_t start = out->size();
  out->resize(start + keys.size() * dim * sizeof(float));
  char* dst = out->data() + start;
  for (uint64_t k : keys) {
    if (const uint64_t row = index_.Find(k); row != RowIndex::kNone) {
      std::memcpy(dst, weights_.data() + row * dim, dim * sizeof(float));
    } else {
      for (uint32_t j = 0; j < dim; ++j) {
        const float v = InitialValue(config_, seed_, k, j);
        std::memcpy(dst + j * sizeof(float), &v, sizeof(float));
      }
    }
    dst += dim * sizeof(float);
  }
}

void Table::ApplyDense(uint64_t begin, const void* grad, size_t n) {
  const uint64_t off = begin - local_begin_;
  dense_.MutableRuns(off, n, [&](size_t at, float* w, size_t k) {
    float* slots[2] = {nullptr, nullptr};
    for (int s = 0; s < num_slots_; ++s) slots[s] = dense_slots_[s].MutableRun(off + at, k);
    ApplyOptimizer(config_.optimizer, step_, static_cast<const char*>(grad) + at * sizeof(float),
                   w, slots, k);
  });
}

void Table::ApplyRows(absl::Span<const uint64_t> keys, absl::Span<const float> grad) {
  std::vector<uint64_t> rows;
  FindRows(keys, &rows);
  ApplyRowsAt(keys, rows, grad.data());
}

void Table::ApplyRowsAt(absl::Span<const uint64_t> keys, absl::Span<const uint64_t> rows,
                        const void* grad) {
  const uint32_t dim = config_.dim;
  const size_t row_bytes = size_t{dim} * sizeof(float);
  // The rows are known: their weights (and slots) are fetched a few rows ahead of the
  // step that reads and writes them; for a row to create, the index entry.
  auto prefetch = [&](size_t i) {
    if (rows[i] == RowIndex::kNone) {
      index_.Prefetch(keys[i]);
      return;
    }
    PrefetchBytes(weights_.data() + rows[i] * dim, row_bytes);
    for (int s = 0; s < num_slots_; ++s) PrefetchBytes(slots_[s].data() + rows[i] * dim, row_bytes);
  };
  for (size_t i = 0; i < std::min(kRowsAhead, keys.size()); ++i) prefetch(i);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i + kRowsAhead < keys.size()) prefetch(i + kRowsAhead);
    const uint64_t row = rows[i] != RowIndex::kNone ? rows[i] : RowOf(keys[i]);
    float* slots[2] = {nullptr, nullptr};
    for (int s = 0; s < num_slots_; ++s) slots[s] = slots_[s].data() + row * dim;
    ApplyOptimizer(config_.optimizer, step_, static_cast<const char*>(grad) + i * row_bytes,
                   weights_.data() + row * dim, slots, dim);
  }
}

uint64_t Table::StateBytes() const {
  const uint64_t values = (config_.sparse ? weights_.size() : dense_.size()) *
                          (1 + static_cast<uint64_t>(num_slots_));
  return 8 + 4 + 8 + (config_.sparse ? keys_.size() * 8 : 0) + values * sizeof(float);
}

std::string Table::SaveState() const {
  std::string out;
  SaveStateInto(&out);
  return out;
}

void Table::SaveStateInto(std::string* buffer, std::vector<LentBytes>* lent) const {
  std::string& out = *buffer;
  // Snapshots are taken under the job's lock: when the buffer is new, its memory is
  // advised for huge pages, so the lock is held for the copy and not for hundreds of
  // thousands of page faults.
  const uint64_t bytes = StateBytes();
  if (!config_.sparse) {
    std::string header;
    ByteWriter w(&header);
    w.U64(step_);
    w.U32(static_cast<uint32_t>(num_slots_));
    w.U64(local_count_);
    if (lent != nullptr && out.size() != bytes) {
      // A new buffer: mapping it here would hold the lock for its page faults (95 ms
      // for 1 GB). It is left to the caller, who sizes it when it copies the loans.
      out.assign(header);
      dense_.Lend(0, local_count_, header.size(), lent);
      for (const DenseValues& s : dense_slots_) s.Lend(0, local_count_, header.size(), lent);
      return;
    }
    // A dense state's size never changes, so a recycled buffer has it already: the
    // values are copied into place (on every core, common/parallel_copy.h), with no
    // pass zero-filling or appending.
    if (out.size() != bytes) {
      out.clear();
      if (out.capacity() < bytes) ReserveHuge(&out, bytes);
      out.resize(bytes);
    }
    char* dst = out.data();
    std::memcpy(dst, header.data(), header.size());
    dst += header.size();
    if (lent != nullptr) {
      dense_.Lend(0, local_count_, header.size(), lent);
      for (const DenseValues& s : dense_slots_) s.Lend(0, local_count_, header.size(), lent);
    } else {
      std::vector<ByteRun> runs;
      dense_.AppendRuns(&runs);
      for (const DenseValues& s : dense_slots_) s.AppendRuns(&runs);
      ParallelGather(dst, runs);
    }
    return;
  }
  out.clear();
  if (out.capacity() < bytes) ReserveHuge(&out, bytes);
  ByteWriter w(&out);
  w.U64(step_);
  w.U32(static_cast<uint32_t>(num_slots_));
  // Rows by ascending key, so equal states give equal bytes whatever the insertion order.
  std::vector<uint64_t> order(keys_.size());
  for (uint64_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [this](uint64_t a, uint64_t b) { return keys_[a] < keys_[b]; });
  const uint32_t dim = config_.dim;
  w.U64(order.size());
  for (uint64_t i : order) w.U64(keys_[i]);
  for (uint64_t i : order) w.Raw(weights_.data() + i * dim, dim * sizeof(float));
  for (const auto& s : slots_) {
    for (uint64_t i : order) w.Raw(s.data() + i * dim, dim * sizeof(float));
  }
}

absl::Status Table::LoadState(absl::string_view bytes) {
  const std::string what = absl::StrCat("table '", config_.name, "'");
  ByteReader r(bytes, what);
  uint64_t step = 0, n = 0;
  uint32_t num_slots = 0;
  if (auto s = r.U64(&step); !s.ok()) return s;
  if (auto s = r.U32(&num_slots); !s.ok()) return s;
  if (auto s = r.U64(&n); !s.ok()) return s;
  if (static_cast<int>(num_slots) != num_slots_) {
    return absl::DataLossError(absl::StrCat(what, ": checkpoint has ", num_slots,
                                            " optimizer slots, the table has ", num_slots_));
  }
  const uint64_t row_width = width();
  if (!config_.sparse && n != local_count_) {
    return absl::DataLossError(absl::StrCat(what, ": checkpoint holds ", n,
                                            " elements, this shard holds ", local_count_));
  }
  if (n * row_width * sizeof(float) * (1 + num_slots_) > bytes.size()) {
    return absl::DataLossError(absl::StrCat(what, ": record is truncated"));
  }
  std::vector<uint64_t> keys;
  if (config_.sparse) {
    keys.resize(n);
    if (auto s = r.Raw(keys.data(), n * sizeof(uint64_t)); !s.ok()) return s;
  }
  if (!config_.sparse) {
    // Weights and slots are read in place, once the whole record is known to fit.
    std::vector<const char*> arrays(1 + num_slots_);
    for (const char*& a : arrays) {
      if (auto s = r.View(n * sizeof(float), &a); !s.ok()) return s;
    }
    if (!r.done()) return absl::DataLossError(what + ": trailing bytes in record");
    step_ = step;
    dense_.Assign(arrays[0], n);
    for (int s = 0; s < num_slots_; ++s) dense_slots_[s].Assign(arrays[1 + s], n);
    return absl::OkStatus();
  }
  std::vector<float> weights = HugeValues(n * row_width, 0.0f);
  if (auto s = r.Raw(weights.data(), weights.size() * sizeof(float)); !s.ok()) return s;
  std::vector<std::vector<float>> slots(num_slots_);
  for (auto& sl : slots) {
    sl = HugeValues(n * row_width, 0.0f);
    if (auto s = r.Raw(sl.data(), sl.size() * sizeof(float)); !s.ok()) return s;
  }
  if (!r.done()) return absl::DataLossError(what + ": trailing bytes in record");
  step_ = step;
  weights_ = std::move(weights);
  slots_ = std::move(slots);
  keys_ = std::move(keys);
  index_.Clear();
  for (uint64_t i = 0; i < keys_.size(); ++i) index_.Insert(keys_[i], i);
  return absl::OkStatus();
}

uint64_t Table::Digest() const { return Fnv1a64(SaveState()); }

}  // namespace ps
