// TLS for every gRPC listener and channel of the cluster, from three shared flags:
//
//   --tls_cert  PEM certificate chain this process presents (server: on its
//               listener; client: to the servers it dials, for mutual TLS)
//   --tls_key   PEM private key of --tls_cert
//   --tls_ca    PEM CA bundle that verifies the peer: on a listener it makes TLS
//               mutual (a client must present a certificate signed by it); on a
//               channel it verifies the server (default: the system's roots)
//
// All three empty: plaintext (insecure) credentials. A listener needs --tls_cert and
// --tls_key together. Certificates must name the address the peers dial (a
// subjectAltName such as IP:127.0.0.1 or DNS:shard-0.example).
//
// The flags are defined once here; every binary that links this library has them.
#ifndef PS_COMMON_TLS_H_
#define PS_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace ps {

// Paths of the PEM files; empty = not set.
struct TlsFiles {
  std::string cert;
  std::string key;
  std::string ca;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

// The values of --tls_cert, --tls_key and --tls_ca.
TlsFiles TlsFilesFromFlags();

// Credentials of a listener: insecure when `files` is empty; TLS with --tls_cert and
// --tls_key; mutual TLS (a client certificate signed by --tls_ca required and
// verified) when --tls_ca is set too. INVALID_ARGUMENT naming the flag when one is
// missing (key without cert, CA without cert) or its file cannot be read or is empty.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files);

// Credentials of a channel: insecure when `files` is empty; otherwise TLS verifying
// the server with --tls_ca (or the system's roots), presenting --tls_cert/--tls_key
// when both are set. INVALID_ARGUMENT naming the flag as above (cert and key come
// together).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsFiles& files);

// Reads a whole file; INVALID_ARGUMENT naming `flag` when it cannot be read or is
// empty.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& flag);

}  // namespace ps

#endif  // PS_COMMON_TLS_H_
