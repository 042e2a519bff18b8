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
#include "locus/transport/http_endpoint.h"

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

// The HTTP endpoint of a daemon in front of the units (the gateway, the
// server): /readyz is ready while every unit answers (UnitHealth), every
// listener accepts, and the daemon is not stopping; /metrics renders
// `registry`, to which the units' up/devices gauges are added.
//
// Thread-affinity: construct and destroy on the event-loop thread of `io`.
class FrontEndHttp {
 public:
  // Throws std::runtime_error when `listen` cannot be bound, zmq::error_t
  // on a malformed unit endpoint. `registry`, the `data` channels (see
  // UnitHealth) and the `listeners` must outlive this object.
  // With `cluster` (the server with replicas), /readyz asks it whether the
  // cluster can answer instead of requiring every unit up: one unit down
  // costs nothing while a replica serves each of its partitions. It is
  // called on the endpoint's threads.
  FrontEndHttp(zmq::context_t& context, kj::AsyncIoContext& io,
               const std::vector<std::string>& units, std::vector<const UnitChannel*> data,
               std::vector<const Listener*> listeners, const std::string& listen,
               metrics::Registry& registry, std::function<Readiness()> cluster = {});

  // Not ready from now on (a stop was asked for).
  void stopping() { stopping_ = true; }
  const UnitHealth& health() const { return health_; }
  const std::string& address() const { return http_->address(); }

 private:
  UnitHealth health_;
  std::vector<const Listener*> listeners_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<HttpEndpoint> http_;  // declared last: stops before what it reads
};

}  // namespace locus::transport
