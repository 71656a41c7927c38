#include "server/coordinator/job_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"

namespace ps {
namespace {

constexpr char kNextJobSeqKey[] = "meta/next_job_seq";
constexpr char kBootsKey[] = "meta/boots";
constexpr char kJobPrefix[] = "job/";
constexpr char kShardPrefix[] = "shard/";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", s.ToString()));
}

std::string ShardKey(uint32_t shard_id) {
  return absl::StrFormat("%s%05u", kShardPrefix, shard_id);
}

class RocksJobStore final : public JobStore {
 public:
  explicit RocksJobStore(std::unique_ptr<rocksdb::DB> db) : db_(std::move(db)) {}
  RocksJobStore(const RocksJobStore&) = delete;
  RocksJobStore& operator=(const RocksJobStore&) = delete;

  absl::StatusOr<StoredState> Load() override {
    StoredState state;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string key = it->key().ToString();
      const rocksdb::Slice value = it->value();
      if (key == kNextJobSeqKey || key == kBootsKey) {
        uint64_t n = 0;
        if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()), &n)) {
          return absl::DataLossError(absl::StrCat("coordinator store: bad ", key));
        }
        (key == kNextJobSeqKey ? state.next_job_seq : state.boots) = n;
      } else if (absl::StartsWith(key, kJobPrefix)) {
        JobRecord rec;
        if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return absl::DataLossError(absl::StrCat("coordinator store: bad record ", key));
        }
        state.jobs.push_back(std::move(rec));
      } else if (absl::StartsWith(key, kShardPrefix)) {
        ShardRecord rec;
        if (!rec.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return absl::DataLossError(absl::StrCat("coordinator store: bad record ", key));
        }
        state.shards.push_back(std::move(rec));
      }
    }
    if (!it->status().ok()) return FromRocks(it->status(), "coordinator store: scan");
    std::sort(state.jobs.begin(), state.jobs.end(),
              [](const JobRecord& a, const JobRecord& b) { return a.seq() < b.seq(); });
    return state;
  }

  absl::Status Write(const StoreUpdate& update, bool sync) override {
    rocksdb::WriteBatch batch;
    std::string buf;
    for (const JobRecord& rec : update.jobs) {
      rec.SerializeToString(&buf);
      if (auto s = batch.Put(absl::StrCat(kJobPrefix, rec.status().job_id()), buf);
          !s.ok()) {
        return FromRocks(s, "coordinator store: batch");
      }
    }
    for (const ShardRecord& rec : update.shards) {
      rec.SerializeToString(&buf);
      if (auto s = batch.Put(ShardKey(rec.shard_id()), buf); !s.ok()) {
        return FromRocks(s, "coordinator store: batch");
      }
    }
    if (update.next_job_seq) {
      if (auto s = batch.Put(kNextJobSeqKey, absl::StrCat(*update.next_job_seq)); !s.ok()) {
        return FromRocks(s, "coordinator store: batch");
      }
    }
    if (update.boots) {
      if (auto s = batch.Put(kBootsKey, absl::StrCat(*update.boots)); !s.ok()) {
        return FromRocks(s, "coordinator store: batch");
      }
    }
    rocksdb::WriteOptions options;
    options.sync = sync;
    return FromRocks(db_->Write(options, &batch), "coordinator store: write");
  }

 private:
  const std::unique_ptr<rocksdb::DB> db_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<JobStore>> OpenRocksJobStore(const std::string& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  options.keep_log_file_num = 4;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open the coordinator store in --data_dir ", dir, ": ",
                     s.ToString()));
  }
  return std::unique_ptr<JobStore>(new RocksJobStore(std::unique_ptr<rocksdb::DB>(raw)));
}

}  // namespace ps
