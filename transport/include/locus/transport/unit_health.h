// Whether every unit of a cluster answers, for /readyz and /metrics of the
// gateway and the server: each unit is asked for its stats every interval
// on a channel of its own (so probes neither wait behind nor delay the
// data path), and is up while its latest probe was answered in time.
#pragma once

#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/transport/http.h"
#include "locus/transport/http_server.h"

namespace locus::transport {

class Listener;
class UnitChannel;

// Thread-affinity: construct and destroy on the thread running the event
// loop of `eventPort` and `timer` (the probes run on it); readiness() and
// the exposed metrics may be read from any thread.
class UnitHealth {
 public:
  // Starts probing `units` (in shard order) at once and every `interval`;
  // a probe unanswered within the interval marks its unit down. `data`, when
  // not empty, holds the daemon's own channel to each unit (same order): a
  // unit is up only while that channel answers too, and its resets are
  // exposed. The channels must outlive this object. Throws zmq::error_t on
  // a malformed endpoint.
  UnitHealth(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
             const std::vector<std::string>& units, std::vector<const UnitChannel*> data = {},
             kj::Duration interval = 1 * kj::SECONDS);
  ~UnitHealth();
  UnitHealth(const UnitHealth&) = delete;
  UnitHealth& operator=(const UnitHealth&) = delete;

  // Ready when every unit is up; the detail lists each unit.
  Readiness readiness() const;
  // Whether unit `shard` answered its latest probe (any thread).
  bool up(size_t shard) const;
  // locus_unit_up and locus_unit_reported_devices, labelled by shard and
  // endpoint; with data channels, locus_unit_channel_answering and
  // locus_unit_channel_resets_total.
  void expose(metrics::Registry& registry) const;

 private:
  struct Unit;
  kj::Promise<void> probe(Unit& unit);

  kj::Timer& timer_;
  kj::Duration interval_;
  std::vector<std::unique_ptr<Unit>> units_;
  kj::Promise<void> probing_;  // every unit's probe loop; declared last
};

// The HTTP port of a daemon in front of the units (the gateway, the
// server), served from its event loop: /readyz is ready while every unit
// answers (UnitHealth), every listener (this one too) accepts, and the
// daemon is not stopping; /metrics renders `registry`, to which the units'
// up/devices gauges and the HTTP metrics are added; and the daemon's own
// `api` routes (the /v1/ API).
//
// Thread-affinity: construct and destroy on the event-loop thread of `io`.
class FrontEndHttp {
 public:
  // HTTP connections open at once, at most (or the descriptor limit less
  // a reserve, if lower).
  static constexpr size_t kMaxHttpConnections = 4096;

  // Throws kj::Exception when `listen` cannot be bound, zmq::error_t on a
  // malformed unit endpoint. `registry`, the `data` channels (see
  // UnitHealth) and the `listeners` must outlive this object. HTTP
  // connections have a limit of their own (kMaxHttpConnections), so that
  // clients holding the daemon's --max-connections cannot lock operators
  // out of /metrics.
  // With `cluster` (the server with replicas), /readyz asks it whether the
  // cluster can answer instead of requiring every unit up: one unit down
  // costs nothing while a replica serves each of its partitions. With
  // `tls` (outliving this object), HTTPS.
  FrontEndHttp(zmq::context_t& context, kj::AsyncIoContext& io,
               const std::vector<std::string>& units, std::vector<const UnitChannel*> data,
               std::vector<const Listener*> listeners, const std::string& listen,
               metrics::Registry& registry, HttpRoutes api = {},
               std::function<Readiness()> cluster = {}, kj::TlsContext* tls = nullptr);

  // Not ready from now on (a stop was asked for).
  void stopping() { stopping_ = true; }
  const UnitHealth& health() const { return health_; }
  const std::string& address() const { return http_->address(); }

 private:
  UnitHealth health_;
  std::vector<const Listener*> listeners_;
  std::atomic<bool> stopping_{false};
  ConnectionLimit httpLimit_;
  std::unique_ptr<HttpServer> http_;  // declared last: stops before what it reads
};

}  // namespace locus::transport
