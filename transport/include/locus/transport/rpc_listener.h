// Listening for clients from a KJ event loop, as the server and the gateway
// both do: binding HOST:PORT, accepting connection after connection through
// transient failures (out of file descriptors), bounding how many are open,
// and serving Cap'n Proto RPC on each with untrusted-input limits.
#pragma once

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>

#include "locus/common/metrics.h"

namespace locus::transport {

// The most client connections a daemon holds at once when --max-connections
// is 0: its file-descriptor limit (RLIMIT_NOFILE) less kReservedFds for
// everything else it opens (unit sockets, ZeroMQ's own, logs, HTTP), so that
// the limit refuses connections cleanly before accept() runs out.
inline constexpr size_t kReservedFds = 128;
size_t defaultMaxConnections();
// Why `maxConnections` (the --max-connections flag) cannot work, or nothing.
std::optional<std::string> checkMaxConnections(size_t maxConnections);

// How many client connections are open over all of a daemon's listeners,
// and how many may be. Thread-affinity: the event loop's thread; open() and
// the exposed metrics may be read from any thread.
class ConnectionLimit {
 public:
  // One connection's place, held while the connection lives.
  class Slot {
   public:
    explicit Slot(ConnectionLimit& limit) : limit_(limit) { limit_.open_.add(1); }
    ~Slot() { limit_.open_.add(-1); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ConnectionLimit& limit_;
  };

  // Precondition: max >= 1.
  explicit ConnectionLimit(size_t max);

  // A place for one more connection, or nothing when max() are open.
  kj::Maybe<kj::Own<Slot>> acquire();
  size_t max() const { return max_; }
  size_t open() const { return static_cast<size_t>(open_.value()); }
  // locus_connections_open and locus_connections_max.
  void expose(metrics::Registry& registry) const;

 private:
  size_t max_;
  metrics::Gauge open_;
  metrics::Gauge maxGauge_;
};

// A bound listening socket. Thread-affinity: the thread that owns `io`;
// health() may be read from any thread. Ownership: outlives the promise
// acceptEach() returned.
class Listener {
 public:
  // What the listener is doing, for /readyz and /metrics.
  struct Health {
    std::atomic<bool> accepting{true};  // false while accept() fails
    metrics::Counter acceptErrors;      // failed accept() calls
    metrics::Counter refused;           // connections closed at once: over the limit
    metrics::Counter tlsFailures;       // TLS handshakes that failed or timed out
  };

  // A connection within the limit, with its place; serve keeps both as long
  // as it serves the connection.
  using Serve = std::function<void(kj::Own<kj::AsyncIoStream>, kj::Own<ConnectionLimit::Slot>)>;
  // Tells a connection over the limit why it is closed (writes a line, say);
  // given at most a second. Null: just close it.
  using Refuse = std::function<kj::Promise<void>(kj::AsyncIoStream&)>;

  // Binds `address` ("HOST:PORT", port 0 picks one); `name` labels logs and
  // metrics ("rpc", "text"). Throws kj::Exception when the address is
  // malformed or cannot be bound. Precondition: checkListen() passed.
  Listener(kj::AsyncIoContext& io, const std::string& address, std::string name,
           ConnectionLimit& limit);
  ~Listener();

  // "HOST:PORT" with the port actually bound.
  const std::string& address() const { return address_; }
  const std::string& name() const { return name_; }
  const Health& health() const { return health_; }

  // Accepts connections for as long as the returned promise lives. A failed
  // accept (out of file descriptors, say) is logged, marks the listener not
  // accepting, and accepting resumes after a back-off (10 ms doubling to
  // 1 s) — the listener never stops by itself.
  kj::Promise<void> acceptEach(Serve serve, Refuse refuse = nullptr);

  // Serves TLS (before acceptEach): each connection within the limit first
  // completes its handshake, within kTlsHandshakeTimeout, on its own —
  // the accept loop never waits for one. Failed handshakes are counted.
  void useTls(kj::TlsContext& tls) { tls_ = tls; }
  static constexpr kj::Duration kTlsHandshakeTimeout = 10 * kj::SECONDS;

  // Closes the listening socket: new connections are refused by the system.
  // Precondition: the promise acceptEach() returned was dropped.
  void close() { receiver_ = nullptr; }

  // locus_listener_accepting, locus_listener_accept_errors_total and
  // locus_listener_refused_total, labelled listener=<name>.
  void expose(metrics::Registry& registry) const;

 private:
  kj::Promise<void> acceptLoop(kj::Duration backoff);
  void failed(kj::Exception&& e);

  kj::Timer& timer_;
  std::string name_;
  std::string address_;
  ConnectionLimit& limit_;
  kj::Own<kj::ConnectionReceiver> receiver_;
  Health health_;
  Serve serve_;
  Refuse refuse_;
  kj::Maybe<kj::TlsContext&> tls_;
  kj::Maybe<kj::TimePoint> lastFailureLog_;
  uint64_t failuresSinceLog_ = 0;
  class Refusals;
  kj::Own<Refusals> refusals_;  // connections being told why they are closed
};

// One accepted RPC connection: its stream, the two-party network over it
// (reading messages with untrustedRpcReaderOptions(), so one message is at
// most kMaxRpcMessageBytes) and an RPC system serving `bootstrap`. Counted
// in `open` while it lives; lives until the peer hangs up (onDisconnect()).
class RpcConnection {
 public:
  // `flowLimitBytes`: calls in flight from the client, in bytes, before the
  // connection stops reading from it; with the message limit it bounds what
  // one connection can make the daemon hold.
  RpcConnection(kj::Own<kj::AsyncIoStream> stream, capnp::Capability::Client bootstrap,
                size_t flowLimitBytes, metrics::Gauge* open = nullptr);
  ~RpcConnection();

  kj::Promise<void> onDisconnect() { return network_.onDisconnect(); }

 private:
  metrics::Gauge* open_;
  kj::Own<kj::AsyncIoStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

}  // namespace locus::transport
