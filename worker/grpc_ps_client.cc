#include "worker/grpc_ps_client.h"

#include <algorithm>
#include <functional>
#include <limits>
#include <queue>
#include <type_traits>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/channel_args.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/status.h"
#include "common/sync.h"
#include "grpcpp/grpcpp.h"

namespace ps {

// One RPC of a batch; the batch issues, retries and collects it.
class RpcCall {
 public:
  explicit RpcCall(uint32_t shard) : shard_(shard) {}
  virtual ~RpcCall() = default;
  RpcCall(const RpcCall&) = delete;
  RpcCall& operator=(const RpcCall&) = delete;

  uint32_t shard() const { return shard_; }

  // Starts one attempt; `done` runs on a gRPC thread (or inline on failure to send).
  virtual void Issue(const GrpcPsClient::Channel& channel, grpc::ClientContext* ctx,
                     std::function<void(grpc::Status)> done) = 0;
  // Runs on the completing gRPC thread after a successful attempt; an error fails the
  // call without retry.
  virtual absl::Status OnOk() = 0;
  virtual void ClearResponse() = 0;

  // Owned by the batch's caller thread, except `status` and `retryable`, which the
  // completion writes before it hands the call back under the batch's mutex.
  size_t index = 0;
  int attempts = 0;
  bool in_flight = false;
  int waiting = 0;                  // Calls that must succeed before this one starts.
  std::vector<size_t> dependents;   // Calls waiting for this one. Set before it starts.
  std::unique_ptr<grpc::ClientContext> ctx;
  absl::Status status;
  bool retryable = false;

 private:
  const uint32_t shard_;
};

namespace {

// Whether a failed attempt is worth repeating unchanged. RESOURCE_EXHAUSTED is retried
// only when the transport raised it (flow control, resource quota): the shard's memory
// budget and the message size limits will not change on a retry.
bool IsRetryable(const grpc::Status& status) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return true;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return !absl::StrContains(status.error_message(), "budget") &&
             !absl::StrContains(status.error_message(), "larger than max");
    default:
      return false;
  }
}

template <typename Req, typename Resp>
class UnaryCall final : public RpcCall {
 public:
  using IssueFn = void (*)(ShardService::Stub*, grpc::ClientContext*, const Req*, Resp*,
                           std::function<void(grpc::Status)>);

  UnaryCall(uint32_t shard, IssueFn issue) : RpcCall(shard), issue_(issue) {}

  void Issue(const GrpcPsClient::Channel& channel, grpc::ClientContext* ctx,
             std::function<void(grpc::Status)> done) override {
    issue_(channel.stub.get(), ctx, &request, &response, std::move(done));
  }
  absl::Status OnOk() override { return absl::OkStatus(); }
  void ClearResponse() override { response.Clear(); }

  Req request;
  Resp response;

 private:
  const IssueFn issue_;
};

// A call of the tensor-carrying methods, Pull and Push, as bytes (common/wire.h): the
// request is built into a ByteBuffer without copying the tensor again, and the
// response is read where it lies.
class RawCall final : public RpcCall {
 public:
  RawCall(uint32_t shard, const char* method) : RpcCall(shard), method_(method) {}

  void Issue(const GrpcPsClient::Channel& channel, grpc::ClientContext* ctx,
             std::function<void(grpc::Status)> done) override {
    channel.generic->UnaryCall(ctx, method_, grpc::StubOptions(), &request, &response,
                               std::move(done));
  }
  absl::Status OnOk() override { return on_ok ? on_ok(response) : absl::OkStatus(); }
  void ClearResponse() override { response.Clear(); }

  grpc::ByteBuffer request;
  grpc::ByteBuffer response;
  std::function<absl::Status(const grpc::ByteBuffer&)> on_ok;  // Optional.

 private:
  const std::string method_;
};

#define PS_ISSUE_FN(Method, Req, Resp)                                                     \
  +[](ShardService::Stub* stub, grpc::ClientContext* ctx, const Req* req, Resp* resp,      \
      std::function<void(grpc::Status)> done) {                                            \
    stub->async()->Method(ctx, req, resp, std::move(done));                                \
  }

// The tensor-carrying methods, called as bytes, and their `values` fields.
constexpr char kPullMethod[] = "/ps.ShardService/Pull";
constexpr char kPushMethod[] = "/ps.ShardService/Push";
constexpr char kPushPullMethod[] = "/ps.ShardService/PushPull";
constexpr uint32_t kPullValuesField = PullResponse::kValuesFieldNumber;
constexpr uint32_t kPushValuesField = PushRequest::kValuesFieldNumber;

void FillSlices(const PlanPart& part, absl::Span<const DenseRef> dense,
                absl::Span<const SparseRef> sparse,
                google::protobuf::RepeatedPtrField<Slice>* out) {
  out->Reserve(static_cast<int>(part.slices.size()));
  for (const PlanSlice& s : part.slices) {
    Slice* slice = out->Add();
    slice->set_table(SliceTable(s, dense, sparse));
    if (s.sparse) {
      std::string* keys = slice->mutable_keys();
      keys->reserve(s.count * sizeof(uint64_t));
      AppendSliceKeys(s, sparse, keys);
    } else {
      slice->set_begin(s.begin);
      slice->set_count(s.count);
    }
  }
}

