// ps_worker: computes gradients for parameter-server jobs.
//
// Standalone, one job and no coordinator:
//   ps_worker --job=JOB.textproto --rank=R --num_workers=W --shards=H:P,H:P
// Managed, for days: registers with the coordinator, trains what it is assigned,
// reports progress, and waits for the next job:
//   ps_worker --coordinator=HOST:PORT [--device=auto|cpu|gpu] [--cpu_threads=N]
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/member_link.h"
#include "common/sync.h"
#include "common/tls.h"
#include "google/protobuf/text_format.h"
#include "grpcpp/grpcpp.h"
#include "worker/compute/openblas_gemm.h"
#include "worker/grpc_ps_client.h"
#include "worker/trainer.h"

ABSL_FLAG(std::string, coordinator, "", "host:port of the coordinator (managed mode).");
ABSL_FLAG(std::string, job, "", "Standalone mode: the JobSpec text proto to run.");
ABSL_FLAG(std::string, job_id, "standalone", "Standalone mode: the job id on the shards.");
ABSL_FLAG(int, rank, 0, "Standalone mode: this worker's rank, 0 .. num_workers-1.");
ABSL_FLAG(int, num_workers, 0, "Standalone mode: workers of the job (default: the spec's).");
ABSL_FLAG(std::string, shards, "", "Standalone mode: shard addresses H:P,H:P in shard order.");
ABSL_FLAG(std::string, device, "auto", "Where to compute: auto (GPU if present), cpu or gpu.");
ABSL_FLAG(int, cpu_threads, 0,
          "Threads of each matrix product on the CPU (OpenBLAS); 0: OpenBLAS's default "
          "(OPENBLAS_NUM_THREADS, else one per core). Daemons sharing a host should divide "
          "its cores, as deploy/local_cluster.sh does.");
ABSL_FLAG(std::string, data_root, ".", "Relative data paths in job specs resolve under it.");
ABSL_FLAG(int, rpc_timeout_s, 120, "Deadline of each parameter-server call, in seconds.");
ABSL_FLAG(int, transient_retry_s, 600,
          "Managed mode: how long a pull or push failing with a transient error (shard "
          "restarting or unreachable) is repeated before the job is failed, in seconds.");

