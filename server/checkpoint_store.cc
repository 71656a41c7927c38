#include "server/checkpoint_store.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status.h"
#include "rocksdb/convenience.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/sst_file_writer.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"

// How a checkpoint reaches the disk, and why.
//
// The contract is one atomic, durable commit per checkpoint. Three ways to get it from
// RocksDB 7.8 were measured on this project's machine (2 cores, virtio ext4; 256 MiB of
// float32 in 4 MiB values, best of 3):
//   WriteBatch, WAL, sync=true               ~70-85 MB/s   bytes go to the WAL and the
//                                                          memtable, later to an SST
//   WriteBatch, disableWAL, then Flush()     ~85-95 MB/s   crash-safe only once the
//                                                          flush is done
//   SstFileWriter + IngestExternalFile       ~900-1100 MB/s  streamed, written once
// (see checkpoint_bench.h for the in-process comparison). A WriteBatch also holds a
// copy of the whole checkpoint in memory, and the memtable another, which multi-GB
// checkpoints cannot afford; without the WAL it is not crash-safe unless a Flush
// follows. So Write streams the checkpoint into ONE staging SST file (SstFileWriter
// syncs it on Finish) and ingests it: RocksDB hard-links it into the database, fsyncs
// it and the directory, and commits it with one synced MANIFEST record. A crash before
// that record leaves an unreferenced file (RocksDB deletes it on open; Open clears the
// staging folder). One file per checkpoint also makes it appear atomically to readers:
// all its keys carry one sequence number (files of one multi-file ingestion may get
// different ones, and a concurrent reader was seen to catch a manifest without its
// chunks that way).
//
// Keys, all under "c/" job '\0' clock(be64) =: K:
//   K                           manifest: chunk size, record names and sizes
//   K rec(be32) chunk(be32)     chunk payloads (records <= 0xfffffffe)
//   K ff ff ff ff ff ff ff ff   seal: XXH64 of each record, checked by Load
// When (job, clock) already exists, the file also carries a range tombstone over
// [K, K ff*9), so the old version loses every key in the same commit. K ff*9 sorts
// below the next clock's K, so the files of two checkpoints never touch: ingestion
// puts each new checkpoint's file straight into the bottom level (global seqno 0) and
// compaction does not rewrite checkpoint data. The manifest is the first key and sits
// in its own small block, so List seeks from manifest to manifest without reading
// chunks.
//
// Pruning and DeleteJob write a range tombstone through the WAL (synced), then drop the
// SST files that lie entirely inside the deleted range (DeleteFilesInRanges), so a
// pruned multi-GB checkpoint gives its space back at once instead of at some later
// compaction. That is safe because the durable tombstone still hides any older version
// of a key that a dropped file might have shadowed.
//
// Tuning: data stays out of the memtable, so write_buffer_size and the WAL do not
// matter for throughput. Compression is off: on normally distributed float32, LZ4,
// Snappy and ZSTD all miss RocksDB's 12.5% minimum gain (the blocks end up stored raw)
// and ZSTD still costs +50% write time. Block checksums are XXH3 (crc32c is ~2x slower
// in this build).

namespace ps {
namespace {

namespace fs = std::filesystem;

constexpr char kSpace[] = "c/";
constexpr uint32_t kManifestMagic = 0x4b435350;  // "PSCK" little-endian
constexpr uint32_t kSealMagic = 0x53435350;      // "PSCS"
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kSealRecordIndex = 0xffffffff;  // chunk keys never use it
constexpr size_t kMaxRecords = kSealRecordIndex;

// ---- XXH64 (the published algorithm; streaming) ----

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr uint64_t kP3 = 0x165667B19E3779F9ULL;
constexpr uint64_t kP4 = 0x85EBCA77C2B2AE63ULL;
constexpr uint64_t kP5 = 0x27D4EB2F165667C5ULL;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t XxRound(uint64_t acc, uint64_t input) {
  acc += input * kP2;
  acc = Rotl(acc, 31);
  return acc * kP1;
}
inline uint64_t XxMerge(uint64_t acc, uint64_t v) {
  acc ^= XxRound(0, v);
  return acc * kP1 + kP4;
}

// Streaming XXH64 with seed 0; equal to XXH64(all bytes, 0) however they are split.
class Xxh64 {
 public:
  Xxh64() : v_{kP1 + kP2, kP2, 0, 0 - kP1} {}

