// locus-server as an object: options with their defaults and checks, and
// the Cap'n Proto RPC listener that serves LocationService to any number of
// connections from one KJ event loop.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/server/location_service.h"
#include "locus/server/scatter_gather.h"
#include "locus/transport/curve.h"
#include "locus/transport/rpc_listener.h"
#include "locus/transport/tls.h"
#include "locus/transport/unit_health.h"

namespace locus::server {

struct ServerOptions {
  std::vector<std::string> units;       // ZeroMQ endpoints of the units, in shard order
  std::string listen = "0.0.0.0:7800";  // HOST:PORT for Cap'n Proto RPC; port 0 picks one
  int64_t timeoutMs = 250;              // per-query deadline for the units' answers
  std::string httpListen;               // HOST:PORT for /healthz, /readyz, /metrics; empty = off
  size_t maxConnections = 0;  // client connections open at once; 0 = fd limit less a reserve
  Replication replication;    // --partitions, --replicas: as on the gateway and units
  // Client API keys (auth::ApiKeys); set, every RPC call and every /v1/
  // HTTP request must present one, and sees what its scope allows.
  std::string apiKeys;
  // CURVE toward the units, as on the gateway; both or neither.
  std::string curveKey;
  std::string unitPublicKey;
  // TLS on the RPC and HTTP ports (PEM files); both or neither.
  std::string tlsCert;
  std::string tlsKey;

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// Thread-affinity: construct, run and destroy on the thread that owns `io`.
class Server final : private kj::TaskSet::ErrorHandler {
 public:
  // Binds the listening socket, and the HTTP endpoint when
  // options.httpListen is set. Throws kj::Exception when the address is
  // malformed or cannot be bound (in use), std::runtime_error when the HTTP
  // address cannot, zmq::error_t on a malformed unit endpoint.
  // Precondition: options.validate() passed.
  Server(const ServerOptions& options, zmq::context_t& context, kj::AsyncIoContext& io);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "HOST:PORT" actually bound (the port chosen for port 0).
  const std::string& address() const { return address_; }
  // "HOST:PORT" of the HTTP endpoint, or empty when options.httpListen was.
  std::string httpAddress() const { return http_ ? http_->address() : std::string(); }

  // Serves until `stopFd` (a signalfd or eventfd) becomes readable (and
  // reads --api-keys again whenever `reloadFd`, a SIGHUP signalfd, does),
  // then stops accepting and lets in-flight queries finish (bounded by the
  // deadline plus a second) before returning.
  void run(int stopFd, int reloadFd = -1);

 private:
  kj::AsyncIoContext& io_;
  std::unique_ptr<transport::UnitLinkCredentials> unitLinks_;  // before anything opens a socket
  ScatterGather cluster_;
  ServiceCounters counters_;
  std::unique_ptr<ClientAuth> auth_;
  std::unique_ptr<transport::TlsServer> tls_;  // outlives the listeners
  capnp::Capability::Client bootstrap_;
  transport::ConnectionLimit limit_;
  std::unique_ptr<transport::Listener> listener_;
  std::string address_;
  kj::TaskSet tasks_;  // one per open connection
  metrics::Registry registry_;
  std::unique_ptr<transport::FrontEndHttp> http_;  // declared last: stops before what it reads

  // A connection that failed: logged, the others carry on.
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace locus::server
