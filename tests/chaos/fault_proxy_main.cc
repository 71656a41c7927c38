// fault_proxy: the chaos suite's fault-injecting gRPC proxy as a process (see
// tests/chaos/fault_proxy.h). Prints "listening on 127.0.0.1:PORT" like the daemons,
// forwards until SIGTERM or SIGINT, then prints its counters on stderr.
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/flags.h"
#include "tests/chaos/fault_proxy.h"

ABSL_FLAG(int, listen_port, 0, "Port to listen on (127.0.0.1); 0 picks a free one.");
ABSL_FLAG(std::string, target, "", "host:port every call is forwarded to (required).");
ABSL_FLAG(double, drop_request, 0, "Probability that a call is answered UNAVAILABLE unsent.");
ABSL_FLAG(double, drop_reply, 0,
          "Probability that a call is forwarded, then answered UNAVAILABLE.");
ABSL_FLAG(double, delay, 0, "Probability that a call is held --delay_ms, then forwarded.");
ABSL_FLAG(int64_t, delay_ms, 2000, "How long a delayed call is held, in milliseconds.");
ABSL_FLAG(int64_t, late_deadline_ms, 30000,
          "Deadline of a delayed call forwarded after its client gave up, in milliseconds.");
ABSL_FLAG(uint64_t, seed, 1, "Seed of the fault decisions.");
ABSL_FLAG(std::string, methods, "",
          "Comma-separated full method names that may get faults "
          "(e.g. /ps.ShardService/Push,/ps.ShardService/Pull); empty = all.");

namespace ps::chaos {
namespace {

int Run() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  FaultProxy::Options options;
  options.listen_port = absl::GetFlag(FLAGS_listen_port);
  options.target = absl::GetFlag(FLAGS_target);
  if (options.target.empty()) {
    std::fprintf(stderr, "fault_proxy: --target is required\n");
    return 1;
  }
  options.rates.drop_request = absl::GetFlag(FLAGS_drop_request);
  options.rates.drop_reply = absl::GetFlag(FLAGS_drop_reply);
  options.rates.delay = absl::GetFlag(FLAGS_delay);
  options.delay = absl::Milliseconds(absl::GetFlag(FLAGS_delay_ms));
  options.late_deadline = absl::Milliseconds(absl::GetFlag(FLAGS_late_deadline_ms));
  options.seed = absl::GetFlag(FLAGS_seed);
  const std::string methods = absl::GetFlag(FLAGS_methods);
  if (!methods.empty()) {
    options.methods = absl::StrSplit(methods, ',', absl::SkipEmpty());
  }
  absl::StatusOr<std::unique_ptr<FaultProxy>> proxy = FaultProxy::Start(std::move(options));
  if (!proxy.ok()) {
    std::fprintf(stderr, "fault_proxy: %s\n", proxy.status().ToString().c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*proxy)->address().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  (*proxy)->Shutdown();
  const FaultCounts c = (*proxy)->stats().total;
  std::fprintf(stderr,
               "fault_proxy: signal %d; calls %lu, passed %lu, dropped_request %lu, "
               "dropped_reply %lu, delayed %lu (late delivered %lu), no_target %lu\n",
               sig, static_cast<unsigned long>(c.calls), static_cast<unsigned long>(c.passed),
               static_cast<unsigned long>(c.dropped_request),
               static_cast<unsigned long>(c.dropped_reply), static_cast<unsigned long>(c.delayed),
               static_cast<unsigned long>(c.late_delivered),
               static_cast<unsigned long>(c.no_target));
  return 0;
}

}  // namespace
}  // namespace ps::chaos

int main(int argc, char** argv) {
  ps::ParseFlags(argc, argv,
                 "fault_proxy: a gRPC proxy on 127.0.0.1 that drops and delays calls (tests).\n"
                 "usage: fault_proxy --target=HOST:PORT [--listen_port=P] [--drop_request=P] "
                 "[--drop_reply=P] [--delay=P --delay_ms=MS] [--seed=N] [--methods=M,M]");
  return ps::chaos::Run();
}
