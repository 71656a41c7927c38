// Runs the real ps_coordinator and psctl binaries as subprocesses.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"

extern char** environ;

namespace ps {
namespace {

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* ws = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/", ws != nullptr ? ws : "ps", "/",
                      path);
}

// A child process with its stdout (and optionally stderr) on pipes.
struct Child {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
};

Child Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env_extra,
            const std::string& stderr_file = "") {
  int out[2], err[2];
  EXPECT_EQ(::pipe(out), 0);
  EXPECT_EQ(::pipe(err), 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  if (stderr_file.empty()) {
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 2, stderr_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
  }
  posix_spawn_file_actions_addclose(&fa, out[0]);
  posix_spawn_file_actions_addclose(&fa, err[0]);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "PS_COORDINATOR=")) env.push_back(*e);
  }
  env.insert(env.end(), env_extra.begin(), env_extra.end());
  std::vector<char*> args, envp;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  Child c;
  const int rc = posix_spawn(&c.pid, args[0], &fa, nullptr, args.data(), envp.data());
  EXPECT_EQ(rc, 0) << argv[0] << ": " << std::strerror(rc);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  ::close(err[1]);
  c.out = out[0];
  c.err = err[0];
  return c;
}

// Reads both pipes to the end (or the deadline), then reaps the child.
struct Result {
  int code = -1;
  std::string out, err;
  std::string LastLine() const {
    std::vector<std::string> lines =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(out), '\n');
    return lines.empty() ? "" : lines.back();
  }
};

Result Wait(Child c, absl::Duration timeout = absl::Seconds(60)) {
  Result r;
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<pollfd> fds = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
  int open = 2;
  while (open > 0 && absl::Now() < deadline) {
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP)) == 0) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open;
      } else {
        (i == 0 ? r.out : r.err).append(buf, n);
      }
    }
  }
  if (open > 0) {
    ADD_FAILURE() << "child " << c.pid << " timed out";
    ::kill(c.pid, SIGKILL);
    for (pollfd& p : fds) {
      if (p.fd >= 0) ::close(p.fd);
    }
  }
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

class PsctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    dir_ = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ::mkdir(dir_.c_str(), 0755);
    std::ofstream(dir_ + "/train.csv") << "1,2,0\n";
    WriteSpec("job.textproto", 1, "train.csv");
    StartCoordinator();
  }

  void TearDown() override {
    if (coordinator_.pid > 0) {
      ::kill(coordinator_.pid, SIGTERM);
      int status = 0;
      ::waitpid(coordinator_.pid, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "SIGTERM must exit 0, got status " << status;
      ::close(coordinator_.out);
      ::close(coordinator_.err);
    }
  }

  void WriteSpec(const std::string& name, int workers, const std::string& train) {
    std::ofstream(dir_ + "/" + name) << "name: \"cli test\"\n"
                                     << "model { softmax {} }\n"
                                     << "data { format: CSV train_path: \"" << train
                                     << "\" num_features: 2 num_classes: 2 }\n"
                                     << "optimizer { sgd {} learning_rate: 0.1 }\n"
                                     << "consistency { mode: SYNC }\n"
                                     << "num_workers: " << workers << "\n"
                                     << "batch_size: 4\nepochs: 1\n"
                                     << "target_accuracy: 0.5\n";
  }

  // Starts ps_coordinator on a free port and reads its "listening on" line.
  void StartCoordinator() {
    coordinator_ = Spawn({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                          "--data_dir=" + dir_ + "/db", "--data_root=" + dir_,
                          "--num_shards=1", "--heartbeat_interval_ms=100",
                          "--heartbeat_timeout_ms=3000"},
                         {}, dir_ + "/coordinator.log");
    std::string line;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!absl::StrContains(line, "\n") && absl::Now() < deadline) {
      pollfd p = {coordinator_.out, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c;
      if (::read(coordinator_.out, &c, 1) != 1) break;
      line.push_back(c);
    }
    absl::string_view rest = absl::StripTrailingAsciiWhitespace(line);
    ASSERT_TRUE(absl::ConsumePrefix(&rest, "listening on ")) << "got: " << line;
    address_ = std::string(rest);
  }

  Result Psctl(std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv = {Runfile("client/psctl")};
    if (env.empty()) argv.push_back("--coordinator=" + address_);
    argv.insert(argv.end(), args.begin(), args.end());
    return Wait(Spawn(argv, env));
  }

  std::string dir_;
  Child coordinator_;
  std::string address_;
};