  void Update(const char* p, size_t n) {
    total_ += n;
    if (buffered_ + n < 32) {
      std::memcpy(buf_ + buffered_, p, n);
      buffered_ += n;
      return;
    }
    if (buffered_ > 0) {
      const size_t take = 32 - buffered_;
      std::memcpy(buf_ + buffered_, p, take);
      p += take;
      n -= take;
      Stripe(buf_);
      buffered_ = 0;
    }
    for (; n >= 32; p += 32, n -= 32) Stripe(p);
    std::memcpy(buf_, p, n);
    buffered_ = n;
  }

  uint64_t Digest() const {
    uint64_t h;
    if (total_ >= 32) {
      h = Rotl(v_[0], 1) + Rotl(v_[1], 7) + Rotl(v_[2], 12) + Rotl(v_[3], 18);
      for (uint64_t v : v_) h = XxMerge(h, v);
    } else {
      h = kP5;
    }
    h += total_;
    const char* p = buf_;
    size_t n = buffered_;
    for (; n >= 8; p += 8, n -= 8) {
      h ^= XxRound(0, Load64(p));
      h = Rotl(h, 27) * kP1 + kP4;
    }
    if (n >= 4) {
      h ^= uint64_t{Load32(p)} * kP1;
      h = Rotl(h, 23) * kP2 + kP3;
      p += 4;
      n -= 4;
    }
    for (; n > 0; ++p, --n) {
      h ^= uint64_t{static_cast<unsigned char>(*p)} * kP5;
      h = Rotl(h, 11) * kP1;
    }
    h ^= h >> 33;
    h *= kP2;
    h ^= h >> 29;
    h *= kP3;
    h ^= h >> 32;
    return h;
  }

 private:
  void Stripe(const char* p) {
    for (int i = 0; i < 4; ++i) v_[i] = XxRound(v_[i], Load64(p + 8 * i));
  }

  uint64_t v_[4];
  char buf_[32];
  size_t buffered_ = 0;
  uint64_t total_ = 0;
};

// ---- keys ----

void PutBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}
void PutBigEndian32(uint32_t v, std::string* out) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>(v >> shift));
}
uint64_t GetBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// "c/" job '\0': every key of the job starts with it.
std::string JobPrefix(absl::string_view job) {
  return absl::StrCat(kSpace, job, absl::string_view("\0", 1));
}
// "c/" job '\1': the first key after all of the job's (job ids hold no byte < '-').
std::string JobEnd(absl::string_view job) { return absl::StrCat(kSpace, job, "\x01"); }
// K, the manifest key.
std::string CheckpointKey(absl::string_view job, uint64_t clock) {
  std::string key = JobPrefix(job);
  PutBigEndian64(clock, &key);
  return key;
}
// Exclusive end of the checkpoint's keys: above the seal, below the next clock's K.
std::string CheckpointEnd(absl::string_view job, uint64_t clock) {
  return CheckpointKey(job, clock) + std::string(9, '\xff');
}
std::string ChunkKey(absl::string_view job, uint64_t clock, uint32_t record,
                     uint32_t chunk) {
  std::string key = CheckpointKey(job, clock);
  PutBigEndian32(record, &key);
  PutBigEndian32(chunk, &key);
  return key;
}
std::string SealKey(absl::string_view job, uint64_t clock) {
  return ChunkKey(job, clock, kSealRecordIndex, 0xffffffff);
}

// ---- manifest and seal ----

struct RecordMeta {
  std::string name;
  uint64_t size = 0;
};

struct Manifest {
  uint32_t chunk_bytes = 0;
  std::vector<RecordMeta> records;
};