// Reads a pull's (or a PushPull's) response for `part` into the caller's buffers: the
// values are copied from the received slices straight there; only the small fields are
// parsed by protobuf. `clock`, when given, gets the clock the shard reported.
absl::Status ReadPulled(const grpc::ByteBuffer& resp, const PlanPart& part,
                        absl::Span<const DenseRef> dense, absl::Span<const SparseRef> sparse,
                        uint64_t* clock) {
  PullResponse head;
  wire::ByteViews values;
  if (absl::Status s = wire::SplitBytesField(resp, kPullValuesField, &head, &values); !s.ok()) {
    return absl::InternalError(absl::StrCat("pull response: ", s.message()));
  }
  if (clock != nullptr) *clock = head.clock();
  wire::ByteViews::Reader reader(values);  // ScatterValuesFrom reads in order.
  return ScatterValuesFrom(
      part, values.size(), [&reader](size_t, size_t n, char* dst) { reader.Read(n, dst); },
      dense, sparse);
}

}  // namespace

// Pull parts that ride on push parts as PushPull calls: for each shard s, pull parts
// 0 .. count[s]-1 of `plan` go with push parts of the same numbers.
struct GrpcPsClient::PullHalves {
  const Plan* plan = nullptr;
  absl::Span<const DenseRef> dense;
  absl::Span<const SparseRef> sparse;
  std::vector<size_t> count;  // One per shard.

  size_t On(uint32_t shard) const { return count[shard]; }
};

// The RPCs of one client call: issued at once, awaited by the calling thread, retried
// with backoff when the transport failed them. The first error that is not retried
// cancels the others; Run returns once every issued RPC has completed, so nothing
// touches the caller's buffers afterwards.
class GrpcPsClient::Batch {
 public:
  explicit Batch(GrpcPsClient* client) : client_(client), shared_(std::make_shared<Shared>()) {}

  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  ~Batch() {
    // Run() always drains; this covers a batch abandoned before Run().
    if (in_flight_ > 0) {
      absl::Status ignored = Run();
      (void)ignored;
    }
  }

  // Adds an RPC to `shard`; the caller fills its request, then calls Start (to overlap
  // building later requests with sending this one) or leaves it to Run.
  template <typename Req, typename Resp>
  UnaryCall<Req, Resp>* Add(uint32_t shard, typename UnaryCall<Req, Resp>::IssueFn issue) {
    return Keep(std::make_unique<UnaryCall<Req, Resp>>(shard, issue));
  }
  RawCall* AddRaw(uint32_t shard, const char* method) {
    return Keep(std::make_unique<RawCall>(shard, method));
  }

  void Start(RpcCall* call) {
    if (call->attempts == 0 && call->waiting == 0) Issue(call);
  }

  // `call` is issued once `before` has succeeded. Neither may have been started yet
  // (a completion reads `dependents`).
  void After(RpcCall* call, RpcCall* before) {
    ++call->waiting;
    before->dependents.push_back(call->index);
  }

  // Issues what was not started and waits for everything. OK when every RPC
  // succeeded; else the first error that was not retried, naming the shard.
  absl::Status Run() {
    for (const auto& call : calls_) Start(call.get());
    using Retry = std::pair<absl::Time, size_t>;
    std::priority_queue<Retry, std::vector<Retry>, std::greater<Retry>> retries;
    absl::Status fatal;
    while (in_flight_ > 0 || (!retries.empty() && fatal.ok())) {
      if (fatal.ok()) {
        const absl::Time now = absl::Now();
        while (!retries.empty() && retries.top().first <= now) {
          Issue(calls_[retries.top().second].get());
          retries.pop();
        }
      }
      const absl::Time wake =
          retries.empty() || !fatal.ok() ? absl::InfiniteFuture() : retries.top().first;
      if (in_flight_ == 0) {
        absl::SleepFor(wake - absl::Now());
        continue;
      }
      std::vector<size_t> finished;
      {
        Shared& sh = *shared_;
        MutexLock lock(&sh.mu);
        sh.expected = in_flight_;
        while (!sh.ShouldWake()) {
          if (wake == absl::InfiniteFuture()) {
            sh.cv.Wait(&sh.mu);
            continue;
          }
          const absl::Duration left = wake - absl::Now();
          if (left <= absl::ZeroDuration()) break;  // A retry is due.
          sh.cv.WaitWithTimeout(&sh.mu, left);
        }
        finished.swap(sh.finished);
        sh.failed = false;
        sh.nudged = false;
      }
      for (size_t index : finished) {
        RpcCall* call = calls_[index].get();
        call->in_flight = false;
        --in_flight_;
        if (call->status.ok() && fatal.ok()) {
          for (size_t d : call->dependents) {
            if (--calls_[d]->waiting == 0) Issue(calls_[d].get());
          }
        }
        if (call->status.ok() || !fatal.ok()) continue;
        if (call->retryable && call->attempts < client_->options_.max_attempts) {
          retries.emplace(absl::Now() + Backoff(call->attempts), index);
          continue;
        }
        fatal = Describe(*call);
        for (const auto& other : calls_) {
          if (other->in_flight) other->ctx->TryCancel();
        }
      }
    }
    return fatal;
  }

