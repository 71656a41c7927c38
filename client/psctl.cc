// psctl: the command-line client of the parameter-server cluster.
//
//   psctl submit JOB.textproto [--wait]   prints the job id as the last stdout line
//   psctl watch ID                        live progress, then a summary
//   psctl status ID [--json]              human text, or stable JSON (client/format.h)
//   psctl list [--json]                   every job
//   psctl cancel ID
//   psctl cluster [--json]                every shard and worker
//   psctl export ID --out FILE.npz        trained dense tables as NumPy arrays
//
// Exit codes (client/format.h): 0 ok / job SUCCEEDED, 1 usage error, 2 RPC or
// connection error, 3 job FAILED, 4 job CANCELLED, 5 bad spec, 6 not found.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "client/coordinator_client.h"
#include "client/export.h"
#include "client/format.h"
#include "common/auth.h"
#include "common/flags.h"
#include "common/tls.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

ABSL_FLAG(std::string, coordinator, "",
          "host:port of ps_coordinator. Default: $PS_COORDINATOR, else 127.0.0.1:7070.");
ABSL_FLAG(bool, wait, false, "submit: watch the job until it ends and exit by its result.");
ABSL_FLAG(bool, json, false,
          "status, list, cluster: print JSON for scripts (one object per job; keys are "
          "documented in client/format.h and kept stable).");
ABSL_FLAG(std::string, out, "", "export: the .npz file to write.");
ABSL_FLAG(int32_t, timeout_s, 30, "Deadline of each call, in seconds (watch has none).");

namespace ps {
namespace {

constexpr char kUsage[] =
    "the parameter-server cluster's command-line client.\n\n"
    "  psctl submit JOB.textproto [--wait]  submit a text-format JobSpec; prints the job id\n"
    "                                       as the last line of stdout. --wait: follow it\n"
    "                                       on stderr and exit by its result\n"
    "  psctl watch ID                       live progress (redrawn on a terminal, a line\n"
    "                                       per update otherwise), then a summary\n"
    "  psctl status ID [--json]             the job's status\n"
    "  psctl list [--json]                  every job, oldest first\n"
    "  psctl cancel ID                      cancel a pending or running job\n"
    "  psctl cluster [--json]               every shard and worker, health, load\n"
    "  psctl export ID --out FILE.npz       the trained dense tables as float32 NumPy\n"
    "                                       arrays (weight matrices w<i> shaped (in, out))\n\n"
    "--coordinator (default $PS_COORDINATOR, else 127.0.0.1:7070) picks the coordinator.\n"
    "--tls_ca/--tls_cert/--tls_key: TLS (mutual with a certificate) to the coordinator\n"
    "and the shards; --auth_token_file: the coordinator's bearer token.\n"
    "Data paths in a spec resolve under the coordinator's --data_root.\n\n"
    "Exit codes: 0 ok / job SUCCEEDED, 1 usage error, 2 RPC or connection error,\n"
    "3 job FAILED, 4 job CANCELLED, 5 bad spec (parse error or rejected by the\n"
    "coordinator), 6 job not found.";

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "psctl: %s\n", message.c_str());
  return code;
}

int FailStatus(const absl::Status& status) {
  return Fail(ExitCodeForStatus(status), status.ToString());
}

class ParseErrors final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors.push_back(absl::StrCat(line + 1, ":", column + 1, ": ", message));
  }
  std::vector<std::string> errors;
};

// Follows a job until it ends; progress goes to `out` (redrawn in place on a TTY).
int Follow(CoordinatorClient* client, const std::string& job_id, std::FILE* out) {
  const bool tty = ::isatty(::fileno(out)) != 0;
  ProgressMeter meter;
  bool drew = false;
  absl::StatusOr<JobStatus> last =
      client->WatchJob(job_id, [&](const JobStatus& status) {
        meter.Update(status, NowMs());
        const std::string line = meter.Line(status);
        if (tty) {
          std::fprintf(out, "\r%s\x1b[K", line.c_str());
        } else {
          std::fprintf(out, "%s\n", line.c_str());
        }
        std::fflush(out);
        drew = true;
      });
  if (tty && drew) std::fputc('\n', out);
  if (!last.ok()) return FailStatus(last.status());
  std::fputs(JobSummary(*last).c_str(), out);
  std::fflush(out);
  return ExitCodeForState(last->state());
}

int Submit(CoordinatorClient* client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Fail(kExitUsage, "usage: psctl submit JOB.textproto [--wait]");
  std::ifstream in(args[0]);
  if (!in) return Fail(kExitUsage, absl::StrCat("cannot read ", args[0]));
  std::stringstream text;
  text << in.rdbuf();
  JobSpec spec;
  google::protobuf::TextFormat::Parser parser;
  ParseErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(text.str(), &spec)) {
    return Fail(kExitBadSpec, absl::StrCat(args[0], ":", absl::StrJoin(errors.errors, "; ")));
  }
  absl::StatusOr<std::string> id = client->SubmitJob(spec);
  if (!id.ok()) {
    if (absl::IsInvalidArgument(id.status())) {
      return Fail(kExitBadSpec, absl::StrCat(args[0], ": ", id.status().message()));
    }
    return FailStatus(id.status());
  }
  std::printf("%s\n", id->c_str());
  std::fflush(stdout);
  if (!absl::GetFlag(FLAGS_wait)) return kExitOk;
  return Follow(client, *id, stderr);
}

