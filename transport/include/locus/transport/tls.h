// TLS on the external ports (SPEC "Security": --tls-cert/--tls-key), with
// kj-tls (Cap'n Proto's OpenSSL binding): the gateway's RPC, text and HTTP
// ports and the server's RPC and HTTP ports, and the clients that reach
// them. Handshakes run per connection (Listener::useTls), so a client that
// never finishes one holds its own slot, not the accept loop.
#pragma once

#include <kj/compat/tls.h>

#include <memory>
#include <optional>
#include <string>

namespace locus::transport {

// A server's certificate chain and private key, from PEM files.
class TlsServer {
 public:
  // Throws std::runtime_error naming the file when one cannot be read or
  // parsed, or the key does not match the certificate.
  TlsServer(const std::string& certFile, const std::string& keyFile);
  kj::TlsContext& context() { return *context_; }

 private:
  kj::Own<kj::TlsKeypair> keypair_;
  kj::Own<kj::TlsContext> context_;
};

// The flags of a daemon's TLS: both or neither.
std::optional<std::string> checkTlsFlags(const std::string& certFile, const std::string& keyFile);

// How a client reaches a TLS port: the certificates it trusts (a CA, or a
// self-signed server certificate), and the name the server's certificate
// must carry. An empty caFile means plain TCP.
struct TlsClientOptions {
  std::string caFile;
  std::string serverName;  // empty = the host of the address connected to
  bool on() const { return !caFile.empty(); }
};

// A client context trusting only the certificates of `options.caFile`.
// Throws std::runtime_error naming the file when it cannot be read.
kj::Own<kj::TlsContext> tlsClientContext(const TlsClientOptions& options);

}  // namespace locus::transport