 private:
  // What the completions share with the caller's thread; held by both, so whichever
  // lets go last frees it. `mu` (common/sync.h, which ThreadSanitizer sees, unlike
  // Debian's absl::Mutex) orders the completions' writes (responses, statuses, the
  // caller's buffers) before the caller reads them.
  struct Shared {
    Mutex mu;
    CondVar cv;
    std::vector<size_t> finished ABSL_GUARDED_BY(mu);  // Completed, not yet collected.
    bool failed ABSL_GUARDED_BY(mu) = false;            // One of them failed.
    bool nudged ABSL_GUARDED_BY(mu) = false;            // One that others wait for finished.
    size_t expected ABSL_GUARDED_BY(mu) = 0;            // In flight when the caller waits.

    bool ShouldWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return failed || nudged || finished.size() >= expected;
    }
  };

  template <typename Call>
  Call* Keep(std::unique_ptr<Call> call) {
    call->index = calls_.size();
    Call* raw = call.get();
    calls_.push_back(std::move(call));
    return raw;
  }

  absl::Duration Backoff(int attempts) const {
    absl::Duration d = client_->options_.initial_backoff;
    for (int i = 1; i < attempts && d < client_->options_.max_backoff; ++i) d *= 2;
    return std::min(d, client_->options_.max_backoff);
  }

  absl::Status Describe(const RpcCall& call) const {
    const uint32_t s = call.shard();
    std::string message = absl::StrCat("shard ", s, " (", client_->shards_[s]->address,
                                       "): ", call.status.message());
    if (call.attempts > 1) absl::StrAppend(&message, " (after ", call.attempts, " attempts)");
    return absl::Status(call.status.code(), message);
  }

  void Issue(RpcCall* call) {
    ++call->attempts;
    call->ctx = std::make_unique<grpc::ClientContext>();
    call->ctx->set_deadline(absl::ToChronoTime(absl::Now() + client_->options_.rpc_timeout));
    if (call->attempts > 1) call->ClearResponse();
    call->status = absl::OkStatus();
    call->retryable = false;
    call->in_flight = true;
    ++in_flight_;
    std::shared_ptr<Shared> shared = shared_;
    call->Issue(client_->NextChannel(call->shard()), call->ctx.get(),
                [shared = std::move(shared), call](grpc::Status status) {
                  if (status.ok()) {
                    call->status = call->OnOk();
                  } else {
                    call->status = FromGrpcStatus(status);
                    call->retryable = IsRetryable(status);
                  }
                  bool wake = false;
                  {
                    MutexLock lock(&shared->mu);
                    shared->finished.push_back(call->index);
                    if (!call->status.ok()) shared->failed = true;
                    if (!call->dependents.empty()) shared->nudged = true;
                    wake = shared->ShouldWake();
                  }
                  if (wake) shared->cv.SignalAll();
                });
  }

  GrpcPsClient* const client_;  // Not owned.
  const std::shared_ptr<Shared> shared_;
  // The calls; the completions reach them by pointer, never through this vector.
  std::vector<std::unique_ptr<RpcCall>> calls_;
  size_t in_flight_ = 0;
};