// Parses JSON with python3 (json module) and checks an expression over it `d`.
bool JsonCheck(const std::string& json, const std::string& expr, const std::string& dir) {
  const std::string file = dir + "/check.json";
  std::ofstream(file) << json;
  const std::string cmd = absl::StrCat("python3 -c \"import json, sys; d = json.load(open(sys.argv[1])); ",
                                       "sys.exit(0 if (", expr, ") else 1)\" ", file);
  return std::system(cmd.c_str()) == 0;
}

TEST_F(PsctlTest, SubmitListStatusCancelAndSurviveAKill) {
  const Result a = Psctl({"submit", dir_ + "/job.textproto"});
  ASSERT_EQ(a.code, 0) << a.err;
  EXPECT_EQ(a.LastLine(), "job-000001");
  const Result b = Psctl({"submit", dir_ + "/job.textproto"}, {"PS_COORDINATOR=" + address_});
  ASSERT_EQ(b.code, 0) << b.err << " (address from $PS_COORDINATOR)";
  EXPECT_EQ(b.LastLine(), "job-000002");

  Result list = Psctl({"list"});
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_TRUE(absl::StrContains(list.out, "job-000001  PENDING")) << list.out;
  EXPECT_TRUE(absl::StrContains(list.out, "job-000002  PENDING")) << list.out;

  const Result st = Psctl({"status", "job-000001", "--json"});
  ASSERT_EQ(st.code, 0) << st.err;
  EXPECT_TRUE(JsonCheck(st.out,
                        "d['job_id'] == 'job-000001' and d['state'] == 'PENDING' and "
                        "d['name'] == 'cli test' and d['num_workers'] == 1 and "
                        "d['eval'] is None and d['submit_time_ms'] > 0",
                        dir_))
      << st.out;
  const Result text = Psctl({"status", "job-000001"});
  ASSERT_EQ(text.code, 0);
  EXPECT_TRUE(absl::StrContains(text.out, "state        PENDING")) << text.out;

  const Result cancel = Psctl({"cancel", "job-000002"});
  ASSERT_EQ(cancel.code, 0) << cancel.err;
  EXPECT_TRUE(absl::StrContains(cancel.out, "CANCELLED")) << cancel.out;
  EXPECT_EQ(Psctl({"cancel", "job-000002"}).code, 2) << "already ended";
  const Result watch = Psctl({"watch", "job-000002"});
  EXPECT_EQ(watch.code, 4) << watch.out << watch.err;
  EXPECT_TRUE(absl::StrContains(watch.out, "job job-000002 CANCELLED")) << watch.out;

  const Result cluster = Psctl({"cluster"});
  EXPECT_EQ(cluster.code, 0) << cluster.err;
  EXPECT_TRUE(absl::StrContains(cluster.out, "missing shards: 0 (of 1)")) << cluster.out;

  // SIGKILL, then a new coordinator on the same data_dir: every job is still there.
  ::kill(coordinator_.pid, SIGKILL);
  ::waitpid(coordinator_.pid, nullptr, 0);
  ::close(coordinator_.out);
  ::close(coordinator_.err);
  coordinator_ = Child();
  EXPECT_EQ(Psctl({"list"}).code, 2) << "nothing listens now";
  StartCoordinator();
  list = Psctl({"list", "--json"});
  ASSERT_EQ(list.code, 0) << list.err;
  const std::vector<std::string> lines =
      absl::StrSplit(absl::StripTrailingAsciiWhitespace(list.out), '\n');
  ASSERT_EQ(lines.size(), 2u) << list.out;
  EXPECT_TRUE(JsonCheck(lines[0], "d['job_id'] == 'job-000001' and d['state'] == 'PENDING'", dir_));
  EXPECT_TRUE(JsonCheck(lines[1], "d['job_id'] == 'job-000002' and d['state'] == 'CANCELLED'",
                        dir_));
  const Result c = Psctl({"submit", dir_ + "/job.textproto"});
  EXPECT_EQ(c.LastLine(), "job-000003") << "ids continue after the restart";
}