void PutFixed32(uint32_t v, std::string* out) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian host (as everywhere in the project)
  out->append(b, 4);
}
void PutFixed64(uint64_t v, std::string* out) {
  char b[8];
  std::memcpy(b, &v, 8);
  out->append(b, 8);
}

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool U32(uint32_t* v) { return Take(4, [&](const char* p) { *v = Load32(p); }); }
  bool U64(uint64_t* v) { return Take(8, [&](const char* p) { *v = Load64(p); }); }
  bool Bytes(size_t n, std::string* s) {
    return Take(n, [&](const char* p) { s->assign(p, n); });
  }
  size_t left() const { return in_.size(); }

 private:
  template <typename F>
  bool Take(size_t n, F f) {
    if (in_.size() < n) return false;
    f(in_.data());
    in_.remove_prefix(n);
    return true;
  }
  absl::string_view in_;
};

// Appends the XXH64 of everything in `out` (each blob checks itself).
void Seal(std::string* out) { PutFixed64(CheckpointChecksum(*out), out); }

// Returns the body of a self-checked blob, or DATA_LOSS.
absl::StatusOr<absl::string_view> Unseal(rocksdb::Slice in, absl::string_view what,
                                         uint64_t clock) {
  if (in.size() < 8) {
    return absl::DataLossError(absl::StrCat("corrupt checkpoint ", what, " (clock ",
                                            clock, "): too short"));
  }
  const absl::string_view body(in.data(), in.size() - 8);
  if (CheckpointChecksum(body) != Load64(in.data() + body.size())) {
    return absl::DataLossError(absl::StrCat("corrupt checkpoint ", what, " (clock ",
                                            clock, "): checksum mismatch"));
  }
  return body;
}

// magic u32, version u32, clock u64, chunk_bytes u32, n u32,
// n x (name_len u32, name, size u64), xxh64 of the preceding bytes.
std::string EncodeManifest(uint64_t clock, const Manifest& m) {
  std::string out;
  PutFixed32(kManifestMagic, &out);
  PutFixed32(kFormatVersion, &out);
  PutFixed64(clock, &out);
  PutFixed32(m.chunk_bytes, &out);
  PutFixed32(static_cast<uint32_t>(m.records.size()), &out);
  for (const RecordMeta& r : m.records) {
    PutFixed32(static_cast<uint32_t>(r.name.size()), &out);
    out += r.name;
    PutFixed64(r.size, &out);
  }
  Seal(&out);
  return out;
}

absl::StatusOr<Manifest> DecodeManifest(rocksdb::Slice in, uint64_t clock) {
  PS_ASSIGN_OR_RETURN(const absl::string_view body, Unseal(in, "manifest", clock));
  auto bad = [&](absl::string_view what) {
    return absl::DataLossError(
        absl::StrCat("corrupt checkpoint manifest (clock ", clock, "): ", what));
  };
  Reader r(body);
  uint32_t magic = 0, version = 0, n = 0;
  uint64_t stored_clock = 0;
  Manifest m;
  if (!r.U32(&magic) || magic != kManifestMagic) return bad("bad magic");
  if (!r.U32(&version) || version != kFormatVersion) return bad("unknown version");
  if (!r.U64(&stored_clock) || stored_clock != clock) return bad("clock mismatch");
  if (!r.U32(&m.chunk_bytes) || m.chunk_bytes == 0) return bad("bad chunk size");
  if (!r.U32(&n) || n > r.left() / 12) return bad("bad record count");
  m.records.resize(n);
  for (RecordMeta& rec : m.records) {
    uint32_t name_len = 0;
    if (!r.U32(&name_len) || !r.Bytes(name_len, &rec.name) || !r.U64(&rec.size)) {
      return bad("truncated record entry");
    }
  }
  if (r.left() != 0) return bad("trailing bytes");
  return m;
}