absl::StatusOr<std::unique_ptr<GrpcPsClient>> GrpcPsClient::Connect(
    std::vector<std::string> shard_addresses, Options options) {
  if (shard_addresses.empty()) {
    return absl::InvalidArgumentError("shard_addresses: at least one shard is needed");
  }
  if (shard_addresses.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard_addresses: at most 4096 shards, got ", shard_addresses.size()));
  }
  if (options.channels_per_shard < 1 || options.channels_per_shard > 64) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.channels_per_shard: must be 1 to 64, got ", options.channels_per_shard));
  }
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.max_attempts: must be >= 1, got ", options.max_attempts));
  }
  if (options.chunk_bytes < 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("options.chunk_bytes: must be >= 1024, got ", options.chunk_bytes));
  }
  if (options.rpc_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("options.rpc_timeout: must be > 0");
  }
  if (options.push_pull_retry < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("options.push_pull_retry: must be >= 0");
  }
  if (options.pooled_messages < 0) {
    return absl::InvalidArgumentError("options.pooled_messages: must be >= 0");
  }
  if (options.max_message_bytes < 1 << 20) {
    return absl::InvalidArgumentError("options.max_message_bytes: must be >= 1 MiB");
  }
  if (options.chunk_bytes > static_cast<uint64_t>(options.max_message_bytes) / 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "options.chunk_bytes: ", options.chunk_bytes,
        " must be at most half of options.max_message_bytes ", options.max_message_bytes));
  }
  std::vector<std::unique_ptr<Shard>> shards;
  for (size_t i = 0; i < shard_addresses.size(); ++i) {
    if (shard_addresses[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("shard_addresses[", i, "]: empty"));
    }
    auto shard = std::make_unique<Shard>();
    shard->address = std::move(shard_addresses[i]);
    for (int c = 0; c < options.channels_per_shard; ++c) {
      grpc::ChannelArguments args = FastReconnectChannelArgs();  // Shards restart.
      args.SetMaxReceiveMessageSize(options.max_message_bytes);
      args.SetMaxSendMessageSize(options.max_message_bytes);
      // A channel of its own subchannel pool (and a distinct argument, which is part of
      // the subchannel key) is its own TCP connection: parts spread over connections.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("ps.channel_index", c);
      std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
          shard->address,
          options.credentials != nullptr ? options.credentials : grpc::InsecureChannelCredentials(),
          args);
      shard->channels.push_back(
          Channel{ShardService::NewStub(channel), std::make_unique<grpc::GenericStub>(channel)});
    }
    shards.push_back(std::move(shard));
  }
  return std::unique_ptr<GrpcPsClient>(new GrpcPsClient(std::move(shards), std::move(options)));
}

GrpcPsClient::GrpcPsClient(std::vector<std::unique_ptr<Shard>> shards, Options options)
    : options_(std::move(options)),
      shards_(std::move(shards)),
      buffers_(std::make_shared<wire::BufferPool>(static_cast<size_t>(options_.pooled_messages),
                                                  options_.chunk_bytes)) {}

GrpcPsClient::~GrpcPsClient() = default;

bool GrpcPsClient::MayPushPull(uint32_t shard) const {
  const int64_t refused_ms = shards_[shard]->push_pull_refused_ms.load(std::memory_order_relaxed);
  return refused_ms == 0 ||
         absl::FromUnixMillis(refused_ms) + options_.push_pull_retry <= absl::Now();
}

const GrpcPsClient::Channel& GrpcPsClient::NextChannel(uint32_t shard) {
  Shard& s = *shards_[shard];
  const uint32_t i = s.next.fetch_add(1, std::memory_order_relaxed);
  return s.channels[i % s.channels.size()];
}

absl::StatusOr<uint64_t> GrpcPsClient::SetupJob(const ShardJobConfig& config,
                                                const std::vector<TableSpec>& tables) {
  ShardJobConfig cfg = config;
  if (cfg.num_shards() == 0) cfg.set_num_shards(num_shards());
  if (cfg.num_shards() != num_shards()) {
    return absl::InvalidArgumentError(absl::StrCat("config.num_shards: ", cfg.num_shards(),
                                                   " differs from the client's ", num_shards(),
                                                   " shards"));
  }
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route,
                      JobRoute::Create(cfg.job_id(), num_shards(), tables,
                                       cfg.consistency().mode(), cfg.bf16_gradients()));
  uint64_t clock = 0;
  {
    Batch batch(this);
    std::vector<UnaryCall<CreateJobRequest, CreateJobResponse>*> calls;
    for (uint32_t s = 0; s < num_shards(); ++s) {
      auto* call = batch.Add<CreateJobRequest, CreateJobResponse>(
          s, PS_ISSUE_FN(CreateJob, CreateJobRequest, CreateJobResponse));
      *call->request.mutable_config() = cfg;
      calls.push_back(call);
    }
    PS_RETURN_IF_ERROR(batch.Run());
    for (const auto* call : calls) clock = std::max(clock, call->response.clock());
  }
  if (!tables.empty()) {
    Batch batch(this);
    for (const TableSpec& table : tables) {
      for (uint32_t s = 0; s < num_shards(); ++s) {
        auto* call = batch.Add<CreateTableRequest, CreateTableResponse>(
            s, PS_ISSUE_FN(CreateTable, CreateTableRequest, CreateTableResponse));
        call->request.set_job_id(cfg.job_id());
        *call->request.mutable_table() = table;
      }
    }
    PS_RETURN_IF_ERROR(batch.Run());
  }
  routes_.Put(std::move(route));
  return clock;
}

