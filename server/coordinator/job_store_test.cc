#include "server/coordinator/job_store.h"

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace ps {
namespace {

std::string TestDir(const char* name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name);
}

TEST(JobStoreTest, WritesSurviveReopen) {
  const std::string dir = TestDir("store");
  {
    auto store = OpenRocksJobStore(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    auto empty = (*store)->Load();
    ASSERT_TRUE(empty.ok());
    EXPECT_EQ(empty->next_job_seq, 1u);
    EXPECT_TRUE(empty->jobs.empty());

    StoreUpdate u;
    for (uint64_t seq : {2, 1, 10}) {
      JobRecord rec;
      rec.set_seq(seq);
      rec.mutable_status()->set_job_id(absl::StrCat("job-", seq));
      rec.mutable_status()->set_state(RUNNING);
      u.jobs.push_back(rec);
    }
    ShardRecord shard;
    shard.set_shard_id(3);
    shard.set_incarnation(77);
    shard.set_address("127.0.0.1:5");
    u.shards.push_back(shard);
    u.next_job_seq = 11;
    u.boots = 4;
    ASSERT_TRUE((*store)->Write(u, /*sync=*/true).ok());
    StoreUpdate v;
    v.jobs.push_back(u.jobs[0]);
    v.jobs[0].mutable_status()->set_state(CANCELLED);
    ASSERT_TRUE((*store)->Write(v, /*sync=*/false).ok());
    // A second open of the same directory is refused while the first holds it.
    auto second = OpenRocksJobStore(dir);
    EXPECT_FALSE(second.ok());
  }
  auto store = OpenRocksJobStore(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  auto state = (*store)->Load();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->next_job_seq, 11u);
  EXPECT_EQ(state->boots, 4u);
  ASSERT_EQ(state->jobs.size(), 3u);
  EXPECT_EQ(state->jobs[0].seq(), 1u) << "sorted by seq, not by key";
  EXPECT_EQ(state->jobs[1].seq(), 2u);
  EXPECT_EQ(state->jobs[1].status().state(), CANCELLED);
  EXPECT_EQ(state->jobs[2].seq(), 10u);
  ASSERT_EQ(state->shards.size(), 1u);
  EXPECT_EQ(state->shards[0].incarnation(), 77u);
}

}  // namespace
}  // namespace ps
