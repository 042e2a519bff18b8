// The gateway's side of catch-up (SPEC "Replication and durability"): it
// is the one role that knows both where each partition lives and which
// replica may have missed writes, so it tells units what to copy.
//
// Every interval each unit is asked for its stats on a channel of its own.
// A unit that is up and not stalled gets a catch-up order (CatchUpRequest)
// when
//   - the router marked it behind (a copy of a report was skipped while it
//     was stalled, or failed): every partition it holds, at once; or
//   - it reports partitions it does not serve (it restarted with replicas
//     and waits for an order, or an earlier copy gave up) and no copy runs:
//     those partitions, at most once per kReorderAfter.
// Each partition is copied from every other replica that is up and not
// stalled (a copy from each, merged by the newest-ts rule, holds every
// report any of them acknowledged). One with no such replica waits for a
// later order that brings it a source, unless the unit serves it: then it
// holds the best copy there is and keeps serving. A replica that is itself catching up is
// a valid source: what it holds, merged, is what was stored.
//
// The probes also tell the router which units are down (kMissesDown in a
// row), so that with --acks all a dead replica stops holding acks back
// within about half a second rather than a batch timeout; and a unit seen
// with a new incarnation (it restarted without its data) is behind.
//
// With one replica there is nothing to copy from: the coordinator is idle.
//
// Thread-affinity: the gateway's event-loop thread.
#pragma once

#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/gateway/router.h"

namespace locus::gateway {

class CatchUpCoordinator final : private kj::TaskSet::ErrorHandler {
 public:
  // Starts probing at once when the placement has more than one replica.
  // `router` must outlive this object. Throws zmq::error_t on a malformed
  // endpoint.
  CatchUpCoordinator(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                     const std::vector<std::string>& units, Router& router,
                     kj::Duration interval = 250 * kj::MILLISECONDS);
  ~CatchUpCoordinator();
  CatchUpCoordinator(const CatchUpCoordinator&) = delete;
  CatchUpCoordinator& operator=(const CatchUpCoordinator&) = delete;

  // locus_gateway_catch_up_orders_total, and per unit the partitions it
  // does not serve (locus_unit_partitions_not_serving).
  void expose(metrics::Registry& registry) const;

  // An unserved partition is ordered again at most this often.
  static constexpr kj::Duration kReorderAfter = 2 * kj::SECONDS;
  // Probes missed in a row before the router stops sending to a unit.
  static constexpr int kMissesDown = 2;

 private:
  struct Unit;
  kj::Promise<void> round();
  // Orders what `unit` must copy now, if anything.
  void decide(uint32_t unit);
  // `behind`: for missed writes (a partition with no other replica up then
  // keeps serving rather than waits).
  void order(uint32_t unit, const std::vector<uint32_t>& partitions, bool behind);
  void taskFailed(kj::Exception&& exception) override;

  kj::Timer& timer_;
  kj::Duration interval_;
  Router& router_;
  std::vector<std::unique_ptr<Unit>> units_;
  metrics::Counter orders_;
  kj::TaskSet tasks_;          // orders in flight; after the channels they use
  kj::Promise<void> running_;  // declared last
};

}  // namespace locus::gateway