absl::Status GrpcPsClient::AttachJob(const std::string& job_id) {
  Batch batch(this);
  std::vector<UnaryCall<ListTablesRequest, ListTablesResponse>*> calls;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<ListTablesRequest, ListTablesResponse>(
        s, PS_ISSUE_FN(ListTables, ListTablesRequest, ListTablesResponse));
    call->request.set_job_id(job_id);
    calls.push_back(call);
  }
  PS_RETURN_IF_ERROR(batch.Run());
  const ListTablesResponse& first = calls[0]->response;
  if (first.config().num_shards() != num_shards()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "job '", job_id, "' is placed over ", first.config().num_shards(),
        " shards; this client has ", num_shards()));
  }
  auto names = [](const ListTablesResponse& r) {
    std::vector<std::string> out;
    for (const TableSpec& t : r.tables()) out.push_back(t.name());
    std::sort(out.begin(), out.end());
    return out;
  };
  const std::vector<std::string> expected = names(first);
  for (uint32_t s = 1; s < num_shards(); ++s) {
    const std::vector<std::string> got = names(calls[s]->response);
    if (got != expected) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", s, " (", address(s), "): job '", job_id, "' has tables [",
          absl::StrJoin(got, ", "), "], shard 0 has [", absl::StrJoin(expected, ", "), "]"));
    }
  }
  std::vector<TableSpec> tables(first.tables().begin(), first.tables().end());
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route,
                      JobRoute::Create(job_id, num_shards(), tables,
                                       first.config().consistency().mode(),
                                       first.config().bf16_gradients()));
  routes_.Put(std::move(route));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const JobRoute>> GrpcPsClient::RouteOf(const std::string& job_id) {
  std::shared_ptr<const JobRoute> route = routes_.Find(job_id);
  if (route != nullptr) return route;
  PS_RETURN_IF_ERROR(AttachJob(job_id));
  route = routes_.Find(job_id);
  if (route == nullptr) return absl::InternalError("route vanished after AttachJob");
  return route;
}

namespace {

}  // namespace

absl::StatusOr<Plan> GrpcPsClient::PlanFor(const std::string& job_id,
                                            absl::Span<const DenseRef> dense,
                                            absl::Span<const SparseRef> sparse, Plan::Kind kind,
                                            std::shared_ptr<const JobRoute>* route_out) {
  PS_ASSIGN_OR_RETURN(std::shared_ptr<const JobRoute> route, RouteOf(job_id));
  absl::StatusOr<Plan> plan = Plan::Build(*route, dense, sparse, options_.chunk_bytes, kind);
  if (!plan.ok() && absl::IsNotFound(plan.status()) && AttachJob(job_id).ok()) {
    // A table unknown to the cached route: learn the job's tables again once (another
    // worker may have created it since).
    if (std::shared_ptr<const JobRoute> fresh = routes_.Find(job_id); fresh != nullptr) {
      route = std::move(fresh);
      plan = Plan::Build(*route, dense, sparse, options_.chunk_bytes, kind);
    }
  }
  if (plan.ok() && route_out != nullptr) *route_out = std::move(route);
  return plan;
}

absl::Status GrpcPsClient::AddPulls(Batch* batch, const Plan& plan, const std::string& job_id,
                                    uint32_t rank, uint64_t clock, bool no_wait,
                                    absl::Span<const DenseRef> dense,
                                    absl::Span<const SparseRef> sparse,
                                    std::vector<uint64_t>* clocks,
                                    std::vector<std::vector<RpcCall*>>* by_shard,
                                    const PullHalves* merged) {
  clocks->assign(plan.num_requests(), 0);
  by_shard->assign(plan.parts().size(), {});
  size_t next = 0;
  for (uint32_t s = 0; s < plan.parts().size(); ++s) {
    const size_t skip = merged != nullptr ? merged->On(s) : 0;
    for (size_t p = skip; p < plan.parts()[s].size(); ++p) {
      const PlanPart& part = plan.parts()[s][p];
      RawCall* call = batch->AddRaw(s, kPullMethod);
      PullRequest req;
      req.set_job_id(job_id);
      req.set_rank(rank);
      req.set_clock(clock);
      req.set_no_wait(no_wait);
      FillSlices(part, dense, sparse, req.mutable_slices());
      bool own = false;
      if (grpc::Status st = grpc::SerializationTraits<PullRequest>::Serialize(req, &call->request,
                                                                             &own);
          !st.ok()) {
        return FromGrpcStatus(st);
      }
      uint64_t* part_clock = &(*clocks)[next++];
      call->on_ok = [&part, dense, sparse, part_clock](const grpc::ByteBuffer& resp) {
        return ReadPulled(resp, part, dense, sparse, part_clock);
      };
      (*by_shard)[s].push_back(call);
    }
  }
  return absl::OkStatus();
}

