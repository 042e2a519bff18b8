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

#include "locus/gateway/router.h"

namespace locus::gateway {

struct GatewayOptions {
  std::vector<std::string> units;           // ZeroMQ endpoints of the units, in shard order
  std::string listen = "0.0.0.0:7700";      // HOST:PORT for Cap'n Proto RPC; port 0 picks one
  std::string listenText = "0.0.0.0:7701";  // HOST:PORT for NDJSON lines; port 0 picks one
  RouterOptions routing;                    // batching, windows and deadlines toward the units

  // Why these options cannot work, or nothing.
  std::optional<std::string> validate() const;
};

// Thread-affinity: construct, run and destroy on the thread that owns `io`.
class Gateway final {
 public:
  // Binds both listening sockets. Throws kj::Exception when an address is
  // malformed or cannot be bound (in use), zmq::error_t on a malformed unit
  // endpoint. Precondition: options.validate() passed.
  Gateway(const GatewayOptions& options, zmq::context_t& context, kj::AsyncIoContext& io);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // "HOST:PORT" actually bound (the port chosen for port 0).
  const std::string& rpcAddress() const { return rpcAddress_; }
  const std::string& textAddress() const { return textAddress_; }

  // Serves until `stopFd` (a signalfd or eventfd) becomes readable, then
  // stops accepting and reading, sends every buffered report to its unit
  // and waits for the units' answers (bounded by the batch timeout plus a
  // second) before returning.
  void run(int stopFd);

  const RouterCounters& counters() const { return router_.counters(); }

 private:
  class Connections;
  kj::Promise<void> acceptRpc();
  kj::Promise<void> acceptText();

  kj::AsyncIoContext& io_;
  RouterOptions routing_;
  Router router_;
  std::string rpcAddress_;
  std::string textAddress_;
  std::unique_ptr<Connections> connections_;  // declared after router_: destroyed first
};

}  // namespace locus::gateway
