// A real cluster (coordinator, shard, worker) with mutual TLS on every connection and a
// bearer token on the coordinator's client calls. Certificates are made at test start
// with the `openssl` command: a CA, one certificate for the daemons and psctl, and a
// second CA with a certificate of its own (a stranger). Checks:
//  - a job runs to SUCCEEDED through psctl with mTLS and the token, and exports;
//  - plaintext clients, clients without a certificate and clients with the stranger's
//    certificate are refused by the coordinator and the shard;
//  - psctl without the token or with a wrong one gets UNAUTHENTICATED (exit 2) on
//    every client call; the daemon-facing calls need no token.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"
#include "proto/shard.grpc.pb.h"
#include "tests/util/subprocess.h"

namespace ps {
namespace {

using ::ps::testing::Daemon;
using ::ps::testing::Runfile;

constexpr char kToken[] = "s3cret-token_0123456789";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Makes ca.pem, node.pem/node.key (signed by ca) and stranger.pem/stranger.key (signed by
// another CA, other_ca.pem) in `dir`. Both leaf certificates name 127.0.0.1 and
// localhost and may serve and be clients.
void MakeCertificates(const std::string& dir) {
  const std::string script =
      "set -e; cd '" + dir + "'\n"
      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
      "extendedKeyUsage=serverAuth,clientAuth\\nbasicConstraints=CA:FALSE\\n' > leaf.ext\n"
      "ca() { openssl req -x509 -newkey rsa:2048 -nodes -keyout $1.key -out $1.pem -days 2 "
      "  -subj /CN=$1 -addext basicConstraints=critical,CA:TRUE "
      "  -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null; }\n"
      "leaf() { openssl req -newkey rsa:2048 -nodes -keyout $1.key -out $1.csr -subj /CN=$1 "
      "  2>/dev/null; openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
      "  -CAcreateserial -out $1.pem -days 2 -extfile leaf.ext 2>/dev/null; }\n"
      "ca ca; ca other_ca; leaf node ca; leaf stranger other_ca\n"
      "openssl verify -CAfile ca.pem node.pem\n";
  std::string out;
  const int rc = ps::testing::RunCommand({"/bin/sh", "-c", script}, &out);
  ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << "openssl failed: " << out;
}

grpc::SslCredentialsOptions SslOptions(const std::string& ca, const std::string& cert,
                                       const std::string& key) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadAll(ca);
  if (!cert.empty()) {
    o.pem_cert_chain = ReadAll(cert);
    o.pem_private_key = ReadAll(key);
  }
  return o;
}

class TlsAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::string(std::getenv("TEST_TMPDIR")) + "/tls");
    ::mkdir(dir_->c_str(), 0755);
    MakeCertificates(*dir_);
    std::ofstream(*dir_ + "/token") << kToken << "\n";
    std::ofstream(*dir_ + "/wrong_token") << kToken << "x\n";
    const std::string root = ps::testing::SourceRoot("tests/data/digits.csv.gz");
    coordinator_ = new Daemon();
    ASSERT_TRUE(coordinator_
                    ->Start(WithTls({Runfile("server/coordinator/ps_coordinator"), "--port=0",
                                     "--data_dir=" + *dir_ + "/coord", "--data_root=" + root,
                                     "--num_shards=1", "--auth_token_file=" + *dir_ + "/token"}),
                            *dir_ + "/coordinator.log")
                    .ok());
    shard_ = new Daemon();
    ASSERT_TRUE(shard_
                    ->Start(WithTls({Runfile("server/ps_server"), "--port=0", "--shard_id=0",
                                     "--num_shards=1", "--data_dir=" + *dir_ + "/shard",
                                     "--coordinator=" + coordinator_->address()}),
                            *dir_ + "/shard.log")
                    .ok());
    worker_ = ps::testing::Spawn(
        WithTls({Runfile("worker/ps_worker"), "--coordinator=" + coordinator_->address(),
                 "--device=cpu", "--data_root=" + root}),
        *dir_ + "/worker.log");
  }

  static void TearDownTestSuite() {
    if (worker_ > 0) {
      kill(worker_, SIGTERM);
      ps::testing::Wait(worker_);
    }
    delete shard_;
    delete coordinator_;
    delete dir_;
  }

  static std::vector<std::string> WithTls(std::vector<std::string> argv) {
    argv.push_back("--tls_cert=" + *dir_ + "/node.pem");
    argv.push_back("--tls_key=" + *dir_ + "/node.key");
    argv.push_back("--tls_ca=" + *dir_ + "/ca.pem");
    return argv;
  }

  // Runs psctl with `flags` (TLS, token) and `args`; returns the exit code; `*err`
  // gets its stderr.
  static int Psctl(std::vector<std::string> flags, const std::vector<std::string>& args,
                   std::string* out, std::string* err = nullptr) {
    static int n = 0;
    const std::string log = *dir_ + "/psctl" + std::to_string(n++) + ".log";
    flags.insert(flags.begin(),
                 {Runfile("client/psctl"), "--coordinator=" + coordinator_->address()});
    flags.insert(flags.end(), args.begin(), args.end());
    const int status = ps::testing::RunCommand(flags, out, log);
    if (err != nullptr) *err = ReadAll(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  static std::vector<std::string> Good() {
    return WithTls({"--auth_token_file=" + *dir_ + "/token"});
  }

  // The bundled digits job with the top-level fields that `edits` sets replaced.
  static std::string Spec(const std::string& edits) {
    std::ifstream in(Runfile("deploy/jobs/digits_softmax.textproto"));
    std::string line, text;
    int depth = 0;
    bool skipping = false;
    while (std::getline(in, line)) {
      if (depth == 0) {
        const size_t end = line.find_first_of(" :{");
        const std::string field = line.substr(0, end);
        skipping = !field.empty() && field[0] != '#' &&
                   (edits.rfind(field + ":", 0) == 0 || edits.rfind(field + " ", 0) == 0 ||
                    edits.find(" " + field + ":") != std::string::npos);
      }
      for (char c : line) depth += c == '{' ? 1 : c == '}' ? -1 : 0;
      if (!skipping) text += line + "\n";
    }
    static int n = 0;
    const std::string path = *dir_ + "/job" + std::to_string(n++) + ".textproto";
    std::ofstream(path) << text << edits << "\n";
    return path;
  }

  static std::string LastLine(std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    const size_t nl = s.rfind('\n');
    return nl == std::string::npos ? s : s.substr(nl + 1);
  }

  static std::string* dir_;
  static Daemon* coordinator_;
  static Daemon* shard_;
  static pid_t worker_;
};

std::string* TlsAuthTest::dir_ = nullptr;
Daemon* TlsAuthTest::coordinator_ = nullptr;
Daemon* TlsAuthTest::shard_ = nullptr;
pid_t TlsAuthTest::worker_ = -1;

TEST_F(TlsAuthTest, JobRunsToSucceededOverMutualTls) {
  std::string out, err;
  // One worker, a short run.
  ASSERT_EQ(Psctl(Good(), {"submit", Spec("num_workers: 1 epochs: 3"), "--wait"}, &out, &err), 0)
      << err;
  const std::string id = LastLine(out);
  ASSERT_EQ(Psctl(Good(), {"status", id, "--json"}, &out), 0);
  EXPECT_NE(out.find("\"state\":\"SUCCEEDED\""), std::string::npos) << out;
  // psctl dials the shard over mTLS too.
  EXPECT_EQ(Psctl(Good(), {"export", id, "--out", *dir_ + "/model.npz"}, &out, &err), 0) << err;
  ASSERT_EQ(Psctl(Good(), {"cluster"}, &out), 0);
  EXPECT_NE(out.find("worker"), std::string::npos) << out;
  // A data path outside --data_root is refused at submission (exit 5), naming the field.
  const std::string escape = Spec("data { format: CSV train_path: \"../../../etc/passwd\" "
                                  "num_features: 64 num_classes: 10 }");
  EXPECT_EQ(Psctl(Good(), {"submit", escape}, &out, &err), 5) << err;
  EXPECT_NE(err.find("spec.data.train_path"), std::string::npos) << err;
}

TEST_F(TlsAuthTest, StrangersAreRefused) {
  const std::string token = "--auth_token_file=" + *dir_ + "/token";
  std::string out, err;
  // Plaintext to a TLS listener.
  EXPECT_EQ(Psctl({token}, {"list"}, &out, &err), 2) << err;
  EXPECT_NE(err.find("UNAVAILABLE"), std::string::npos) << err;
  // TLS without a client certificate: the listener requires one.
  EXPECT_EQ(Psctl({token, "--tls_ca=" + *dir_ + "/ca.pem"}, {"list"}, &out, &err), 2) << err;
  // A certificate from another CA.
  EXPECT_EQ(Psctl({token, "--tls_ca=" + *dir_ + "/ca.pem", "--tls_cert=" + *dir_ + "/stranger.pem",
                   "--tls_key=" + *dir_ + "/stranger.key"},
                  {"list"}, &out, &err),
            2)
      << err;
  // psctl does not trust a server whose CA it was not given.
  EXPECT_EQ(Psctl({token, "--tls_ca=" + *dir_ + "/other_ca.pem",
                   "--tls_cert=" + *dir_ + "/node.pem", "--tls_key=" + *dir_ + "/node.key"},
                  {"list"}, &out, &err),
            2)
      << err;
  // The same call with the right certificate works.
  EXPECT_EQ(Psctl(Good(), {"list"}, &out, &err), 0) << err;
  // A missing certificate file is a usage error naming the flag.
  EXPECT_EQ(Psctl({token, "--tls_ca=" + *dir_ + "/nope.pem"}, {"list"}, &out, &err), 1);
  EXPECT_NE(err.find("--tls_ca"), std::string::npos) << err;

  // The daemons refuse raw gRPC clients that are not of the cluster: a stranger's
  // certificate, no certificate, plaintext. The node's certificate works.
  const std::string d = *dir_;
  struct Client {
    const char* what;
    std::shared_ptr<grpc::ChannelCredentials> creds;
    bool ok;
  } clients[] = {
      {"node", grpc::SslCredentials(SslOptions(d + "/ca.pem", d + "/node.pem", d + "/node.key")), true},
      {"stranger",
       grpc::SslCredentials(SslOptions(d + "/ca.pem", d + "/stranger.pem", d + "/stranger.key")),
       false},
      {"no certificate", grpc::SslCredentials(SslOptions(d + "/ca.pem", "", "")), false},
      {"plaintext", grpc::InsecureChannelCredentials(), false},
  };
  for (const Client& c : clients) {
    auto shard = ShardService::NewStub(grpc::CreateChannel(shard_->address(), c.creds));
    GetStatsRequest stats_req;
    GetStatsResponse stats;
    grpc::ClientContext sctx;
    sctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status s = shard->GetStats(&sctx, stats_req, &stats);
    EXPECT_EQ(s.ok(), c.ok) << "shard, " << c.what << ": " << s.error_message();

    // Register is a daemon-facing call: mTLS, not the token, guards it.
    auto coord = CoordinatorService::NewStub(grpc::CreateChannel(coordinator_->address(), c.creds));
    HeartbeatRequest hb;
    hb.set_member_id("nobody");
    HeartbeatResponse hb_resp;
    grpc::ClientContext cctx;
    cctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    const grpc::Status h = coord->Heartbeat(&cctx, hb, &hb_resp);
    if (c.ok) {
      // Through TLS it reaches the service, which does not know the member.
      EXPECT_EQ(h.error_code(), grpc::StatusCode::NOT_FOUND) << c.what << ": " << h.error_message();
    } else {
      EXPECT_EQ(h.error_code(), grpc::StatusCode::UNAVAILABLE) << c.what << ": " << h.error_message();
    }
  }
  EXPECT_TRUE(shard_->running());
  EXPECT_TRUE(coordinator_->running());
}

TEST_F(TlsAuthTest, ClientCallsNeedTheBearerToken) {
  const std::vector<std::string> no_token = WithTls({});
  const std::vector<std::string> wrong = WithTls({"--auth_token_file=" + *dir_ + "/wrong_token"});
  const std::vector<std::vector<std::string>> commands = {
      {"list"}, {"status", "job-000001"}, {"cluster"}, {"cancel", "job-000001"},
      {"watch", "job-000001"}, {"submit", Spec("num_workers: 1 epochs: 1")}};
  std::string out, err;
  for (const auto& cmd : commands) {
    EXPECT_EQ(Psctl(no_token, cmd, &out, &err), 2) << cmd[0] << ": " << err;
    EXPECT_NE(err.find("UNAUTHENTICATED"), std::string::npos) << cmd[0] << ": " << err;
    EXPECT_EQ(Psctl(wrong, cmd, &out, &err), 2) << cmd[0] << ": " << err;
    EXPECT_NE(err.find("UNAUTHENTICATED"), std::string::npos) << cmd[0] << ": " << err;
    EXPECT_EQ(err.find(kToken), std::string::npos) << "the token is never echoed";
  }
  EXPECT_EQ(Psctl(Good(), {"list"}, &out, &err), 0) << err;
  EXPECT_EQ(Psctl(Good(), {"cluster"}, &out, &err), 0) << err;
  // A token file that cannot be read is a usage error naming the flag.
  EXPECT_EQ(Psctl(WithTls({"--auth_token_file=" + *dir_ + "/nope"}), {"list"}, &out, &err), 1);
  EXPECT_NE(err.find("--auth_token_file"), std::string::npos) << err;

  // Raw calls: the scheme is checked, and a token alone is not a bearer header.
  const std::string d = *dir_;
  auto stub = CoordinatorService::NewStub(grpc::CreateChannel(
      coordinator_->address(),
      grpc::SslCredentials(SslOptions(d + "/ca.pem", d + "/node.pem", d + "/node.key"))));
  for (const std::string& header :
       {std::string(kToken), "Basic " + std::string(kToken), std::string("Bearer "),
        "Bearer " + std::string(kToken) + "x", "Bearer " + std::string(kToken)}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", header);
    ListJobsResponse resp;
    const grpc::Status s = stub->ListJobs(&ctx, ListJobsRequest(), &resp);
    if (header == "Bearer " + std::string(kToken)) {
      EXPECT_TRUE(s.ok()) << s.error_message();
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << header;
    }
  }
}

}  // namespace
}  // namespace ps