void GrpcPsClient::AddPushes(Batch* batch, const Plan& plan, const std::string& job_id,
                             uint32_t rank, uint64_t clock, absl::Span<const DenseRef> dense,
                             absl::Span<const SparseRef> sparse, ValueEncoding encoding,
                             bool start, std::vector<std::vector<RpcCall*>>* by_shard,
                             const PullHalves* pulls) {
  const bool bf16 = encoding == ValueEncoding::kBf16;
  by_shard->assign(plan.parts().size(), {});
  for (uint32_t s = 0; s < plan.parts().size(); ++s) {
    const std::vector<PlanPart>& parts = plan.parts()[s];
    const size_t with_pull = pulls != nullptr ? pulls->On(s) : 0;
    for (uint32_t p = 0; p < parts.size(); ++p) {
      const PlanPart* pull = p < with_pull ? &pulls->plan->parts()[s][p] : nullptr;
      RawCall* call = batch->AddRaw(s, pull != nullptr ? kPushPullMethod : kPushMethod);
      PushRequest header;  // Every field but `values`, which follows it.
      header.set_job_id(job_id);
      header.set_rank(rank);
      header.set_clock(clock);
      header.set_part(p);
      header.set_num_parts(static_cast<uint32_t>(parts.size()));
      FillSlices(parts[p], dense, sparse, header.mutable_slices());
      if (bf16) header.set_encoding(BFLOAT16);
      if (pull != nullptr) {
        FillSlices(*pull, pulls->dense, pulls->sparse, header.mutable_pull_slices());
        call->on_ok = [pull, d = pulls->dense, sp = pulls->sparse](const grpc::ByteBuffer& resp) {
          return ReadPulled(resp, *pull, d, sp, nullptr);
        };
      }
      // The fields (a sparse part's keys among them) and the gradients gathered once
      // into a reused buffer that the slice owns: gRPC may hold a slice past the end of
      // its call (gRPC 1.51 keeps a write stuck on a stopped peer's full socket even
      // after the connection is closed), so the caller's own memory, which is theirs
      // again when the call returns, is not lent. Dense gradients in a caller's
      // LendableFloats are the exception: lent, with their loans held by the slices
      // (DenseRef::lendable).
      std::unique_ptr<std::string> message = buffers_->Get();
      header.AppendToString(message.get());
      wire::AppendBytesFieldHeader(kPushValuesField,
                                   parts[p].floats * (bf16 ? sizeof(uint16_t) : sizeof(float)),
                                   message.get());
      std::vector<LentBytes> lent;
      GatherValues(parts[p], dense, sparse, message.get(), encoding, &lent);
      std::vector<grpc::Slice> slices;
      buffers_->AppendSlices(std::move(message), &lent, &slices);
      call->request = grpc::ByteBuffer(slices.data(), slices.size());
      if (start) batch->Start(call);  // Sends while the next part is built.
      (*by_shard)[s].push_back(call);
    }
  }
}

absl::Status GrpcPsClient::PullPlanned(const std::string& job_id, uint32_t rank, uint64_t clock,
                                       bool no_wait, absl::Span<const DenseRef> dense,
                                       absl::Span<const SparseRef> sparse, uint64_t* min_clock) {
  PS_ASSIGN_OR_RETURN(Plan plan, PlanFor(job_id, dense, sparse,
                                         no_wait ? Plan::Kind::kRead : Plan::Kind::kPull));
  Batch batch(this);
  std::vector<uint64_t> clocks;
  std::vector<std::vector<RpcCall*>> calls;
  PS_RETURN_IF_ERROR(
      AddPulls(&batch, plan, job_id, rank, clock, no_wait, dense, sparse, &clocks, &calls));
  PS_RETURN_IF_ERROR(batch.Run());
  if (min_clock != nullptr) {
    *min_clock = clocks.empty() ? 0 : *std::min_element(clocks.begin(), clocks.end());
  }
  return absl::OkStatus();
}

absl::Status GrpcPsClient::Pull(const std::string& job_id, uint32_t rank, uint64_t clock,
                                absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse) {
  return PullPlanned(job_id, rank, clock, /*no_wait=*/false, dense, sparse, nullptr);
}

absl::StatusOr<uint64_t> GrpcPsClient::Read(const std::string& job_id,
                                             absl::Span<const DenseRef> dense,
                                             absl::Span<const SparseRef> sparse) {
  uint64_t clock = 0;
  PS_RETURN_IF_ERROR(PullPlanned(job_id, 0, 0, /*no_wait=*/true, dense, sparse, &clock));
  return clock;
}

absl::Status GrpcPsClient::Push(const std::string& job_id, uint32_t rank, uint64_t clock,
                                absl::Span<const DenseRef> dense,
                                absl::Span<const SparseRef> sparse) {
  std::shared_ptr<const JobRoute> route;
  PS_ASSIGN_OR_RETURN(Plan plan, PlanFor(job_id, dense, sparse, Plan::Kind::kPush, &route));
  Batch batch(this);
  std::vector<std::vector<RpcCall*>> calls;
  AddPushes(&batch, plan, job_id, rank, clock, dense, sparse, route->gradient_encoding(),
            /*start=*/true, &calls);
  return batch.Run();
}

