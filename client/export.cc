#include "client/export.h"

#include <algorithm>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "client/npz.h"
#include "common/grpc_status.h"
#include "common/packing.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/shard.grpc.pb.h"

namespace ps {
namespace {

constexpr uint64_t kPullChunk = uint64_t{1} << 20;  // Elements per Pull: 4 MiB.
constexpr uint64_t kMaxTableBytes = 0xFFFFFFFFull - 4096;

// Layer index of a weight table's name, or -1.
// The layer of a weight table: the worker's models name them "softmax.w" (layer 0)
// and "mlp.w<l>" (worker/model/model.h); a bare "w<l>" is taken too.
int WeightLayer(absl::string_view name) {
  const size_t dot = name.rfind('.');
  if (dot != absl::string_view::npos) name.remove_prefix(dot + 1);
  for (absl::string_view prefix : {"weights", "w_", "w", "W_", "W"}) {
    if (!absl::ConsumePrefix(&name, prefix)) continue;
    if (name.empty()) return 0;
    int layer = -1;
    if (absl::SimpleAtoi(name, &layer) && layer >= 0 &&
        std::all_of(name.begin(), name.end(), absl::ascii_isdigit)) {
      return layer;
    }
    return -1;
  }
  return -1;
}

struct ShardConn {
  uint32_t shard_id = 0;
  std::string address;
  std::unique_ptr<ShardService::Stub> stub;
  ListTablesResponse tables;
};

absl::Status ShardError(const ShardConn& shard, const grpc::Status& status,
                        absl::string_view what) {
  const absl::Status s = FromGrpcStatus(status);
  return absl::Status(s.code(), absl::StrCat("shard ", shard.shard_id, " at ", shard.address,
                                             ": ", what, ": ", s.message()));
}

}  // namespace

std::vector<uint64_t> ExportShape(const JobSpec& spec, const TableSpec& table) {
  const std::vector<uint64_t> flat = {table.size()};
  std::vector<uint64_t> dims = {spec.data().num_features()};
  if (spec.model().has_softmax()) {
    dims.push_back(spec.data().num_classes());
  } else if (spec.model().has_mlp()) {
    for (uint32_t h : spec.model().mlp().hidden()) dims.push_back(h);
    dims.push_back(spec.model().mlp().head() == ModelSpec::Mlp::SIGMOID
                       ? 1
                       : spec.data().num_classes());
  } else {
    return flat;
  }
  const int layer = WeightLayer(table.name());
  if (layer < 0 || static_cast<size_t>(layer) + 1 >= dims.size()) return flat;
  const uint64_t in = dims[layer], out = dims[layer + 1];
  if (in * out != table.size()) return flat;
  return {in, out};
}

absl::StatusOr<std::vector<ExportedTable>> ExportJob(CoordinatorClient* client,
                                                     const std::string& job_id,
                                                     const std::string& out_path) {
  absl::StatusOr<JobStatus> job = client->GetJob(job_id);
  if (!job.ok()) return job.status();
  absl::StatusOr<GetClusterResponse> cluster = client->GetCluster();
  if (!cluster.ok()) return cluster.status();

  // One shard per id, the healthy member first.
  std::vector<ShardConn> shards(cluster->num_shards());
  std::vector<bool> found(cluster->num_shards(), false), healthy(cluster->num_shards(), false);
  for (const Member& m : cluster->members()) {
    if (m.role() != SHARD || m.shard_id() >= shards.size()) continue;
    if (found[m.shard_id()] && (healthy[m.shard_id()] || !m.healthy())) continue;
    found[m.shard_id()] = true;
    healthy[m.shard_id()] = m.healthy();
    shards[m.shard_id()].shard_id = m.shard_id();
    shards[m.shard_id()].address = m.address();
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  for (uint32_t s = 0; s < shards.size(); ++s) {
    if (!found[s]) {
      return absl::UnavailableError(
          absl::StrCat("shard ", s, " is not registered with the coordinator"));
    }
    std::shared_ptr<grpc::ChannelCredentials> creds = client->credentials();
    shards[s].stub = ShardService::NewStub(grpc::CreateCustomChannel(
        shards[s].address, creds != nullptr ? creds : grpc::InsecureChannelCredentials(), args));
    grpc::ClientContext ctx;
    // A shard that is restarting (its address registered, nothing listening yet) is
    // waited for, up to the deadline, instead of failing the export at once.
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    ListTablesRequest req;
    req.set_job_id(job_id);
    if (grpc::Status st = shards[s].stub->ListTables(&ctx, req, &shards[s].tables); !st.ok()) {
      return ShardError(shards[s], st, "ListTables");
    }
    const ListTablesResponse& t = shards[s].tables;
    if (t.local_begin_size() != t.tables_size() || t.local_count_size() != t.tables_size()) {
      return absl::DataLossError(absl::StrCat("shard ", s, ": ListTables gave ",
                                              t.tables_size(), " tables but ",
                                              t.local_begin_size(), " ranges"));
    }
  }
  if (shards.empty()) return absl::UnavailableError("the cluster has no shards");

  std::map<std::string, TableSpec> specs;  // By name: the archive's order.
  for (const TableSpec& t : shards[0].tables.tables()) specs[t.name()] = t;

  absl::StatusOr<std::unique_ptr<NpzWriter>> npz = NpzWriter::Create(out_path);
  if (!npz.ok()) return npz.status();
  std::vector<ExportedTable> out;
  for (const auto& [name, spec] : specs) {
    ExportedTable entry;
    entry.name = name;
    if (spec.kind() != TableSpec::DENSE) {
      entry.note = "sparse table skipped: the shards cannot list its keys yet";
      out.push_back(std::move(entry));
      continue;
    }
    if (spec.size() * sizeof(float) > kMaxTableBytes) {
      return absl::OutOfRangeError(absl::StrCat("table ", name, " has ", spec.size(),
                                                " elements: more than an .npz can hold"));
    }
    std::vector<float> values(spec.size());
    std::vector<std::pair<uint64_t, uint64_t>> parts;  // [begin, end) per shard.
    for (ShardConn& shard : shards) {
      const ListTablesResponse& t = shard.tables;
      int idx = -1;
      for (int i = 0; i < t.tables_size(); ++i) {
        if (t.tables(i).name() == name) idx = i;
      }
      if (idx < 0) continue;
      const uint64_t begin = t.local_begin(idx), count = t.local_count(idx);
      if (begin > spec.size() || count > spec.size() - begin) {
        return absl::DataLossError(absl::StrCat("shard ", shard.shard_id, " holds [", begin,
                                                ", +", count, ") of table ", name,
                                                " of size ", spec.size()));
      }
      for (uint64_t at = begin; at < begin + count; at += kPullChunk) {
        const uint64_t n = std::min(kPullChunk, begin + count - at);
        PullRequest req;
        req.set_job_id(job_id);
        req.set_no_wait(true);
        Slice* slice = req.add_slices();
        slice->set_table(name);
        slice->set_begin(at);
        slice->set_count(n);
        PullResponse resp;
        grpc::ClientContext ctx;
        ctx.set_wait_for_ready(true);
        ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
        if (grpc::Status st = shard.stub->Pull(&ctx, req, &resp); !st.ok()) {
          return ShardError(shard, st, absl::StrCat("Pull of ", name));
        }
        if (absl::Status s = UnpackFloatsInto(resp.values(),
                                              absl::MakeSpan(values).subspan(at, n),
                                              absl::StrCat("shard ", shard.shard_id, " pull of ",
                                                           name, ": values"));
            !s.ok()) {
          return absl::DataLossError(s.message());
        }
      }
      if (count > 0) parts.emplace_back(begin, begin + count);
    }
    // The parts must tile the table: no gap, no overlap.
    std::sort(parts.begin(), parts.end());
    uint64_t end = 0;
    for (const auto& [b, e] : parts) {
      if (b != end) break;
      end = e;
    }
    if (end != spec.size()) {
      return absl::DataLossError(absl::StrCat("the shards' parts of table ", name, " (size ",
                                              spec.size(), ") leave a gap or overlap at element ",
                                              end));
    }
    entry.shape = ExportShape(job->spec(), spec);
    if (absl::Status s = (*npz)->Add(name, entry.shape, values); !s.ok()) return s;
    out.push_back(std::move(entry));
  }
  if (absl::Status s = (*npz)->Close(); !s.ok()) return s;
  return out;
}

}  // namespace ps