int Status(CoordinatorClient* client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Fail(kExitUsage, "usage: psctl status ID [--json]");
  absl::StatusOr<JobStatus> st = client->GetJob(args[0]);
  if (!st.ok()) return FailStatus(st.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("%s\n", JobStatusJson(*st).c_str());
  } else {
    std::fputs(JobStatusText(*st, NowMs()).c_str(), stdout);
  }
  return kExitOk;
}

int List(CoordinatorClient* client, const std::vector<std::string>& args) {
  if (!args.empty()) return Fail(kExitUsage, "usage: psctl list [--json]");
  absl::StatusOr<std::vector<JobStatus>> jobs = client->ListJobs();
  if (!jobs.ok()) return FailStatus(jobs.status());
  if (absl::GetFlag(FLAGS_json)) {
    for (const JobStatus& st : *jobs) std::printf("%s\n", JobStatusJson(st).c_str());
  } else {
    std::fputs(JobsTable(*jobs, NowMs()).c_str(), stdout);
  }
  return kExitOk;
}

int Cancel(CoordinatorClient* client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Fail(kExitUsage, "usage: psctl cancel ID");
  absl::StatusOr<JobStatus> st = client->CancelJob(args[0]);
  if (!st.ok()) return FailStatus(st.status());
  std::printf("job %s %s\n", st->job_id().c_str(), JobState_Name(st->state()).c_str());
  return kExitOk;
}

int Cluster(CoordinatorClient* client, const std::vector<std::string>& args) {
  if (!args.empty()) return Fail(kExitUsage, "usage: psctl cluster [--json]");
  absl::StatusOr<GetClusterResponse> cluster = client->GetCluster();
  if (!cluster.ok()) return FailStatus(cluster.status());
  if (absl::GetFlag(FLAGS_json)) {
    for (const Member& m : cluster->members()) std::printf("%s\n", MemberJson(m).c_str());
  } else {
    std::fputs(ClusterTable(*cluster, NowMs()).c_str(), stdout);
  }
  return kExitOk;
}

int Export(CoordinatorClient* client, const std::vector<std::string>& args) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (args.size() != 1 || out.empty()) {
    return Fail(kExitUsage, "usage: psctl export ID --out FILE.npz");
  }
  absl::StatusOr<std::vector<ExportedTable>> tables = ExportJob(client, args[0], out);
  if (!tables.ok()) return FailStatus(tables.status());
  for (const ExportedTable& t : *tables) {
    if (t.note.empty()) {
      std::fprintf(stderr, "%s: float32 (%s)\n", t.name.c_str(),
                   absl::StrJoin(t.shape, ", ").c_str());
    } else {
      std::fprintf(stderr, "%s: %s\n", t.name.c_str(), t.note.c_str());
    }
  }
  std::printf("%s\n", out.c_str());
  return kExitOk;
}

int Main(int argc, char** argv) {
  const std::vector<std::string> args = ParseFlags(argc, argv, kUsage);
  if (args.size() < 2) return Fail(kExitUsage, "a command is needed (see psctl --help)");
  const std::string command = args[1];
  const std::vector<std::string> rest(args.begin() + 2, args.end());

  CoordinatorClientOptions options;
  options.address = absl::GetFlag(FLAGS_coordinator);
  if (options.address.empty()) {
    const char* env = std::getenv("PS_COORDINATOR");
    options.address = env != nullptr && *env != '\0' ? env : "127.0.0.1:7070";
  }
  options.timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds =
      MakeChannelCredentials(TlsFilesFromFlags());
  if (!creds.ok()) return Fail(kExitUsage, creds.status().ToString());
  options.credentials = *std::move(creds);
  if (const std::string token_file = AuthTokenFileFromFlag(); !token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTokenFile(token_file, "--auth_token_file");
    if (!token.ok()) return Fail(kExitUsage, token.status().ToString());
    options.metadata.emplace_back(kAuthorizationKey, BearerValue(*token));
  }
  absl::StatusOr<std::unique_ptr<CoordinatorClient>> client = CoordinatorClient::Connect(options);
  if (!client.ok()) return Fail(kExitUsage, client.status().ToString());
  CoordinatorClient* c = client->get();

  if (command == "submit") return Submit(c, rest);
  if (command == "watch") {
    if (rest.size() != 1) return Fail(kExitUsage, "usage: psctl watch ID");
    return Follow(c, rest[0], stdout);
  }
  if (command == "status") return Status(c, rest);
  if (command == "list") return List(c, rest);
  if (command == "cancel") return Cancel(c, rest);
  if (command == "cluster") return Cluster(c, rest);
  if (command == "export") return Export(c, rest);
  return Fail(kExitUsage, absl::StrCat("unknown command \"", command, "\" (see psctl --help)"));
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) { return ps::Main(argc, argv); }