namespace ps {
namespace {

// Credentials of every channel (--tls_cert/--tls_key/--tls_ca); Run() checks the
// flags before any channel is made.
std::shared_ptr<grpc::ChannelCredentials> ChannelCreds() {
  static const auto* const creds =
      new absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>(
          MakeChannelCredentials(TlsFilesFromFlags()));
  return creds->ok() ? **creds : nullptr;
}

absl::StatusOr<std::unique_ptr<GrpcPsClient>> ConnectShards(const std::vector<std::string>& addrs) {
  GrpcPsClient::Options o;
  o.rpc_timeout = absl::Seconds(absl::GetFlag(FLAGS_rpc_timeout_s));
  o.credentials = ChannelCreds();
  return GrpcPsClient::Connect(addrs, o);
}

void PrintProgress(const std::string& job, uint32_t rank, const TrainerProgress& p) {
  std::string line = absl::StrFormat(
      "job %s rank %u: clock %d/%d epoch %u loss %.4f %.0f samples/s (pull %.1f ms, compute "
      "%.1f ms, push %.1f ms)",
      job, rank, p.clock, p.total_clocks, p.epoch + 1, p.loss, p.samples_per_s, p.pull_s * 1e3,
      p.compute_s * 1e3, p.push_s * 1e3);
  if (p.has_eval) {
    line += absl::StrFormat(" | test accuracy %.4f loss %.4f", p.eval_accuracy, p.eval_loss);
  }
  PS_LOG(INFO) << line;
}

int RunStandalone(compute::DeviceChoice device) {
  std::string text;
  {
    FILE* f = std::fopen(absl::GetFlag(FLAGS_job).c_str(), "r");
    if (f == nullptr) {
      std::fprintf(stderr, "ps_worker: cannot open --job=%s\n", absl::GetFlag(FLAGS_job).c_str());
      return 1;
    }
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  TrainerOptions options;
  if (!google::protobuf::TextFormat::ParseFromString(text, &options.spec)) {
    std::fprintf(stderr, "ps_worker: --job is not a JobSpec text proto\n");
    return 1;
  }
  if (absl::GetFlag(FLAGS_num_workers) > 0) {
    options.spec.set_num_workers(static_cast<uint32_t>(absl::GetFlag(FLAGS_num_workers)));
  }
  options.job_id = absl::GetFlag(FLAGS_job_id);
  options.rank = static_cast<uint32_t>(absl::GetFlag(FLAGS_rank));
  options.data_root = absl::GetFlag(FLAGS_data_root);
  options.device = device;
  const std::vector<std::string> shards = absl::StrSplit(absl::GetFlag(FLAGS_shards), ',');
  absl::StatusOr<std::unique_ptr<GrpcPsClient>> ps = ConnectShards(shards);
  if (!ps.ok()) {
    std::fprintf(stderr, "ps_worker: --shards: %s\n", ps.status().ToString().c_str());
    return 1;
  }
  TrainerProgress final_progress;
  const absl::Status s = Train(options, ps->get(), [&](const TrainerProgress& p) {
    PrintProgress(options.job_id, options.rank, p);
    final_progress = p;
    return true;
  });
  if (!s.ok()) {
    std::fprintf(stderr, "ps_worker: %s\n", s.ToString().c_str());
    return 2;
  }
  std::printf("done: job %s rank %u clocks %lu", options.job_id.c_str(), options.rank,
              static_cast<unsigned long>(final_progress.clock));
  if (final_progress.has_eval) {
    std::printf(" test_accuracy %.4f test_loss %.4f", final_progress.eval_accuracy,
                final_progress.eval_loss);
  }
  std::printf("\n");
  return 0;
}

// Managed mode: the assignment being run, on its own thread.
class Assignment {
 public:
  Assignment(WorkerAssignment a, compute::DeviceChoice device, MemberLink* link)
      : assignment_(std::move(a)), device_(device), link_(link) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Assignment() {
    stop_.store(true);
    thread_.join();
  }
  const WorkerAssignment& assignment() const { return assignment_; }
  bool done() const { return done_.load(); }
  void Stop() { stop_.store(true); }

 private:
  bool Report(const TrainerProgress* p, const std::string& error) {
    ProgressReport r;
    r.set_job_id(assignment_.job_id());
    r.set_rank(assignment_.rank());
    r.set_generation(assignment_.generation());
    if (p != nullptr) {
      r.set_clock(p->clock);
      r.set_total_clocks(p->total_clocks);
      r.set_epoch(p->epoch);
      r.set_loss(p->loss);
      r.set_samples_per_s(p->samples_per_s);
      r.set_finished(p->finished);
      if (p->has_eval) {
        EvalMetrics* e = r.mutable_eval();
        e->set_examples(static_cast<uint64_t>(p->eval_examples));
        e->set_loss(p->eval_loss);
        e->set_accuracy(p->eval_accuracy);
        e->set_auc(p->eval_auc);
      }
    }
    r.set_error(error);
    // A finished or failed job must be heard; retry those a few times.
    const int attempts = (p != nullptr && p->finished) || !error.empty() ? 10 : 1;
    for (int i = 0; i < attempts; ++i) {
      ReportProgressResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      const grpc::Status s = link_->stub()->ReportProgress(&ctx, r, &resp);
      if (s.ok()) return !resp.cancel();
      PS_LOG(WARNING) << "cannot report progress: " << s.error_message();
      std::this_thread::sleep_for(std::chrono::milliseconds(200 << std::min(i, 4)));
    }
    return true;
  }

  void Run() {
    const WorkerAssignment& a = assignment_;
    link_->SetRunning(a.job_id(), a.rank(), a.generation());
    PS_LOG(INFO) << "job " << a.job_id() << ": rank " << a.rank() << " of "
                 << a.spec().num_workers() << ", generation " << a.generation()
                 << ", from clock " << a.resume_clock();
    std::vector<std::string> shards(a.shard_addresses().begin(), a.shard_addresses().end());
    absl::Status status;
    absl::StatusOr<std::unique_ptr<GrpcPsClient>> ps = ConnectShards(shards);
    if (!ps.ok()) {
      status = ps.status();
    } else {
      TrainerOptions options;
      options.job_id = a.job_id();
      options.spec = a.spec();
      options.rank = a.rank();
      options.resume_clock = a.resume_clock();
      options.data_root = absl::GetFlag(FLAGS_data_root);
      options.device = device_;
      options.stop = &stop_;
      options.transient_retry_s = absl::GetFlag(FLAGS_transient_retry_s);
      status = Train(options, ps->get(), [&](const TrainerProgress& p) {
        PrintProgress(a.job_id(), a.rank(), p);
        return Report(&p, "") && !stop_.load();
      });
    }
    if (!status.ok() && !absl::IsCancelled(status) && !stop_.load()) {
      PS_LOG(ERROR) << "job " << a.job_id() << " rank " << a.rank() << " failed: " << status;
      Report(nullptr, status.ToString());
    }
    link_->SetRunning("", 0, 0);
    done_.store(true);
  }

  const WorkerAssignment assignment_;
  const compute::DeviceChoice device_;
  MemberLink* const link_;  // Not owned.
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

int RunManaged(compute::DeviceChoice device, const std::string& device_name) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Member me;
  me.set_role(WORKER);
  me.set_device(device_name);
  absl::Mutex mu;
  std::unique_ptr<Assignment> current;
  std::vector<std::unique_ptr<Assignment>> retired;  // Stopping; joined when done.
  std::unique_ptr<MemberLink> link;
  link = std::make_unique<MemberLink>(
      absl::GetFlag(FLAGS_coordinator), me, [&](const HeartbeatResponse& resp) {
        absl::MutexLock lock(&mu);
        const WorkerAssignment* next = resp.assignments_size() > 0 ? &resp.assignments(0) : nullptr;
        const bool same = current != nullptr && next != nullptr &&
                          current->assignment().job_id() == next->job_id() &&
                          current->assignment().generation() == next->generation();
        if (current != nullptr && !same && (next != nullptr || !current->done())) {
          // Superseded (recovery), cancelled or ended: stop it without waiting here.
          current->Stop();
          retired.push_back(std::move(current));
        }
        if (current != nullptr && current->done() && next == nullptr) {
          retired.push_back(std::move(current));
        }
        if (next != nullptr && !same) {
          current = std::make_unique<Assignment>(*next, device, link.get());
        }
        for (auto it = retired.begin(); it != retired.end();) {
          it = (*it)->done() ? retired.erase(it) : it + 1;
        }
        return std::vector<ShardOrder>();
      },
      nullptr, ChannelCreds());
  link->Start();
  int sig = 0;
  sigwait(&signals, &sig);
  PS_LOG(INFO) << "signal " << sig << ": stopping";
  {
    absl::MutexLock lock(&mu);
    if (current != nullptr) current->Stop();
    for (auto& r : retired) r->Stop();
  }
  link.reset();  // No more heartbeats, so no new assignments.
  current.reset();
  retired.clear();
  return 0;
}

int Run() {
  absl::StatusOr<compute::DeviceChoice> device =
      compute::ParseDeviceChoice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    std::fprintf(stderr, "ps_worker: --device: %s\n", device.status().ToString().c_str());
    return 1;
  }
  if (absl::Status s = MakeChannelCredentials(TlsFilesFromFlags()).status(); !s.ok()) {
    std::fprintf(stderr, "ps_worker: %s\n", s.ToString().c_str());
    return 1;
  }
  if (const int threads = absl::GetFlag(FLAGS_cpu_threads); threads != 0) {
    if (absl::Status s = compute::SetCpuGemmThreads(threads); !s.ok()) {
      std::fprintf(stderr, "ps_worker: --cpu_threads: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const bool managed = !absl::GetFlag(FLAGS_coordinator).empty();
  const bool standalone = !absl::GetFlag(FLAGS_job).empty();
  if (managed == standalone) {
    std::fprintf(stderr, "ps_worker: give either --coordinator (managed) or --job with --shards "
                         "(standalone); see --help\n");
    return 1;
  }
  if (standalone) return RunStandalone(*device);
  absl::StatusOr<std::unique_ptr<compute::Backend>> backend = compute::CreateBackend(*device);
  if (!backend.ok()) {
    std::fprintf(stderr, "ps_worker: --device: %s\n", backend.status().ToString().c_str());
    return 1;
  }
  const std::string name = (*backend)->name();
  backend->reset();
  return RunManaged(*device, name);
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  ps::SkipMutexOrderChecksInReleaseBuilds();
  ps::ParseFlags(argc, argv,
                 "ps_worker: computes gradients for parameter-server jobs.\n"
                 "standalone: ps_worker --job=JOB.textproto --rank=R --num_workers=W "
                 "--shards=H:P,H:P\n"
                 "managed:    ps_worker --coordinator=HOST:PORT [--device=auto|cpu|gpu]");
  return ps::Run();
}