// magic u32, clock u64, n u32, n x xxh64 u64, xxh64 of the preceding bytes.
std::string EncodeSeal(uint64_t clock, const std::vector<uint64_t>& checksums) {
  std::string out;
  PutFixed32(kSealMagic, &out);
  PutFixed64(clock, &out);
  PutFixed32(static_cast<uint32_t>(checksums.size()), &out);
  for (uint64_t c : checksums) PutFixed64(c, &out);
  Seal(&out);
  return out;
}

absl::StatusOr<std::vector<uint64_t>> DecodeSeal(rocksdb::Slice in, uint64_t clock,
                                                 size_t records) {
  PS_ASSIGN_OR_RETURN(const absl::string_view body, Unseal(in, "seal", clock));
  Reader r(body);
  uint32_t magic = 0, n = 0;
  uint64_t stored_clock = 0;
  if (!r.U32(&magic) || magic != kSealMagic || !r.U64(&stored_clock) ||
      stored_clock != clock || !r.U32(&n) || n != records || r.left() != 8 * records) {
    return absl::DataLossError(
        absl::StrCat("corrupt checkpoint seal (clock ", clock, ")"));
  }
  std::vector<uint64_t> checksums(n);
  for (uint64_t& c : checksums) r.U64(&c);
  return checksums;
}

// ---- helpers ----

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(context, ": ", s.ToString());
  if (s.IsNotFound()) return absl::NotFoundError(msg);
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  if (s.IsInvalidArgument()) return absl::InvalidArgumentError(msg);
  if (s.IsIOError() || s.IsBusy() || s.IsTryAgain() || s.IsTimedOut() ||
      s.IsShutdownInProgress() || s.IsAborted()) {
    return absl::UnavailableError(msg);
  }
  return absl::InternalError(msg);
}

absl::Status ValidateJob(absl::string_view job) {
  if (job.empty() || job.size() > CheckpointStore::kMaxJobIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("job id must have 1 to ", CheckpointStore::kMaxJobIdBytes,
                     " characters, got ", job.size()));
  }
  for (char c : job) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("job id '", absl::CHexEscape(job),
                       "' has a character outside [A-Za-z0-9_.-]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRecords(const std::vector<CheckpointRecord>& records) {
  if (records.size() > kMaxRecords) return absl::InvalidArgumentError("too many records");
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string& name = records[i].name;
    if (name.size() > CheckpointStore::kMaxRecordNameBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("record ", i, ": name longer than ",
                       CheckpointStore::kMaxRecordNameBytes, " bytes"));
    }
    if (name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("record ", i, ": name holds a NUL"));
    }
  }
  return absl::OkStatus();
}

uint64_t NumChunks(uint64_t size, uint32_t chunk_bytes) {
  return (size + chunk_bytes - 1) / chunk_bytes;
}

