// Fuzzes the shard's request validation: what ShardService does with CreateJob,
// CreateTable, Pull and Push requests from their parts (server/convert.h for the
// configs, ShardJob::TryPull / ShardJob::Push for the slices and values), on a real
// ShardJob with a memory budget, without gRPC.
//
// Input: byte 0 picks the job's consistency mode, worker count and NaN policy; then
// records of [op: 1 byte][length: 2 bytes little-endian][a binary proto of `length`
// bytes], op % 4: 0 ShardJobConfig (a valid one replaces the job), 1 TableSpec,
// 2 PullRequest, 3 PushRequest. The job starts with a dense table "w" (1000 elements)
// and a sparse table "emb" (dim 8).
//
// Checks: every rejection carries a code the service documents and a message that
// names the field; the memory budget is never exceeded; an accepted pull returns
// exactly 4 bytes per requested value. A push's values are cut into pieces of 1 to 7
// bytes (1 + part % 7), float32 or bfloat16 as its `encoding` says.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/lendable.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/shard.pb.h"
#include "server/convert.h"
#include "server/shard_job.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr uint64_t kBudgetBytes = uint64_t{16} << 20;

using absl::StatusCode;

bool Allowed(const absl::Status& s, std::initializer_list<StatusCode> codes) {
  for (StatusCode c : codes) {
    if (s.code() == c) return true;
  }
  return false;
}

std::vector<ps::SliceArgs> SlicesOf(const google::protobuf::RepeatedPtrField<ps::Slice>& slices) {
  std::vector<ps::SliceArgs> out;
  for (const ps::Slice& s : slices) out.push_back({s.table(), s.begin(), s.count(), s.keys()});
  return out;
}

ps::TableSpec Table(const char* name, bool sparse) {
  ps::TableSpec t;
  t.set_name(name);
  t.set_kind(sparse ? ps::TableSpec::SPARSE : ps::TableSpec::DENSE);
  if (sparse) {
    t.set_dim(8);
  } else {
    t.set_size(1000);
  }
  t.mutable_init()->set_kind(ps::Initializer::UNIFORM);
  t.mutable_init()->set_scale(0.1f);
  t.mutable_optimizer()->mutable_adam();
  t.mutable_optimizer()->set_learning_rate(0.01f);
  return t;
}

// A job with the two starting tables.
std::unique_ptr<ps::ShardJob> MakeJob(ps::JobConfig config, ps::MemoryBudget* budget) {
  auto job = std::make_unique<ps::ShardJob>(std::move(config), budget, nullptr);
  for (bool sparse : {false, true}) {
    absl::StatusOr<ps::TableConfig> t = ps::TableConfigFromProto(Table(sparse ? "emb" : "w", sparse));
    PS_FUZZ_CHECK(t.ok(), t.status().ToString());
    const absl::Status s = job->CreateTable(*std::move(t));
    // A config from the input may place the dense table so that this shard holds none of it.
    PS_FUZZ_CHECK(s.ok() || s.code() == StatusCode::kResourceExhausted, s.ToString());
  }
  return job;
}

