#include "tests/util/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ps::testing {
namespace {
[[noreturn]] void Exec(const std::vector<std::string>& argv);
void RedirectStderr(const std::string& log_path);
}  // namespace

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return path;
  return absl::StrCat(srcdir, "/", workspace == nullptr ? "ps" : workspace, "/", path);
}

std::string SourceRoot(const std::string& path) {
  char real[PATH_MAX];
  const std::string runfile = Runfile(path);
  if (::realpath(runfile.c_str(), real) == nullptr) return Runfile("");
  const std::string r = real;
  if (r.size() <= path.size() || r.compare(r.size() - path.size(), path.size(), path) != 0) {
    return Runfile("");
  }
  return r.substr(0, r.size() - path.size());
}

Daemon::~Daemon() {
  if (pid_ > 0) Kill(SIGKILL);
}

absl::Status Daemon::Start(const std::vector<std::string>& argv, const std::string& log_path,
                           std::chrono::milliseconds timeout) {
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    RedirectStderr(log_path);
    Exec(argv);
  }
  close(out[1]);
  pid_ = pid;
  stdout_fd_ = out[0];
  std::string buffer;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{stdout_fd_, POLLIN, 0};
    const int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          deadline - std::chrono::steady_clock::now())
                                          .count());
    if (poll(&p, 1, left > 0 ? left : 0) <= 0) break;
    char chunk[256];
    const ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
    const size_t at = buffer.find("listening on ");
    const size_t eol = at == std::string::npos ? at : buffer.find('\n', at);
    if (eol != std::string::npos) {
      address_ = buffer.substr(at + 13, eol - at - 13);
      const size_t m = buffer.find("metrics on ");
      if (m != std::string::npos && m < at) {
        metrics_address_ = buffer.substr(m + 11, buffer.find('\n', m) - m - 11);
      }
      return absl::OkStatus();
    }
  }
  const int status = Kill(SIGKILL);
  return absl::UnavailableError(absl::StrCat(argv[0], " did not report its address (wait status ",
                                             status, ", output: ", buffer, ")"));
}

void KeepLog(const std::string& path, const std::string& name, size_t tail_bytes) {
  std::ifstream in(path, std::ios::binary);
  const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string tail = log.substr(log.size() > tail_bytes ? log.size() - tail_bytes : 0);
  std::printf("----- tail of %s.log -----\n", name.c_str());
  std::fwrite(tail.data(), 1, tail.size(), stdout);  // Whole, NUL bytes included.
  std::printf("\n");
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (outputs == nullptr) return;
  std::ofstream(absl::StrCat(outputs, "/", name, ".log"), std::ios::binary) << log;
}

absl::StatusOr<std::string> HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("address: no port");
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::atoi(address.c_str() + colon + 1)));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    close(fd);
    return absl::UnavailableError("cannot connect to " + address);
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + address + "\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return absl::UnavailableError("short write");
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  if (body == std::string::npos) return absl::DataLossError("no HTTP body");
  return resp.substr(body + 4);
}

int Daemon::Kill(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return status;
}

namespace {

[[noreturn]] void Exec(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

void RedirectStderr(const std::string& log_path) {
  if (log_path.empty()) return;
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) dup2(fd, STDERR_FILENO);
}

}  // namespace

int RunCommand(const std::vector<std::string>& argv, std::string* out, const std::string& log_path) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    close(pipefd[1]);
    RedirectStderr(log_path);
    Exec(argv);
  }
  close(pipefd[1]);
  out->clear();
  char buf[4096];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) out->append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  return Wait(pid);
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!log_path.empty()) {
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
      }
    }
    Exec(argv);
  }
  return pid;
}

int Wait(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) return -1;
  return status;
}

}  // namespace ps::testing