// Reserves `n` bytes in `s` and, for big buffers, asks for transparent huge pages:
// filling a fresh multi-GB buffer costs one page fault per 4 KiB otherwise, which
// dominated Load on the project's VMs (256 MiB: ~0.7 s of faults vs ~0.1 s with THP).
// Advisory only; errors are ignored.
void ReserveForFill(std::string* s, size_t n) {
  s->reserve(n);
#ifdef MADV_HUGEPAGE
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  if (n < 2 * kHuge) return;
  const uintptr_t p = reinterpret_cast<uintptr_t>(s->data());
  const uintptr_t begin = (p + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (p + n) & ~(kHuge - 1);
  if (end > begin) {
    (void)madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
  }
#endif
}

// Removes a staging file when it goes out of scope. After a successful ingestion
// RocksDB has already unlinked it.
class StagingFile {
 public:
  explicit StagingFile(std::string path) : path_(std::move(path)) {}
  ~StagingFile() {
    std::error_code ec;
    fs::remove(path_, ec);  // best effort: Open clears the folder anyway
  }
  StagingFile(const StagingFile&) = delete;
  StagingFile& operator=(const StagingFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  const std::string path_;
};

std::unique_ptr<rocksdb::Options> MakeDbOptions() {
  auto o = std::make_unique<rocksdb::Options>();
  o->create_if_missing = true;
  o->compression = rocksdb::kNoCompression;
  o->bottommost_compression = rocksdb::kDisableCompressionOption;
  // Only tombstones (and test writes) go through the memtable.
  o->write_buffer_size = 16 << 20;
  o->keep_log_file_num = 4;
  o->max_log_file_size = 8 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.checksum = rocksdb::kXXH3;
  o->table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

absl::string_view ToView(rocksdb::Slice s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

uint64_t CheckpointChecksum(absl::string_view bytes) {
  Xxh64 h;
  h.Update(bytes.data(), bytes.size());
  return h.Digest();
}

// ---- CheckpointStore ----

absl::StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(
    const Options& options) {
  if (options.dir.empty()) return absl::InvalidArgumentError("checkpoint dir is empty");
  if (options.chunk_bytes < kMinChunkBytes || options.chunk_bytes > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat("chunk_bytes must be in [",
                                                   kMinChunkBytes, ", ", kMaxChunkBytes,
                                                   "], got ", options.chunk_bytes));
  }
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("create checkpoint dir ", options.dir, ": ", ec.message()));
  }
  std::unique_ptr<rocksdb::Options> db_options = MakeDbOptions();
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(*db_options, options.dir, &raw);
  if (!s.ok()) {
    if (s.IsIOError() && s.ToString().find("LOCK") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "checkpoint dir ", options.dir, " is in use by another store: ", s.ToString()));
    }
    return FromRocks(s, absl::StrCat("open checkpoint store ", options.dir));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  // We hold the LOCK now, so no other store is writing staging files here.
  const std::string staging = options.dir + "/staging";
  fs::remove_all(staging, ec);
  if (!ec) fs::create_directory(staging, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("reset staging dir ", staging, ": ", ec.message()));
  }
  return std::unique_ptr<CheckpointStore>(
      new CheckpointStore(options, std::move(db_options), std::move(db)));
}

CheckpointStore::CheckpointStore(const Options& options,
                                 std::unique_ptr<rocksdb::Options> db_options,
                                 std::unique_ptr<rocksdb::DB> db)
    : options_(options),
      staging_dir_(options.dir + "/staging"),
      db_options_(std::move(db_options)),
      db_(std::move(db)) {}

CheckpointStore::~CheckpointStore() {
  const rocksdb::Status s = db_->Close();
  if (!s.ok()) {
    PS_LOG(WARNING) << "closing checkpoint store " << options_.dir << ": " << s.ToString();
  }
}

std::mutex* CheckpointStore::JobMutex(absl::string_view job) {
  std::lock_guard<std::mutex> lock(jobs_mu_);
  std::unique_ptr<std::mutex>& mu = job_mu_[job];
  if (mu == nullptr) mu = std::make_unique<std::mutex>();
  return mu.get();
}

