#include "tests/util/process_cluster.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace ps::testing {

ProcessCluster::ProcessCluster(std::string dir, std::string data_root)
    : dir_(std::move(dir)), data_root_(std::move(data_root)) {
  ::mkdir(dir_.c_str(), 0755);
}

ProcessCluster::~ProcessCluster() {
  for (pid_t w : workers_) {
    ::kill(w, SIGTERM);
    Wait(w);
  }
  for (auto& s : shards_) {
    if (s->running()) s->Kill(SIGTERM);
  }
  if (coordinator_ != nullptr && coordinator_->running()) coordinator_->Kill(SIGTERM);
}

absl::Status ProcessCluster::StartCoordinator(int port) {
  coordinator_ = std::make_unique<Daemon>();
  return coordinator_->Start({Runfile("server/coordinator/ps_coordinator"),
                              absl::StrCat("--port=", port), "--data_dir=" + dir_ + "/coord",
                              "--data_root=" + data_root_,
                              absl::StrCat("--num_shards=", num_shards_)},
                             dir_ + ".coordinator.log");
}

absl::Status ProcessCluster::Start(int shards, int workers) {
  num_shards_ = shards;
  if (absl::Status s = StartCoordinator(0); !s.ok()) return s;
  for (int i = 0; i < shards; ++i) {
    shards_.push_back(std::make_unique<Daemon>());
    absl::Status s = shards_.back()->Start(
        {Runfile("server/ps_server"), "--port=0", absl::StrCat("--shard_id=", i),
         absl::StrCat("--num_shards=", shards), absl::StrCat("--data_dir=", dir_, "/shard", i),
         "--coordinator=" + coordinator_->address()},
        absl::StrCat(dir_, ".shard", i, ".log"));
    if (!s.ok()) return s;
  }
  for (int i = 0; i < workers; ++i) {
    workers_.push_back(Spawn({Runfile("worker/ps_worker"),
                              "--coordinator=" + coordinator_->address(), "--device=cpu",
                              "--data_root=" + data_root_},
                             absl::StrCat(dir_, ".worker", i, ".log")));
  }
  return absl::OkStatus();
}

int ProcessCluster::Psctl(std::vector<std::string> args, std::string* out) {
  args.insert(args.begin(), {Runfile("client/psctl"), "--coordinator=" + coordinator_->address()});
  const int status = RunCommand(args, out, dir_ + ".psctl.log");
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string LastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace ps::testing