void CheckBudget(const ps::MemoryBudget& budget) {
  PS_FUZZ_CHECK(budget.used() <= budget.limit(),
                absl::StrCat("budget used ", budget.used(), " of ", budget.limit()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Protobuf logs every string that is not UTF-8; that is expected here, and slow.
  static const bool quiet = (google::protobuf::SetLogHandler(nullptr), true);
  (void)quiet;
  if (size < 1) return 0;
  ps::MemoryBudget budget(kBudgetBytes);
  ps::ShardJobConfig start;
  start.set_job_id("job");
  start.mutable_consistency()->set_mode(static_cast<ps::Consistency>(1 + data[0] % 3));
  start.set_num_workers(1 + (data[0] >> 2) % 3);
  start.set_num_shards(1);
  start.set_nonfinite(data[0] & 0x80 ? ps::NONFINITE_ZERO : ps::NONFINITE_REJECT);
  absl::StatusOr<ps::JobConfig> config = ps::JobConfigFromProto(start);
  PS_FUZZ_CHECK(config.ok(), config.status().ToString());
  std::unique_ptr<ps::ShardJob> job = MakeJob(*std::move(config), &budget);

  size_t pos = 1;
  while (pos + 3 <= size) {
    const int op = data[pos] % 4;
    const size_t len = std::min<size_t>(data[pos + 1] | (size_t{data[pos + 2]} << 8), size - pos - 3);
    const std::string payload(reinterpret_cast<const char*>(data) + pos + 3, len);
    pos += 3 + len;
    switch (op) {
      case 0: {
        ps::ShardJobConfig p;
        if (!p.ParseFromString(payload)) break;
        absl::StatusOr<ps::JobConfig> c = ps::JobConfigFromProto(p);
        if (!c.ok()) {
          PS_FUZZ_CHECK(c.status().code() == StatusCode::kInvalidArgument, c.status().ToString());
          PS_FUZZ_CHECK(ps::fuzz::NamesField(c.status(), {"config."}), c.status().ToString());
          break;
        }
        PS_FUZZ_CHECK(ps::JobConfigFromBlob(c->config_blob).ok(), "a config's blob decodes");
        if (c->shard_id >= c->num_shards) break;
        job.reset();
        job = MakeJob(*std::move(c), &budget);
        break;
      }
      case 1: {
        ps::TableSpec spec;
        if (!spec.ParseFromString(payload)) break;
        absl::StatusOr<ps::TableConfig> t = ps::TableConfigFromProto(spec);
        if (!t.ok()) {
          PS_FUZZ_CHECK(t.status().code() == StatusCode::kInvalidArgument, t.status().ToString());
          PS_FUZZ_CHECK(ps::fuzz::NamesField(t.status(), {"table."}), t.status().ToString());
          break;
        }
        PS_FUZZ_CHECK(ps::TableConfigFromBlob(t->spec_blob).ok(), "a table's blob decodes");
        const absl::Status s = job->CreateTable(*std::move(t));
        if (!s.ok()) {
          PS_FUZZ_CHECK(Allowed(s, {StatusCode::kInvalidArgument, StatusCode::kFailedPrecondition,
                                    StatusCode::kResourceExhausted}),
                        s.ToString());
          PS_FUZZ_CHECK(ps::fuzz::NamesField(s, {"table"}), s.ToString());
        }
        break;
      }
      case 2: {
        ps::PullRequest req;
        if (!req.ParseFromString(payload)) break;
        const std::vector<ps::SliceArgs> slices = SlicesOf(req.slices());
        std::string out;
        uint64_t applied = 0, ticket = 0;
        absl::StatusOr<bool> r = job->TryPull(req.rank(), req.clock(), slices, req.no_wait(), &out,
                                              &applied, nullptr, &ticket);
        if (!r.ok()) {
          PS_FUZZ_CHECK(Allowed(r.status(), {StatusCode::kInvalidArgument, StatusCode::kNotFound,
                                             StatusCode::kOutOfRange, StatusCode::kResourceExhausted,
                                             StatusCode::kDeadlineExceeded}),
                        r.status().ToString());
          if (r.status().code() != StatusCode::kDeadlineExceeded) {
            PS_FUZZ_CHECK(ps::fuzz::NamesField(r.status(), {"rank", "slices"}), r.status().ToString());
          }
          break;
        }
        PS_FUZZ_CHECK(*r, "a pull without a wake-up either reads or fails");
        uint64_t floats = 0;
        for (const ps::Slice& s : req.slices()) {
          floats += s.table() == "w" || s.keys().empty() ? s.count() : s.keys().size() / 8 * 8;
        }
        // Only the two starting tables have a known width here.
        bool known = true;
        for (const ps::Slice& s : req.slices()) known = known && (s.table() == "w" || s.table() == "emb");
        if (known) PS_FUZZ_CHECK(out.size() == floats * 4, absl::StrCat(out.size(), " bytes for ", floats));
        // The same pull with its dense values lent (as the service sends them): the
        // copied bytes with the lent ranges inserted in order are the same bytes.
        std::string rows;
        std::vector<ps::LentBytes> lent;
        r = job->TryPull(req.rank(), req.clock(), slices, req.no_wait(), &rows, &applied, nullptr,
                         &ticket, &lent);
        PS_FUZZ_CHECK(r.ok() && *r, "a pull that just read reads again");
        const std::optional<std::string> joined = ps::JoinLent(rows, lent);
        PS_FUZZ_CHECK(joined.has_value(), "lent offsets in order");
        PS_FUZZ_CHECK(*joined == out, "lent and copied pulls read the same bytes");
        break;
      }
      case 3: {
        ps::PushRequest req;
        if (!req.ParseFromString(payload)) break;
        ps::PushArgs args;
        args.rank = req.rank();
        args.clock = req.clock();
        args.part = req.part();
        args.num_parts = req.num_parts();
        args.slices = SlicesOf(req.slices());
        absl::StatusOr<ps::ValueEncoding> encoding = ps::ValueEncodingFromProto(req.encoding());
        if (!encoding.ok()) {
          PS_FUZZ_CHECK(ps::fuzz::NamesField(encoding.status(), {"encoding"}),
                        encoding.status().ToString());
          break;
        }
        // The values cut into pieces of 1 to 7 bytes, as a message's slices may be, so
        // that values straddle pieces.
        const std::string& values = req.values();
        const size_t piece = 1 + req.part() % 7;
        std::vector<absl::string_view> pieces;
        for (size_t at = 0; at < values.size(); at += piece) {
          pieces.push_back(absl::string_view(values).substr(at, piece));
        }
        args.values = ps::PackedFloats(std::move(pieces), *encoding);
        absl::StatusOr<ps::PushResult> r = job->Push(args);
        if (!r.ok()) {
          PS_FUZZ_CHECK(Allowed(r.status(), {StatusCode::kInvalidArgument, StatusCode::kNotFound,
                                             StatusCode::kOutOfRange, StatusCode::kResourceExhausted,
                                             StatusCode::kFailedPrecondition}),
                        r.status().ToString());
          PS_FUZZ_CHECK(ps::fuzz::NamesField(r.status(), {"rank", "part", "num_parts", "slices",
                                                           "values", "clock"}),
                        r.status().ToString());
        }
        break;
      }
    }
    CheckBudget(budget);
  }
  job.reset();
  PS_FUZZ_CHECK(budget.used() == 0, absl::StrCat("budget leaks ", budget.used(), " bytes"));
  return 0;
}