absl::StatusOr<uint64_t> CheckpointStore::Write(absl::string_view job, uint64_t clock,
                                                const std::vector<CheckpointRecord>& records,
                                                uint32_t keep,
                                                std::optional<uint64_t> keep_from) {
  PS_RETURN_IF_ERROR(ValidateJob(job));
  PS_RETURN_IF_ERROR(ValidateRecords(records));
  if (keep == 0) return absl::InvalidArgumentError("keep must be at least 1");

  std::lock_guard<std::mutex> job_lock(*JobMutex(job));
  const StagingFile staging(absl::StrCat(staging_dir_, "/", job, ".", clock, ".",
                                         next_staging_id_.fetch_add(1), ".sst"));
  const uint32_t chunk_bytes = options_.chunk_bytes;
  Manifest manifest;
  manifest.chunk_bytes = chunk_bytes;
  for (const CheckpointRecord& r : records) manifest.records.push_back({r.name, r.bytes.size()});

  // Keys must be added in order: the manifest, the chunks, the seal. When (job, clock)
  // exists, a tombstone drops every key of the old version in the same commit (only
  // then: a file with deletions may later be rewritten by a bottommost compaction).
  // The job lock keeps other writers of the job out between this check and the commit.
  PS_ASSIGN_OR_RETURN(const bool replacing, HasKeysInRange(CheckpointKey(job, clock),
                                                           CheckpointEnd(job, clock)));
  rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), *db_options_);
  PS_RETURN_IF_ERROR(FromRocks(writer.Open(staging.path()), "open staging file"));
  if (replacing) {
    PS_RETURN_IF_ERROR(FromRocks(
        writer.DeleteRange(CheckpointKey(job, clock), CheckpointEnd(job, clock)),
        "stage tombstone"));
  }
  PS_RETURN_IF_ERROR(FromRocks(
      writer.Put(CheckpointKey(job, clock), EncodeManifest(clock, manifest)),
      "stage manifest"));
  std::vector<uint64_t> checksums(records.size());
  uint64_t payload = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string& bytes = records[i].bytes;
    const uint64_t chunks = NumChunks(bytes.size(), chunk_bytes);
    if (chunks > UINT32_MAX) return absl::InvalidArgumentError("record too large");
    Xxh64 hash;
    for (uint64_t c = 0; c < chunks; ++c) {
      const size_t offset = c * chunk_bytes;
      const size_t len = std::min<size_t>(chunk_bytes, bytes.size() - offset);
      hash.Update(bytes.data() + offset, len);
      PS_RETURN_IF_ERROR(FromRocks(
          writer.Put(ChunkKey(job, clock, static_cast<uint32_t>(i), static_cast<uint32_t>(c)),
                     rocksdb::Slice(bytes.data() + offset, len)),
          "stage chunk"));
    }
    checksums[i] = hash.Digest();
    payload += bytes.size();
  }
  PS_RETURN_IF_ERROR(FromRocks(
      writer.Put(SealKey(job, clock), EncodeSeal(clock, checksums)), "stage seal"));
  PS_RETURN_IF_ERROR(FromRocks(writer.Finish(), "finish staging file"));

  // The commit: one synced ingestion of one file.
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  ingest.write_global_seqno = false;  // no in-place rewrite of the ingested file
  PS_RETURN_IF_ERROR(FromRocks(db_->IngestExternalFile({staging.path()}, ingest),
                               absl::StrCat("commit checkpoint ", job, "@", clock)));

  PS_RETURN_IF_ERROR(Annotate(
      Prune(job, keep, keep_from),
      absl::StrCat("checkpoint ", job, "@", clock, " committed, pruning failed")));
  return payload;
}

absl::StatusOr<bool> CheckpointStore::HasKeysInRange(const std::string& begin,
                                                     const std::string& end) {
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  it->Seek(begin);  // lands on a manifest: a small block
  PS_RETURN_IF_ERROR(FromRocks(it->status(), "look up checkpoint"));
  return it->Valid();
}

absl::Status CheckpointStore::Prune(absl::string_view job, uint32_t keep,
                                    std::optional<uint64_t> keep_from) {
  PS_ASSIGN_OR_RETURN(std::vector<uint64_t> clocks, List(job));
  if (clocks.size() <= keep) return absl::OkStatus();
  uint64_t first_kept = clocks[clocks.size() - keep];
  if (keep_from.has_value()) first_kept = std::min(first_kept, *keep_from);
  if (clocks.front() >= first_kept) return absl::OkStatus();
  return DeleteRange(JobPrefix(job), CheckpointKey(job, first_kept));
}

absl::Status CheckpointStore::DeleteNewer(absl::string_view job, uint64_t clock) {
  PS_RETURN_IF_ERROR(ValidateJob(job));
  std::lock_guard<std::mutex> job_lock(*JobMutex(job));
  PS_ASSIGN_OR_RETURN(std::vector<uint64_t> clocks, List(job));
  if (clocks.empty() || clocks.back() <= clock) return absl::OkStatus();
  return DeleteRange(CheckpointEnd(job, clock), JobEnd(job));
}

