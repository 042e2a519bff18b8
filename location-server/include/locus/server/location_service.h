// The server's Cap'n Proto RPC interface (LocationService in locus.capnp):
// validates each call, answers it through ScatterGather, and turns every
// failure into the result's typed `error` field, so no call fails across
// the socket for bad input or a slow unit.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <utility>

#include "locus.capnp.h"
#include "locus/common/metrics.h"
#include "locus/server/access.h"
#include "locus/server/scatter_gather.h"

namespace locus::server {

// The calls of LocationService, as labels on the server's metrics.
enum class Method : size_t { kNearest, kWithin, kGet, kStats, kNearestMany, kWithinMany };
inline constexpr std::array<const char*, 6> kMethodNames{"nearest", "within",       "get",
                                                         "stats",   "nearest_many", "within_many"};

// What the server has answered, by Method. Written by the event-loop
// thread; any thread may read it.
struct ServiceCounters {
  std::array<metrics::Counter, kMethodNames.size()> calls;
  std::array<metrics::Counter, kMethodNames.size()> errors;   // answered with an `error`
  std::array<metrics::Counter, kMethodNames.size()> partial;  // answered without every unit
  std::array<metrics::Histogram, kMethodNames.size()> seconds;
  metrics::Gauge streams;  // HTTP position streams open (/v1/stream)

  // Names every metric above in `registry`.
  void expose(metrics::Registry& registry) const;
  // One call answered (over RPC or HTTP), `seconds` after it arrived.
  void record(Method method, bool error, bool partial, double seconds);
};

// Every call is checked against `key` (the API key it logged in with; ""
// for the service a connection starts with) by `auth`, and narrowed to
// what the key's scope reads (access.h).
//
// Thread-affinity: the event-loop thread of its ScatterGather. Ownership:
// `cluster`, `counters` and `auth` must outlive this object (the RPC
// system owns it through the bootstrap capability).
class LocationServiceImpl final : public wire::LocationService::Server {
 public:
  LocationServiceImpl(ScatterGather& cluster, ServiceCounters& counters, const ClientAuth& auth,
                      std::string key = "")
      : cluster_(cluster), counters_(counters), auth_(auth), key_(std::move(key)) {}

  kj::Promise<void> nearest(NearestContext context) override;
  kj::Promise<void> within(WithinContext context) override;
  kj::Promise<void> get(GetContext context) override;
  kj::Promise<void> stats(StatsContext context) override;
  kj::Promise<void> login(LoginContext context) override;
  // Each point's query goes to the cluster in the same turn, so the units
  // get them as a few batches (ScatterGather coalesces).
  kj::Promise<void> nearestMany(NearestManyContext context) override;
  kj::Promise<void> withinMany(WithinManyContext context) override;

 private:
  ScatterGather& cluster_;
  ServiceCounters& counters_;
  const ClientAuth& auth_;
  std::string key_;
};

}  // namespace locus::server