namespace {

// Whether a pull part reads exactly what a push part wrote: the same dense ranges of
// the same tables, in the same order.
bool SameDenseRanges(const PlanPart& pull, absl::Span<const DenseRef> pull_dense,
                     const PlanPart& push, absl::Span<const DenseRef> push_dense) {
  if (pull.slices.size() != push.slices.size()) return false;
  for (size_t i = 0; i < pull.slices.size(); ++i) {
    const PlanSlice& a = pull.slices[i];
    const PlanSlice& b = push.slices[i];
    if (a.sparse || b.sparse || a.begin != b.begin || a.count != b.count ||
        pull_dense[a.ref].table != push_dense[b.ref].table) {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::Status GrpcPsClient::PushPull(const std::string& job_id, uint32_t rank, uint64_t clock,
                                    absl::Span<const DenseRef> push_dense,
                                    absl::Span<const SparseRef> push_sparse,
                                    absl::Span<const DenseRef> pull_dense,
                                    absl::Span<const SparseRef> pull_sparse) {
  std::vector<uint32_t> refused;
  absl::Status s =
      PushPullOnce(job_id, rank, clock, push_dense, push_sparse, pull_dense, pull_sparse, &refused);
  if (refused.empty()) return s;
  // Shards built before PushPull: their pushes and pulls go separately for a while. The
  // whole call is repeated; the pushes some shards took already are duplicates.
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  for (uint32_t shard : refused) {
    if (shards_[shard]->push_pull_refused_ms.exchange(now_ms) == 0) {
      PS_LOG(WARNING) << "shard " << shard << " (" << address(shard)
                      << ") does not serve PushPull; pushing to it and pulling from it in "
                         "separate calls, asking again every "
                      << absl::FormatDuration(options_.push_pull_retry);
    }
  }
  return PushPullOnce(job_id, rank, clock, push_dense, push_sparse, pull_dense, pull_sparse,
                      nullptr, refused);
}

absl::Status GrpcPsClient::PushPullOnce(const std::string& job_id, uint32_t rank, uint64_t clock,
                                        absl::Span<const DenseRef> push_dense,
                                        absl::Span<const SparseRef> push_sparse,
                                        absl::Span<const DenseRef> pull_dense,
                                        absl::Span<const SparseRef> pull_sparse,
                                        std::vector<uint32_t>* refused,
                                        absl::Span<const uint32_t> separate) {
  std::shared_ptr<const JobRoute> route;
  PS_ASSIGN_OR_RETURN(Plan push_plan,
                      PlanFor(job_id, push_dense, push_sparse, Plan::Kind::kPush, &route));
  PS_ASSIGN_OR_RETURN(Plan pull_plan,
                      PlanFor(job_id, pull_dense, pull_sparse, Plan::Kind::kPull));
  // Which pull parts ride on push parts (PushPull: one round trip for both).
  // SYNC: any pairing, as many as both have. The shard holds a pull of clock c + 1
  // until it has applied clock c, which takes every push part of c.
  // Otherwise a pull part must read after this worker's push to its ranges: it rides
  // on the push part that writes exactly its ranges, when every part of the shard has
  // one. Else it goes out alone once every push part of its shard was acknowledged.
  const bool sync = route->mode() == SYNC;
  const uint32_t shards = static_cast<uint32_t>(pull_plan.parts().size());
  PullHalves halves{&pull_plan, pull_dense, pull_sparse, std::vector<size_t>(shards, 0)};
  std::vector<bool> paired(shards, false);
  for (uint32_t s = 0; s < shards; ++s) {
    const std::vector<PlanPart>& pull_parts = pull_plan.parts()[s];
    const std::vector<PlanPart>& push_parts = push_plan.parts()[s];
    paired[s] = !sync && pull_parts.size() == push_parts.size() && [&] {
      for (size_t i = 0; i < pull_parts.size(); ++i) {
        if (!SameDenseRanges(pull_parts[i], pull_dense, push_parts[i], push_dense)) return false;
      }
      return true;
    }();
    if (MayPushPull(s) && std::find(separate.begin(), separate.end(), s) == separate.end()) {
      halves.count[s] = sync ? std::min(pull_parts.size(), push_parts.size())
                             : (paired[s] ? pull_parts.size() : 0);
    }
  }
  Batch batch(this);
  std::vector<std::vector<RpcCall*>> pushes, pulls;
  AddPushes(&batch, push_plan, job_id, rank, clock, push_dense, push_sparse,
            route->gradient_encoding(), /*start=*/false, &pushes, &halves);
  std::vector<uint64_t> clocks;
  PS_RETURN_IF_ERROR(AddPulls(&batch, pull_plan, job_id, rank, clock + 1, /*no_wait=*/false,
                              pull_dense, pull_sparse, &clocks, &pulls, &halves));
  // The pulls that go alone: SYNC, at once; otherwise after the push part of the same
  // ranges, or every push part of the shard (`pulls[s]` lists those not merged).
  for (uint32_t s = 0; s < shards && !sync; ++s) {
    const size_t first = halves.count[s];  // pulls[s][i] is pull part first + i.
    for (size_t i = 0; i < pulls[s].size(); ++i) {
      if (paired[s]) {
        batch.After(pulls[s][i], pushes[s][first + i]);
      } else {
        for (RpcCall* push : pushes[s]) batch.After(pulls[s][i], push);
      }
    }
  }
  // Starts the pushes, and the pulls that wait for none.
  const absl::Status status = batch.Run();
  for (uint32_t s = 0; s < shards; ++s) {
    if (halves.count[s] == 0) continue;
    const auto merged = absl::MakeConstSpan(pushes[s]).first(halves.count[s]);
    if (std::any_of(merged.begin(), merged.end(),
                    [](const RpcCall* c) { return absl::IsUnimplemented(c->status); })) {
      if (refused != nullptr) refused->push_back(s);
    } else if (shards_[s]->push_pull_refused_ms.load(std::memory_order_relaxed) != 0 &&
               std::any_of(merged.begin(), merged.end(),
                           [](const RpcCall* c) { return c->status.ok(); }) &&
               shards_[s]->push_pull_refused_ms.exchange(0) != 0) {
      PS_LOG(INFO) << "shard " << s << " (" << address(s) << ") serves PushPull again";
    }
  }
  return status;
}

absl::StatusOr<std::vector<ShardJobStats>> GrpcPsClient::GetStats(const std::string& job_id,
                                                                  bool with_digest) {
  Batch batch(this);
  std::vector<UnaryCall<GetStatsRequest, GetStatsResponse>*> calls;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<GetStatsRequest, GetStatsResponse>(
        s, PS_ISSUE_FN(GetStats, GetStatsRequest, GetStatsResponse));
    call->request.set_job_id(job_id);
    call->request.set_with_digest(with_digest);
    calls.push_back(call);
  }
  PS_RETURN_IF_ERROR(batch.Run());
  std::vector<ShardJobStats> out;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    const GetStatsResponse& resp = calls[s]->response;
    const JobStats* job = nullptr;
    for (const JobStats& j : resp.jobs()) {
      if (j.job_id() == job_id) job = &j;
    }
    if (job == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("shard ", s, " (", address(s), "): no stats of job '", job_id, "'"));
    }
    ShardJobStats st;
    st.shard = s;
    st.clock = job->clock();
    st.worker_clocks.assign(job->worker_clocks().begin(), job->worker_clocks().end());
    st.pushes_applied = job->pushes_applied();
    st.pushes_duplicate = job->pushes_duplicate();
    st.dense_elements = job->dense_elements();
    st.sparse_rows = job->sparse_rows();
    st.memory_bytes = job->memory_bytes();
    st.dense_copies_on_write = job->dense_copies_on_write();
    st.last_checkpoint_clock = job->last_checkpoint_clock();
    st.state_digest = job->state_digest();
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<std::vector<ShardCheckpoint>> GrpcPsClient::Checkpoint(const std::string& job_id) {
  Batch batch(this);
  std::vector<UnaryCall<CheckpointRequest, CheckpointResponse>*> calls;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<CheckpointRequest, CheckpointResponse>(
        s, PS_ISSUE_FN(Checkpoint, CheckpointRequest, CheckpointResponse));
    call->request.set_job_id(job_id);
    calls.push_back(call);
  }
  PS_RETURN_IF_ERROR(batch.Run());
  std::vector<ShardCheckpoint> out;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    const CheckpointResponse& r = calls[s]->response;
    out.push_back(ShardCheckpoint{s, r.clock(), r.bytes(), r.pause_us(), r.write_us()});
  }
  return out;
}

absl::Status GrpcPsClient::Restore(const std::string& job_id, uint64_t clock) {
  Batch batch(this);
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<RestoreRequest, RestoreResponse>(
        s, PS_ISSUE_FN(Restore, RestoreRequest, RestoreResponse));
    call->request.set_job_id(job_id);
    call->request.set_clock(clock);
  }
  return batch.Run();
}

