// The server's Cap'n Proto RPC interface (LocationService in locus.capnp):
// validates each call, answers it through ScatterGather, and turns every
// failure into the result's typed `error` field, so no call fails across
// the socket for bad input or a slow unit.
#pragma once

#include "locus.capnp.h"
#include "locus/server/scatter_gather.h"

namespace locus::server {

// Thread-affinity: the event-loop thread of its ScatterGather. Ownership:
// `cluster` must outlive this object (the RPC system owns it through the
// bootstrap capability).
class LocationServiceImpl final : public wire::LocationService::Server {
 public:
  explicit LocationServiceImpl(ScatterGather& cluster) : cluster_(cluster) {}

  kj::Promise<void> nearest(NearestContext context) override;
  kj::Promise<void> within(WithinContext context) override;
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> stats(StatsContext context) override;

 private:
  ScatterGather& cluster_;
};

}  // namespace locus::server
