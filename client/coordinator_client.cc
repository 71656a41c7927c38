#include "client/coordinator_client.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "common/channel_args.h"
#include "common/flags.h"
#include "common/grpc_status.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "proto/coordinator.grpc.pb.h"

namespace ps {
namespace {

bool IsFinal(JobState s) { return s == SUCCEEDED || s == FAILED || s == CANCELLED; }

class GrpcCoordinatorClient final : public CoordinatorClient {
 public:
  GrpcCoordinatorClient(const CoordinatorClientOptions& options,
                        std::unique_ptr<CoordinatorService::Stub> stub)
      : options_(options), stub_(std::move(stub)) {}

  std::shared_ptr<grpc::ChannelCredentials> credentials() const override {
    return options_.credentials;
  }

  absl::StatusOr<std::string> SubmitJob(const JobSpec& spec) override {
    SubmitJobRequest req;
    *req.mutable_spec() = spec;
    SubmitJobResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    if (absl::Status s = Check(stub_->SubmitJob(&ctx, req, &resp)); !s.ok()) return s;
    return resp.job_id();
  }

  absl::StatusOr<JobStatus> GetJob(const std::string& job_id) override {
    GetJobRequest req;
    req.set_job_id(job_id);
    JobStatus resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    if (absl::Status s = Check(stub_->GetJob(&ctx, req, &resp)); !s.ok()) return s;
    return resp;
  }

  absl::StatusOr<std::vector<JobStatus>> ListJobs() override {
    ListJobsResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    if (absl::Status s = Check(stub_->ListJobs(&ctx, ListJobsRequest(), &resp)); !s.ok()) {
      return s;
    }
    return std::vector<JobStatus>(resp.jobs().begin(), resp.jobs().end());
  }

  absl::StatusOr<JobStatus> CancelJob(const std::string& job_id) override {
    CancelJobRequest req;
    req.set_job_id(job_id);
    CancelJobResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    if (absl::Status s = Check(stub_->CancelJob(&ctx, req, &resp)); !s.ok()) return s;
    return resp.status();
  }

  absl::StatusOr<GetClusterResponse> GetCluster() override {
    GetClusterResponse resp;
    grpc::ClientContext ctx;
    Prepare(&ctx, true);
    if (absl::Status s = Check(stub_->GetCluster(&ctx, GetClusterRequest(), &resp));
        !s.ok()) {
      return s;
    }
    return resp;
  }

  absl::StatusOr<JobStatus> WatchJob(const std::string& job_id,
                                     const std::function<void(const JobStatus&)>& on_update,
                                     int max_reconnects) override {
    WatchJobRequest req;
    req.set_job_id(job_id);
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      Prepare(&ctx, false);
      std::unique_ptr<grpc::ClientReader<JobStatus>> reader = stub_->WatchJob(&ctx, req);
      JobStatus st;
      bool final_seen = false;
      JobStatus last;
      while (reader->Read(&st)) {
        on_update(st);
        last = st;
        if (IsFinal(st.state())) final_seen = true;
      }
      absl::Status s = Check(reader->Finish());
      if (final_seen) return last;
      if (s.ok()) {
        return absl::InternalError("the coordinator closed the watch before the job ended");
      }
      if (!absl::IsUnavailable(s) || attempt >= max_reconnects) return s;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }

 private:
  void Prepare(grpc::ClientContext* ctx, bool deadline) const {
    if (deadline) ctx->set_deadline(absl::ToChronoTime(absl::Now() + options_.timeout));
    for (const auto& [key, value] : options_.metadata) ctx->AddMetadata(key, value);
  }

  absl::Status Check(const grpc::Status& status) const {
    absl::Status s = FromGrpcStatus(status);
    if (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) {
      return absl::Status(s.code(), absl::StrCat("coordinator at ", options_.address, ": ",
                                                 s.message()));
    }
    return s;
  }

  const CoordinatorClientOptions options_;
  const std::unique_ptr<CoordinatorService::Stub> stub_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorClient::Connect(
    const CoordinatorClientOptions& options) {
  if (absl::Status s = ParseHostPort(options.address, "--coordinator").status(); !s.ok()) {
    return s;
  }
  // Fast reconnects: `psctl watch` outlives a coordinator restart.
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      options.address,
      options.credentials != nullptr ? options.credentials : grpc::InsecureChannelCredentials(),
      FastReconnectChannelArgs());
  return std::unique_ptr<CoordinatorClient>(
      new GrpcCoordinatorClient(options, CoordinatorService::NewStub(channel)));
}

}  // namespace ps
