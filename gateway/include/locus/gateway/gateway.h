// locus-gateway as an object: options with their defaults and checks, the
// Cap'n Proto RPC listener serving `Ingest` and the NDJSON text listener,
// both served from one KJ event loop, in front of a Router to the units.
// Embeddable: `locus local` runs one in a thread with inproc:// units.
#pragma once

#include <kj/async-io.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/log.h"
#include "locus/common/metrics.h"
#include "locus/common/report.h"
#include "locus/gateway/catch_up.h"
#include "locus/gateway/router.h"
#include "locus/transport/curve.h"
#include "locus/transport/http_endpoint.h"
#include "locus/transport/rpc_listener.h"
#include "locus/transport/tls.h"

namespace locus::transport {
class FrontEndHttp;
class WatchedStream;
}  // namespace locus::transport

namespace locus::gateway {
class DeviceAuth;
}

namespace locus::gateway {

// What one client connection may hold or do (SPEC "Security": gateway
// limits), so a slowloris, a flood or one greedy client cannot starve the
// others. Every refusal is counted (locus_gateway_refused_total{reason})
// and logged at most once per 10 s.
struct ClientLimits {
  // A connection that sends no byte for this long is closed; 0 = never.
  int64_t idleTimeoutMs = 300'000;
  // Reports per second per connection (a bucket of a second's worth);
  // beyond, each is refused as retryable. 0 = no limit. HTTP requests are
  // not limited (each is a batch of its own).
  uint32_t maxReportsPerS = 0;
  // Bytes read from one connection and not yet answered, at most: the RPC
  // flow limit, and the NDJSON chunks waiting for their units. Past it the
  // gateway stops reading from that connection.
  size_t maxBufferedBytes = 8 << 20;

  std::optional<std::string> validate() const;
};

struct GatewayOptions {
  std::vector<std::string> units;           // ZeroMQ endpoints of the units, in shard order
  std::string listen = "0.0.0.0:7700";      // HOST:PORT for Cap'n Proto RPC; port 0 picks one
  std::string listenText = "0.0.0.0:7701";  // HOST:PORT for NDJSON lines; port 0 picks one
  RouterOptions routing;                    // batching, windows and deadlines toward the units
  int64_t maxFutureSkewMs = kDefaultMaxFutureSkewMs;  // a report's ts at most this far ahead
  size_t maxConnections = 0;  // open at once over both protocols; 0 = the fd limit less a reserve
  ClientLimits clients;
  std::string httpListen;  // HOST:PORT for /healthz, /readyz, /metrics; empty = off
  // Device token keys (auth::TokenKeys); set, every connection of every
  // protocol must present a token, and writes only the ids it allows.
  std::string authKeys;
  // CURVE toward the units (transport/curve.h): this gateway's keypair file
  // and the unit key's public half; both or neither.
  std::string curveKey;
  std::string unitPublicKey;
  // TLS on the RPC, text and HTTP ports (PEM files); both or neither.
  std::string tlsCert;
  std::string tlsKey;

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// What one ingest protocol received. Written by the gateway's thread; any
// thread may read it.
struct ProtocolCounters {
  metrics::Counter accepted;   // reports validated and routed
  metrics::Counter rejected;   // reports (or lines) refused, with a reason to the client
  metrics::Gauge connections;  // open now
};

// Clients the gateway refused or cut off, by why (ClientLimits).
struct Refusals {
  metrics::Counter idle;  // connections closed after --idle-timeout without a byte
  metrics::Counter rate;  // reports refused past --max-reports-per-s
  ThrottledLog idleLog, rateLog;
};

struct IngestCounters {
  ProtocolCounters rpc;   // Cap'n Proto Ingest
  ProtocolCounters text;  // NDJSON lines
  ProtocolCounters http;  // POST /v1/reports (connections: requests in flight)
  Refusals refused;

  // Names every metric above in `registry`, labelled protocol="rpc"/"text"/"http".
  void expose(metrics::Registry& registry) const;
};

// Thread-affinity: construct, run and destroy on the thread that owns `io`.
class Gateway final {
 public:
  // Binds both listening sockets, and the HTTP endpoint when
  // options.httpListen is set. Throws kj::Exception when an address is
  // malformed or cannot be bound (in use), std::runtime_error when the HTTP
  // address cannot, zmq::error_t on a malformed unit endpoint.
  // Precondition: options.validate() passed.
  Gateway(const GatewayOptions& options, zmq::context_t& context, kj::AsyncIoContext& io);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // "HOST:PORT" actually bound (the port chosen for port 0).
  const std::string& rpcAddress() const { return rpcAddress_; }
  const std::string& textAddress() const { return textAddress_; }
  // "HOST:PORT" of the HTTP endpoint, or empty when options.httpListen was.
  std::string httpAddress() const;
  // For /readyz: whether every partition has a replica that is up (any
  // thread: reads the probes' atomic gauges). Precondition: HTTP is on.
  transport::Readiness partitionsWritable() const;

  // Serves until `stopFd` (a signalfd or eventfd) becomes readable (and
  // reads --auth-keys again whenever `reloadFd`, a SIGHUP signalfd, does), then
  // stops accepting and reading, sends every buffered report to its unit
  // and waits for the units' answers (bounded by the batch timeout plus a
  // second) before returning.
  void run(int stopFd, int reloadFd = -1);

  const RouterCounters& counters() const { return router_.counters(); }
  const IngestCounters& ingestCounters() const { return ingest_; }

 private:
  class Connections;

  // The stream of a new connection, noting when its client last sent.
  kj::Own<transport::WatchedStream> watch(kj::Own<kj::AsyncIoStream> stream);
  // `served`, ended early once `stream` has been silent for --idle-timeout.
  kj::Promise<void> closeWhenIdle(kj::Promise<void> served, const transport::WatchedStream& stream,
                                  const char* protocol);

  kj::AsyncIoContext& io_;
  RouterOptions routing_;
  std::unique_ptr<transport::UnitLinkCredentials> unitLinks_;  // before anything opens a socket
  Router router_;
  std::unique_ptr<CatchUpCoordinator> catchUp_;  // after router_: destroyed before it
  int64_t maxFutureSkewMs_;
  std::unique_ptr<DeviceAuth> auth_;
  std::unique_ptr<transport::TlsServer> tls_;  // outlives the listeners
  transport::ConnectionLimit limit_;
  ClientLimits clients_;
  std::string refusal_;  // the line a text connection over the limit gets
  IngestCounters ingest_;
  std::string rpcAddress_;
  std::string textAddress_;
  std::unique_ptr<Connections> connections_;  // declared after router_: destroyed first
  metrics::Registry registry_;
  std::unique_ptr<transport::FrontEndHttp> http_;  // declared last: stops before what it reads
};

}  // namespace locus::gateway
