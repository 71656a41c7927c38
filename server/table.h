// One table of a job on one shard: its part of the weights and optimizer slots.
//
// A dense table holds the elements [local_begin, local_begin + local_count) of the
// global table (its run of blocks, common/partition.h). A sparse table holds the rows
// of the keys that hash to this shard, created on first pull with a deterministic
// initialiser seeded by (job seed, table name, key), so a restarted shard recreates the
// same rows.
//
// Not thread-safe: the owning ShardJob serialises access (readers may share).
#ifndef PS_SERVER_TABLE_H_
#define PS_SERVER_TABLE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/dense_values.h"
#include "server/optimizer.h"
#include "server/row_index.h"

namespace ps {

enum class InitKind { kZeros, kUniform, kNormal };

struct TableConfig {
  std::string name;
  bool sparse = false;
  uint64_t size = 0;  // Dense: global elements.
  uint32_t dim = 0;   // Sparse: row width.
  InitKind init = InitKind::kZeros;
  float init_scale = 0.0f;
  OptimizerConfig optimizer;
  // The serialized spec as the service layer received it; kept opaque and written with
  // checkpoints so a restarted shard can recreate the table.
  std::string spec_blob;
};

// The initial value of element `j` of the row (sparse) or element (dense, j = 0) with
// the given index, for a table of `config` in a job seeded with `seed`.
float InitialValue(const TableConfig& config, uint64_t seed, uint64_t index, uint32_t j);

class Table {
 public:
  Table(TableConfig config, uint64_t job_seed, uint64_t local_begin, uint64_t local_count);
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  const TableConfig& config() const { return config_; }
  bool sparse() const { return config_.sparse; }
  uint32_t width() const { return config_.sparse ? config_.dim : 1; }
  uint64_t local_begin() const { return local_begin_; }
  uint64_t local_count() const { return local_count_; }
  uint64_t step() const { return step_; }
  uint64_t num_rows() const { return keys_.size(); }

  // Bytes of weights and slots of one sparse row with its key and index entries, or of
  // the whole dense part.
  uint64_t RowBytes() const;
  uint64_t MemoryBytes() const;

  // Dense: OK when [begin, begin + count) lies in the local part; else OUT_OF_RANGE
  // naming `field`.
  absl::Status CheckDenseRange(uint64_t begin, uint64_t count, absl::string_view field) const;

  // Dense: appends the float32 bytes of [begin, begin + count) to `out`.
  void ReadDense(uint64_t begin, uint64_t count, std::string* out) const;
  // Dense: lends the bytes of [begin, begin + count) instead (server/dense_values.h),
  // appended to `out` with `at`.
  void LendDense(uint64_t begin, uint64_t count, size_t at, std::vector<LentBytes>* out) const;
  // Dense: writes that had to copy a lent block (of weights or slots) first.
  uint64_t copies_on_write() const;

  // Sparse: number of distinct keys in `keys` without a row yet. With `rows`, also the
  // row of each key (RowIndex::kNone: none yet), for ApplyRowsAt under the same lock.
  uint64_t CountMissing(absl::Span<const uint64_t> keys,
                        std::vector<uint64_t>* rows = nullptr) const;
  // Sparse: the row of each key (RowIndex::kNone: none yet), without counting.
  void FindRows(absl::Span<const uint64_t> keys, std::vector<uint64_t>* rows) const;
  // Sparse: `rows`, as CountMissing or FindRows gave them for `keys` at some earlier
  // time, made current: a row keeps its number while the table lives, so only the
  // kNone ones are looked up again.
  void FindMissingRows(absl::Span<const uint64_t> keys, std::vector<uint64_t>* rows) const;
  // Sparse: for each key of `keys`, whose rows CountMissing or FindRows gave, the index
  // of its first occurrence in `keys`; true when a key comes more than once. Not const:
  // it marks rows in a scratch bitmap (and clears them again). Fewer than 2^32 keys.
  bool FirstOccurrences(absl::Span<const uint64_t> keys, absl::Span<const uint64_t> rows,
                        std::vector<uint32_t>* first);
  // Sparse: creates the rows of missing keys.
  void CreateRows(absl::Span<const uint64_t> keys);
  // Sparse: appends the rows of `keys` to `out`; missing rows read as their initial
  // values without being created.
  void ReadRows(absl::Span<const uint64_t> keys, std::string* out) const;
  // Sparse: as ReadRows when every key has a row (one lookup per key); else false with
  // `out` unchanged.
  bool TryReadRows(absl::Span<const uint64_t> keys, std::string* out) const;

  // Starts one optimizer step (Adam's t).
  void BeginStep() { ++step_; }
  // Dense: one step of [begin, begin + n) with `grad` = n packed float32 at any
  // alignment (a received message's bytes, applied where they lie).
  void ApplyDense(uint64_t begin, const void* grad, size_t n);
  // Sparse: one step of the rows of `keys` (distinct; created if missing) with
  // `grad` = keys.size() * dim floats.
  void ApplyRows(absl::Span<const uint64_t> keys, absl::Span<const float> grad);
  // Sparse: as ApplyRows, with `rows` as CountMissing or FindRows gave them in the same
  // hold of the owner's exclusive lock, or made current by FindMissingRows in it (a
  // kNone row is looked up again, and created when missing).
  // `grad`: keys.size() * dim packed float32 at any alignment (a received message's
  // bytes, applied where they lie).
  void ApplyRowsAt(absl::Span<const uint64_t> keys, absl::Span<const uint64_t> rows,
                   const void* grad);

  // The state as bytes: weights, slots and step in a canonical order (sparse rows by
  // ascending key), and the reverse. LoadState replaces everything; DATA_LOSS when the
  // bytes do not fit this table's shape.
  std::string SaveState() const;
  // As SaveState, into `out` (replacing its contents, reusing its capacity). With
  // `lent`, a dense table's weights and slots are not copied: their blocks are lent
  // there, in order, all with `at` = the offset where the weights begin in `out`, whose
  // room for them is left as it was (when `out` had the state's size already; else
  // `out` ends after the header, and the caller makes the room); the caller copies them
  // there once it has released the job's lock (ShardJob::FillBorrowed), and a push
  // meanwhile copies the blocks it writes (server/dense_values.h). Sparse tables are
  // copied either way.
  void SaveStateInto(std::string* out, std::vector<LentBytes>* lent = nullptr) const;
  // The size of SaveState().
  uint64_t StateBytes() const;
  absl::Status LoadState(absl::string_view bytes);

  // FNV-1a over SaveState(): equal digests mean byte-equal state.
  uint64_t Digest() const;

 private:
  uint64_t RowOf(uint64_t key);  // Creates the row if missing.

  // Constant after construction.
  const TableConfig config_;
  const uint64_t seed_;
  const uint64_t local_begin_;
  const uint64_t local_count_;
  const int num_slots_;

  uint64_t step_ = 0;
  DenseValues dense_;  // Dense: the local_count weights.
  std::vector<DenseValues> dense_slots_;  // Dense: the optimizer's, as many floats each.
  // Sparse: rows * dim floats, row i for keys_[i], and as many in each slot.
  std::vector<float> weights_;
  std::vector<std::vector<float>> slots_;
  std::vector<uint64_t> keys_;                     // Sparse: key of each row.
  RowIndex index_;                                 // Sparse: key -> row.
  // Sparse: FirstOccurrences' bitmap, a bit per row, all clear between calls. Not in
  // MemoryBytes: 1 bit against RowBytes() (at least 8 + 32 + 4 bytes) per row.
  std::vector<uint64_t> marks_;
};

}  // namespace ps

#endif  // PS_SERVER_TABLE_H_