absl::Status CheckpointStore::DeleteRange(const std::string& begin, const std::string& end) {
  rocksdb::WriteBatch batch;
  PS_RETURN_IF_ERROR(FromRocks(batch.DeleteRange(begin, end), "delete range"));
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  {
    std::lock_guard<std::mutex> lock(wal_mu_);
    PS_RETURN_IF_ERROR(FromRocks(db_->Write(write, &batch), "delete checkpoints"));
  }

  // Reclaim the space now. Files that merely overlap the range stay until compaction.
  const rocksdb::Slice b(begin), e(end);
  const rocksdb::Status s = rocksdb::DeleteFilesInRange(
      db_.get(), db_->DefaultColumnFamily(), &b, &e, /*include_end=*/false);
  if (!s.ok()) {
    // The deletion is already durable; only the space comes back later.
    PS_LOG(WARNING) << "checkpoint store " << options_.dir
                    << ": dropping deleted files failed: " << s.ToString();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint64_t>> CheckpointStore::List(absl::string_view job) {
  PS_RETURN_IF_ERROR(ValidateJob(job));
  const std::string prefix = JobPrefix(job);
  const std::string end = JobEnd(job);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  std::vector<uint64_t> clocks;
  it->Seek(prefix);
  while (it->Valid()) {
    const rocksdb::Slice key = it->key();
    if (key.size() < prefix.size() + 8) {  // not a key this store writes
      it->Next();
      continue;
    }
    const uint64_t clock = GetBigEndian64(key.data() + prefix.size());
    if (key.size() != prefix.size() + 8) {
      PS_LOG(WARNING) << "checkpoint store " << options_.dir << ": " << job << "@" << clock
                      << " has chunks but no manifest";
    } else if (const absl::StatusOr<Manifest> m = DecodeManifest(it->value(), clock);
               !m.ok()) {
      PS_LOG(WARNING) << "checkpoint store " << options_.dir << ": skipping " << job << "@"
                      << clock << ": " << m.status();
    } else {
      clocks.push_back(clock);
    }
    if (clock == UINT64_MAX) break;
    it->Seek(CheckpointKey(job, clock + 1));  // jump over the chunks to the next manifest
  }
  PS_RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("list checkpoints of ", job)));
  return clocks;
}

