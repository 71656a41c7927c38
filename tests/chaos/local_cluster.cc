#include "tests/chaos/local_cluster.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/grpcpp.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps::testing {
namespace {

std::string RealPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) != nullptr ? std::string(buf) : path;
}

bool IsFinal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

LocalCluster::LocalCluster(LocalClusterOptions options) : options_(std::move(options)) {}

LocalCluster::~LocalCluster() { Stop(); }

absl::Status LocalCluster::Start() {
  ::mkdir(options_.dir.c_str(), 0755);
  // local_cluster.sh --bin wants the three daemons side by side.
  const std::string bin = options_.dir + "/bin";
  ::mkdir(bin.c_str(), 0755);
  for (const char* path : {"server/ps_server", "server/coordinator/ps_coordinator",
                           "worker/ps_worker"}) {
    const std::string target = RealPath(Runfile(path));
    const std::string link = bin + "/" + std::string(path).substr(std::string(path).rfind('/') + 1);
    ::unlink(link.c_str());
    if (::symlink(target.c_str(), link.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("cannot link ", link));
    }
  }
  std::string out;
  const int status = RunCommand(
      {Runfile("deploy/local_cluster.sh"), "start", "--dir=" + options_.dir, "--bin=" + bin,
       "--data_root=" + options_.data_root, absl::StrCat("--shards=", options_.shards),
       absl::StrCat("--workers=", options_.workers), "--device=cpu",
       absl::StrCat("--max_backoff=", options_.max_backoff_s),
       "--coordinator_flags=" + options_.coordinator_flags,
       "--shard_flags=" + options_.shard_flags, "--worker_flags=" + options_.worker_flags},
      &out, options_.dir + "/start.log");
  started_ = true;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat("local_cluster.sh start failed: ", out,
                                            ReadFile(options_.dir + "/start.log")));
  }
  const size_t at = out.find("coordinator at ");
  if (at == std::string::npos) return absl::InternalError("no coordinator address in: " + out);
  coordinator_ = out.substr(at + 15);
  coordinator_ = std::string(absl::StripAsciiWhitespace(coordinator_));
  CoordinatorClientOptions o;
  o.address = coordinator_;
  o.timeout = absl::Seconds(5);
  auto client = CoordinatorClient::Connect(o);
  if (!client.ok()) return client.status();
  client_ = std::move(*client);
  return absl::OkStatus();
}

void LocalCluster::Stop() {
  if (!started_) return;
  started_ = false;
  std::string out;
  RunCommand({Runfile("deploy/local_cluster.sh"), "stop", "--dir=" + options_.dir}, &out,
             options_.dir + "/stop.log");
}

pid_t LocalCluster::Pid(const std::string& name) const {
  int pid = -1;
  const std::string text(absl::StripAsciiWhitespace(ReadFile(options_.dir + "/pids/" + name + ".pid")));
  if (!absl::SimpleAtoi(text, &pid)) return -1;
  return pid;
}

bool LocalCluster::Kill(const std::string& name) {
  const pid_t pid = Pid(name);
  return pid > 0 && ::kill(pid, SIGKILL) == 0;
}

std::string LocalCluster::Log(const std::string& name) const {
  return options_.dir + "/logs/" + name + ".log";
}

std::string LocalCluster::ShardAddress(int i) const {
  const std::string log = ReadFile(Log(absl::StrCat("shard", i)));
  const size_t at = log.rfind("listening on ");
  if (at == std::string::npos) return "";
  const size_t end = log.find('\n', at);
  return log.substr(at + 13, end == std::string::npos ? std::string::npos : end - at - 13);
}

absl::StatusOr<std::vector<JobStats>> LocalCluster::ShardStats(const std::string& job_id) const {
  std::vector<JobStats> out;
  for (int i = 0; i < options_.shards; ++i) {
    auto stub = ShardService::NewStub(
        grpc::CreateChannel(ShardAddress(i), grpc::InsecureChannelCredentials()));
    GetStatsRequest req;
    req.set_job_id(job_id);
    req.set_with_digest(true);
    GetStatsResponse resp;
    grpc::ClientContext ctx;
    // A shard the supervisor is restarting is waited for.
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    const grpc::Status s = stub->GetStats(&ctx, req, &resp);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("shard ", i, ": ", s.error_message()));
    }
    if (resp.jobs_size() != 1) {
      return absl::NotFoundError(absl::StrCat("shard ", i, " has no job ", job_id));
    }
    out.push_back(resp.jobs(0));
  }
  return out;
}

absl::StatusOr<JobStatus> LocalCluster::GetJob(const std::string& job_id,
                                               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    absl::StatusOr<JobStatus> st = client_->GetJob(job_id);
    if (st.ok() || (!absl::IsUnavailable(st.status()) && !absl::IsDeadlineExceeded(st.status())) ||
        std::chrono::steady_clock::now() > deadline) {
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

absl::StatusOr<JobStatus> LocalCluster::WaitFor(
    const std::string& job_id, const std::function<bool(const JobStatus&)>& done,
    std::chrono::milliseconds timeout, std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  JobStatus last;
  while (std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<JobStatus> st = GetJob(job_id);
    if (!st.ok()) return st.status();
    last = *st;
    if (done(last)) return last;
    if (IsFinal(last.state())) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " ended ",
                                                        JobState_Name(last.state()), ": ",
                                                        last.reason()));
    }
    std::this_thread::sleep_for(poll);
  }
  return absl::DeadlineExceededError(absl::StrCat("job ", job_id, " is still ",
                                                  JobState_Name(last.state()), " at clock ",
                                                  last.clock(), ": ", last.reason()));
}

absl::StatusOr<std::string> LocalCluster::Submit(const JobSpec& spec) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (true) {
    absl::StatusOr<std::string> id = client_->SubmitJob(spec);
    if (id.ok() || !absl::IsUnavailable(id.status()) ||
        std::chrono::steady_clock::now() > deadline) {
      return id;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace ps::testing