TEST_F(PsctlTest, ExitCodesOfBadInput) {
  EXPECT_EQ(Psctl({}).code, 1);
  EXPECT_EQ(Psctl({"frobnicate"}).code, 1);
  EXPECT_EQ(Psctl({"submit"}).code, 1);
  EXPECT_EQ(Psctl({"submit", dir_ + "/no-such.textproto"}).code, 1);
  EXPECT_EQ(Psctl({"export", "job-000001"}).code, 1) << "--out is required";

  std::ofstream(dir_ + "/garbage.textproto") << "num_workers: \"many\"\n";
  Result r = Psctl({"submit", dir_ + "/garbage.textproto"});
  EXPECT_EQ(r.code, 5);
  EXPECT_TRUE(absl::StrContains(r.err, "1:")) << "names the line: " << r.err;

  WriteSpec("zero.textproto", 0, "train.csv");
  r = Psctl({"submit", dir_ + "/zero.textproto"});
  EXPECT_EQ(r.code, 5);
  EXPECT_TRUE(absl::StrContains(r.err, "spec.num_workers")) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;

  WriteSpec("missing.textproto", 1, "missing.csv");
  r = Psctl({"submit", dir_ + "/missing.textproto"});
  EXPECT_EQ(r.code, 5);
  EXPECT_TRUE(absl::StrContains(r.err, "spec.data.train_path")) << r.err;

  EXPECT_EQ(Psctl({"status", "job-000042"}).code, 6);
  EXPECT_EQ(Psctl({"cancel", "job-000042"}).code, 6);
  EXPECT_EQ(Psctl({"watch", "job-000042"}).code, 6);
  EXPECT_EQ(Psctl({"list"}, {"PS_COORDINATOR=127.0.0.1:1"}).code, 2) << "unreachable";

  const Result help = Psctl({"--help"});
  EXPECT_TRUE(absl::StrContains(help.out + help.err, "Exit codes")) << help.out << help.err;
  EXPECT_TRUE(absl::StrContains(help.out + help.err, "--coordinator")) << help.out << help.err;
  const Result daemon_help = Wait(Spawn({Runfile("server/coordinator/ps_coordinator"), "--help"}, {}));
  for (const char* flag : {"--port", "--host", "--data_dir", "--data_root", "--num_shards",
                           "--heartbeat_interval_ms", "--heartbeat_timeout_ms"}) {
    EXPECT_TRUE(absl::StrContains(daemon_help.out + daemon_help.err, flag)) << flag;
  }
}

// A fake shard and worker (plain stubs) make a job run; `submit --wait` follows it.
TEST_F(PsctlTest, SubmitWaitExitsByTheResult) {
  auto stub = CoordinatorService::NewStub(
      grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()));
  auto reg = [&](Role role) {
    grpc::ClientContext ctx;
    RegisterRequest req;
    req.mutable_member()->set_role(role);
    req.mutable_member()->set_address("127.0.0.1:9");
    RegisterResponse resp;
    EXPECT_TRUE(stub->Register(&ctx, req, &resp).ok());
    return resp.member_id();
  };
  reg(SHARD);
  reg(WORKER);
  auto report = [&](const std::string& job, bool finished, const std::string& error) {
    grpc::ClientContext ctx;
    ProgressReport req;
    req.set_job_id(job);
    req.set_clock(10);
    req.set_total_clocks(10);
    req.set_finished(finished);
    req.set_error(error);
    req.mutable_eval()->set_accuracy(0.75);
    ReportProgressResponse resp;
    EXPECT_TRUE(stub->ReportProgress(&ctx, req, &resp).ok());
  };

  Child waiting = Spawn({Runfile("client/psctl"), "--coordinator=" + address_, "submit",
                         dir_ + "/job.textproto", "--wait"},
                        {});
  // The id comes first, before the job ends.
  std::string first;
  while (!absl::StrContains(first, "\n")) {
    char ch;
    ASSERT_EQ(::read(waiting.out, &ch, 1), 1);
    first.push_back(ch);
  }
  EXPECT_EQ(first, "job-000001\n");
  report("job-000001", true, "");
  Result r = Wait(waiting);
  r.out = first + r.out;
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.LastLine(), "job-000001");
  EXPECT_TRUE(absl::StrContains(r.err, "SUCCEEDED")) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "final accuracy 0.7500 (target 0.5000 reached)")) << r.err;

  // A failing job: watch exits 3.
  const Result b = Psctl({"submit", dir_ + "/job.textproto"});
  ASSERT_EQ(b.LastLine(), "job-000002");
  report("job-000002", false, "out of memory");
  const Result w = Psctl({"watch", "job-000002"});
  EXPECT_EQ(w.code, 3) << w.out << w.err;
  EXPECT_TRUE(absl::StrContains(w.out, "rank 0: out of memory")) << w.out;
  const Result st = Psctl({"status", "job-000002", "--json"});
  EXPECT_TRUE(JsonCheck(st.out, "d['state'] == 'FAILED' and d['eval']['accuracy'] == 0.75", dir_))
      << st.out;
}

}  // namespace
}  // namespace ps