absl::StatusOr<std::vector<CheckpointRecord>> CheckpointStore::Load(absl::string_view job,
                                                                    uint64_t clock) {
  PS_RETURN_IF_ERROR(ValidateJob(job));
  const std::string where = absl::StrCat("checkpoint ", job, "@", clock);
  // One iterator reads the whole checkpoint from one pinned version of the database,
  // so a concurrent prune or replace cannot mix versions or take files away.
  rocksdb::ReadOptions read;
  read.fill_cache = false;  // a restore reads each block once
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  auto lost = [&](const std::string& what) -> absl::Status {
    PS_RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("load ", where)));
    return absl::DataLossError(absl::StrCat(where, ": ", what));
  };

  const std::string manifest_key = CheckpointKey(job, clock);
  it->Seek(manifest_key);
  if (!it->Valid() || it->key() != rocksdb::Slice(manifest_key)) {
    PS_RETURN_IF_ERROR(FromRocks(it->status(), absl::StrCat("load ", where)));
    return absl::NotFoundError(absl::StrCat(where, " not found"));
  }
  PS_ASSIGN_OR_RETURN(const Manifest manifest, DecodeManifest(it->value(), clock));

  // The keys follow in order: step exactly chunk by chunk.
  std::vector<CheckpointRecord> out(manifest.records.size());
  std::vector<uint64_t> checksums(manifest.records.size());
  for (size_t i = 0; i < manifest.records.size(); ++i) {
    const RecordMeta& meta = manifest.records[i];
    CheckpointRecord& rec = out[i];
    rec.name = meta.name;
    ReserveForFill(&rec.bytes, meta.size);
    const uint64_t chunks = NumChunks(meta.size, manifest.chunk_bytes);
    Xxh64 hash;
    for (uint64_t c = 0; c < chunks; ++c) {
      it->Next();
      if (!it->Valid() || it->key() != ChunkKey(job, clock, static_cast<uint32_t>(i),
                                                 static_cast<uint32_t>(c))) {
        return lost(absl::StrCat("record ", i, " ('", absl::CHexEscape(meta.name),
                                 "') is missing chunk ", c));
      }
      const rocksdb::Slice value = it->value();
      const uint64_t expected =
          std::min<uint64_t>(manifest.chunk_bytes, meta.size - c * manifest.chunk_bytes);
      if (value.size() != expected) {
        return lost(absl::StrCat("record ", i, " chunk ", c, " has ", value.size(),
                                 " bytes, expected ", expected));
      }
      hash.Update(value.data(), value.size());
      rec.bytes.append(value.data(), value.size());
    }
    checksums[i] = hash.Digest();
  }
  it->Next();
  if (!it->Valid() || it->key() != SealKey(job, clock)) {
    return lost("the seal (record checksums) is missing");
  }
  PS_ASSIGN_OR_RETURN(const std::vector<uint64_t> expected,
                      DecodeSeal(it->value(), clock, out.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (checksums[i] != expected[i]) {
      return absl::DataLossError(absl::StrCat(where, ": record ", i, " ('",
                                              absl::CHexEscape(out[i].name),
                                              "') fails its checksum"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> CheckpointStore::ListJobs() {
  const std::string space = kSpace;
  const std::string end = "c0";  // '/' + 1
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  std::vector<std::string> jobs;
  it->Seek(space);
  while (it->Valid()) {
    const absl::string_view key = ToView(it->key());
    const size_t nul = key.find('\0', space.size());
    if (nul == absl::string_view::npos) {  // not a key this store writes
      it->Next();
      continue;
    }
    const std::string job(key.substr(space.size(), nul - space.size()));
    if (ValidateJob(job).ok()) {
      PS_ASSIGN_OR_RETURN(const std::vector<uint64_t> clocks, List(job));
      if (!clocks.empty()) jobs.push_back(job);
    }
    it->Seek(JobEnd(job));  // on to the next job
  }
  PS_RETURN_IF_ERROR(FromRocks(it->status(), "list jobs"));
  return jobs;
}

absl::Status CheckpointStore::DeleteJob(absl::string_view job) {
  PS_RETURN_IF_ERROR(ValidateJob(job));
  std::lock_guard<std::mutex> job_lock(*JobMutex(job));
  return Annotate(DeleteRange(JobPrefix(job), JobEnd(job)), absl::StrCat("delete job ", job));
}

absl::Status CheckpointStore::CorruptChunkForTest(absl::string_view job, uint64_t clock,
                                                  uint32_t record, uint32_t chunk) {
  const std::string key = ChunkKey(job, clock, record, chunk);
  std::string value;
  PS_RETURN_IF_ERROR(FromRocks(db_->Get(rocksdb::ReadOptions(), key, &value), "get chunk"));
  if (value.empty()) return absl::FailedPreconditionError("empty chunk");
  value[value.size() / 2] ^= 0x01;
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  std::lock_guard<std::mutex> lock(wal_mu_);
  return FromRocks(db_->Put(write, key, value), "put chunk");
}

absl::Status CheckpointStore::DeleteChunkForTest(absl::string_view job, uint64_t clock,
                                                 uint32_t record, uint32_t chunk) {
  rocksdb::WriteOptions write;
  write.sync = options_.sync;
  std::lock_guard<std::mutex> lock(wal_mu_);
  return FromRocks(db_->Delete(write, ChunkKey(job, clock, record, chunk)), "delete chunk");
}

absl::StatusOr<uint64_t> CheckpointStore::CountKeysForTest(absl::string_view job,
                                                           uint64_t clock) {
  const std::string end = CheckpointEnd(job, clock);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  uint64_t n = 0;
  for (it->Seek(CheckpointKey(job, clock)); it->Valid(); it->Next()) ++n;
  PS_RETURN_IF_ERROR(FromRocks(it->status(), "count keys"));
  return n;
}

}  // namespace ps
