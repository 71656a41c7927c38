#include "client/format.h"

#include <string>

#include "gtest/gtest.h"

namespace ps {
namespace {

JobStatus Sample() {
  JobStatus s;
  s.set_job_id("job-000007");
  s.mutable_spec()->set_name("fashion \"mnist\"\n");
  s.mutable_spec()->set_num_workers(2);
  s.mutable_spec()->set_epochs(3);
  s.mutable_spec()->set_target_accuracy(0.8f);
  s.set_state(RUNNING);
  s.set_reason("running");
  s.set_clock(50);
  s.set_total_clocks(200);
  s.set_epoch(1);
  s.set_loss(0.25);
  s.set_samples_per_s(1000);
  s.set_submit_time_ms(1000);
  s.set_start_time_ms(2000);
  return s;
}

TEST(FormatTest, JsonHasStableKeysAndEscapes) {
  JobStatus s = Sample();
  EXPECT_EQ(JobStatusJson(s),
            "{\"job_id\":\"job-000007\",\"name\":\"fashion \\\"mnist\\\"\\n\","
            "\"state\":\"RUNNING\",\"reason\":\"running\",\"num_workers\":2,\"epochs\":3,"
            "\"epoch\":1,\"clock\":50,\"total_clocks\":200,\"loss\":0.25,"
            "\"samples_per_s\":1000,\"eval\":null,\"target_accuracy\":0.8,"
            "\"complete_checkpoint\":0,\"recoveries\":0,\"submit_time_ms\":1000,"
            "\"start_time_ms\":2000,\"end_time_ms\":0,\"clocks_redone\":0,"
            "\"last_recovery_ms\":0}");
  s.mutable_eval()->set_accuracy(0.5);
  s.mutable_eval()->set_examples(10);
  s.set_loss(std::numeric_limits<double>::quiet_NaN());
  const std::string j = JobStatusJson(s);
  EXPECT_NE(j.find("\"eval\":{\"examples\":10,\"loss\":0,\"accuracy\":0.5,\"auc\":0}"),
            std::string::npos)
      << j;
  EXPECT_NE(j.find("\"loss\":null"), std::string::npos) << j;
}

TEST(FormatTest, ExitCodes) {
  EXPECT_EQ(ExitCodeForStatus(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeForStatus(absl::NotFoundError("x")), 6);
  EXPECT_EQ(ExitCodeForStatus(absl::UnavailableError("x")), 2);
  EXPECT_EQ(ExitCodeForState(SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForState(FAILED), 3);
  EXPECT_EQ(ExitCodeForState(CANCELLED), 4);
}

TEST(FormatTest, Durations) {
  EXPECT_EQ(FormatDuration(42500), "42s");
  EXPECT_EQ(FormatDuration(245000), "4m05s");
  EXPECT_EQ(FormatDuration(3723000), "1h02m03s");
  EXPECT_EQ(FormatDuration(-1), "-");
}

TEST(FormatTest, ProgressLineShowsEtaOnceSpeedIsKnown) {
  JobStatus s = Sample();
  ProgressMeter meter;
  meter.Update(s, 10000);
  EXPECT_NE(meter.Line(s).find("ETA ?"), std::string::npos) << meter.Line(s);
  s.set_clock(100);  // 50 clocks in 5 s: 100 left take 10 s.
  meter.Update(s, 15000);
  const std::string line = meter.Line(s);
  EXPECT_NE(line.find("ETA 10s"), std::string::npos) << line;
  EXPECT_NE(line.find("clock 100/200"), std::string::npos) << line;
  EXPECT_NE(line.find(" 50%"), std::string::npos) << line;
  EXPECT_NE(line.find("[############............]"), std::string::npos) << line;
}

TEST(FormatTest, TablesAndSummary) {
  JobStatus s = Sample();
  const std::string table = JobsTable({s}, 61000);
  EXPECT_NE(table.find("ID"), std::string::npos);
  EXPECT_NE(table.find("job-000007  RUNNING"), std::string::npos) << table;
  EXPECT_NE(table.find("1m00s"), std::string::npos) << table;

  GetClusterResponse c;
  c.set_num_shards(2);
  Member* m = c.add_members();
  m->set_role(SHARD);
  m->set_shard_id(1);
  m->set_member_id("shard-1.1");
  m->set_address("127.0.0.1:5");
  m->set_healthy(true);
  const std::string ct = ClusterTable(c, 0);
  EXPECT_NE(ct.find("healthy"), std::string::npos) << ct;
  EXPECT_NE(ct.find("missing shards: 0 (of 2)"), std::string::npos) << ct;
  EXPECT_EQ(MemberJson(*m),
            "{\"role\":\"shard\",\"member_id\":\"shard-1.1\",\"shard_id\":1,\"address\":"
            "\"127.0.0.1:5\",\"healthy\":true,\"job_id\":\"\",\"rank\":0,\"device\":\"\","
            "\"load\":0,\"last_heartbeat_ms\":0}");

  s.set_state(SUCCEEDED);
  s.set_end_time_ms(92000);
  s.mutable_eval()->set_accuracy(0.85);
  const std::string sum = JobSummary(s);
  EXPECT_NE(sum.find("job job-000007 SUCCEEDED"), std::string::npos) << sum;
  EXPECT_NE(sum.find("final accuracy 0.8500 (target 0.8000 reached)"), std::string::npos) << sum;
  EXPECT_NE(sum.find("duration 1m30s"), std::string::npos) << sum;
}

}  // namespace
}  // namespace ps