absl::StatusOr<std::vector<std::vector<uint64_t>>> GrpcPsClient::ListCheckpoints(
    const std::string& job_id) {
  Batch batch(this);
  std::vector<UnaryCall<ListCheckpointsRequest, ListCheckpointsResponse>*> calls;
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<ListCheckpointsRequest, ListCheckpointsResponse>(
        s, PS_ISSUE_FN(ListCheckpoints, ListCheckpointsRequest, ListCheckpointsResponse));
    call->request.set_job_id(job_id);
    calls.push_back(call);
  }
  PS_RETURN_IF_ERROR(batch.Run());
  std::vector<std::vector<uint64_t>> out;
  for (const auto* call : calls) {
    out.emplace_back(call->response.clocks().begin(), call->response.clocks().end());
  }
  return out;
}

absl::Status GrpcPsClient::DropJob(const std::string& job_id, bool delete_checkpoints) {
  routes_.Erase(job_id);
  Batch batch(this);
  for (uint32_t s = 0; s < num_shards(); ++s) {
    auto* call = batch.Add<DropJobRequest, DropJobResponse>(
        s, PS_ISSUE_FN(DropJob, DropJobRequest, DropJobResponse));
    call->request.set_job_id(job_id);
    call->request.set_delete_checkpoints(delete_checkpoints);
  }
  return batch.Run();
}

}  // namespace ps
