// Scatter/gather over the units of a cluster as an explicit map-reduce:
// each query goes to the units at once (the map step, one UnitChannel per
// unit), the answers that arrive before one shared deadline are combined by
// the common reducers (locus/common/reduce.h), and the caller learns how
// much of the cluster the answer covers.
//
// With replicas (SPEC "Replication and durability") every partition is
// answered by exactly one replica, so counts stay exact: for each query the
// first replica of each partition that is up and serving it (the owner
// first) is chosen, and each unit is told which partitions to answer for
// (UnitRequest.only). A partition whose replica does not answer by half the
// deadline, or says it does not serve it (it is catching up), is asked of
// its next replica within the rest (failover per query, a hedge); the
// answer is partial only when no replica of some partition answered.
//
// A unit is marked down when it misses a hedge or a probe, and is skipped
// while a replica of its partitions is up; every kProbeInterval each unit
// is asked for its stats (which partitions it serves), and a down unit is
// routed to again after kUpAfterProbes answered probes in a row (so a unit
// that resumes after a stall has heard from the gateway whether it missed
// writes before it serves again).
#pragma once

#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>
#include <zmq.hpp>

#include "locus/common/metrics.h"
#include "locus/common/placement.h"
#include "locus/common/query.h"
#include "locus/common/status.h"
#include "locus/transport/http_endpoint.h"
#include "locus/transport/unit_channel.h"

namespace locus::server {

// The cluster's partitioning, as on the gateway and the units.
struct Replication {
  uint32_t partitions = kDefaultPartitions;
  uint32_t replicas = 0;  // 0 = defaultReplicas(units)
};

struct GatheredResult {
  QueryResult result;
  Coverage shards;
};

// Thread-affinity: one thread, the one running the event loop of
// `eventPort` and `timer`; every promise it returns resolves on that loop.
// Ownership: must outlive the promises it returned. Queries are assumed
// valid (validate() passed); the units check them again.
class ScatterGather final : private kj::TaskSet::ErrorHandler {
 public:
  // `units` in shard order (shard i = units[i]); `timeoutMs` is the deadline
  // of each query, counted from when it is scattered. Throws zmq::error_t on
  // a malformed endpoint. Precondition: Placement::check() passes for the
  // units and `replication`.
  ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                const std::vector<std::string>& units, int64_t timeoutMs,
                Replication replication = {});
  ~ScatterGather();

  // Nearest and area queries are coalesced: those that arrive in one
  // event-loop turn go to each unit as one UnitRequest.queries message (or
  // a few: at most kMaxQueriesPerRequest queries and kMaxResults hits a
  // message) at the end of that turn, and their deadlines count from then.
  // Each answer is reduced on its own, by the reducer of its kind.
  //
  // Global k nearest: every unit's top k merged (mergeNearest).
  kj::Promise<GatheredResult> nearest(const NearestQuery& query);
  // Area matches: the union of every unit's (unionArea), or with countOnly
  // the sum of their counts. Errors: badRequest when a unit refused the
  // query, or when it has no limit and more than kMaxResults devices match.
  kj::Promise<Result<GatheredResult>> within(const AreaQuery& query);
  // One device, asked of a replica of its partition only (the owner first,
  // the next at half the deadline); the answer covers that one unit
  // (shards {1, 1}). Errors: notFound for an unknown id, timeout when no
  // replica answers in time.
  // Precondition: validateId(id) passed.
  kj::Promise<Result<GatheredResult>> get(const std::string& id);
  // Every unit's counters.
  kj::Promise<ClusterStats> stats();

  uint32_t shardCount() const { return static_cast<uint32_t>(units_.size()); }
  const Placement& placement() const { return placement_; }
  // Whether every partition has a replica that is up and serving it, and
  // per unit whether it is routed to, for /readyz. Any thread.
  transport::Readiness readiness() const;
  // Partitions with a replica up and serving them, as of the last probe.
  uint32_t servedPartitions() const { return servedPartitions_.load(); }
  // The channel to each unit, in shard order (for their health).
  std::vector<const transport::UnitChannel*> channels() const;
  int64_t timeoutMs() const { return timeoutMs_; }
  // Calls to units still waiting for replies, over all units.
  size_t pending() const;
  // Nearest and area queries scattered so far, and the messages (per unit)
  // that carried them: their ratio is how well coalescing works. Any thread.
  const metrics::Counter& scatteredQueries() const { return scatteredQueries_; }
  const metrics::Counter& scatterMessages() const { return scatterMessages_; }

  static constexpr kj::Duration kProbeInterval = 200 * kj::MILLISECONDS;
  static constexpr int kUpAfterProbes = 2;

 private:
  struct Unit;
  struct Gather;
  using Replies = std::vector<transport::UnitCallResult>;

  // Sends the UnitRequest in `message` to every unit and resolves, by the
  // deadline, to each unit's reply or why there is none (shard order): the
  // map step of stats.
  kj::Promise<Replies> scatter(capnp::MessageBuilder& message);
  // What one query of a batch gathered: its parts, the first refusal of the
  // query itself (a badRequest answer), and the partitions whose answer to
  // it was lost (a unit answered the batch but failed this query).
  struct Parts {
    std::vector<QueryResult> results;
    std::optional<Error> refused;
    uint32_t lostPartitions = 0;
  };

  // The rounds of a gather: asks every partition still open of its next
  // replica, waits for those answers (until half the deadline in the first
  // round, with replicas), gives up on the silent, and repeats while time
  // and replicas are left.
  kj::Promise<void> rounds(Gather& gather, kj::TimePoint deadline, bool first);
  // Sends a round to the next replica of every open partition; false when
  // none has a replica left to ask.
  bool assign(Gather& gather);
  void received(Gather& gather, size_t call, transport::UnitCallResult& reply);
  // Forgets the calls still waiting (with `replaceableOnly`, those whose
  // every partition has another replica to ask): their units are down,
  // their partitions open again.
  void abandon(Gather& gather, bool replaceableOnly);
  // The replica to ask next for `partition` (from its `tried` first), or
  // none: the index into replicasOf, or -1.
  int nextReplica(uint32_t partition, uint8_t tried) const;
  void markDown(Unit& unit, const std::string& why);
  kj::Promise<void> probe(Unit& unit);
  void refreshReadiness();
  kj::Promise<Result<GatheredResult>> getFrom(const std::string& id, uint32_t partition,
                                              std::vector<uint32_t> candidates, size_t next,
                                              kj::TimePoint deadline);

  // A reduced answer or why there is none. (Not a Result: inside KJ's
  // promise machinery GCC 12 takes the std::variant for uninitialized.)
  struct Outcome {
    Outcome(GatheredResult g) : gathered(std::move(g)) {}
    Outcome(Error e) : failed(true), error(std::move(e)) {}
    GatheredResult gathered;
    bool failed = false;
    Error error;
  };
  // A query waiting for the end of this turn, as the units will get it.
  struct Pending {
    std::variant<NearestQuery, AreaQuery> query;
    uint32_t limit = 0;  // an area query's own limit (the units get kMaxResults for 0)
    kj::Own<kj::PromiseFulfiller<Outcome>> answer;
  };
  kj::Promise<Outcome> enqueue(Pending pending);
  // Scatters this turn's queries, a few messages at most, and answers each
  // by the reduce of its kind.
  void flush();
  // The map step's output for one query of a batch, reduced.
  Outcome reduce(const Pending& pending, Parts parts, Coverage coverage) const;
  void taskFailed(kj::Exception&& exception) override;

  kj::Timer& timer_;
  int64_t timeoutMs_;
  Placement placement_;
  std::vector<std::unique_ptr<Unit>> units_;  // index = shard id
  std::vector<Pending> queue_;                // this turn's, not yet sent
  metrics::Counter scatteredQueries_;
  metrics::Counter scatterMessages_;
  std::atomic<uint32_t> servedPartitions_{0};  // with a routable, serving replica
  kj::TaskSet tasks_;          // flushes and batches in flight; declared after units_
  kj::Promise<void> probing_;  // every unit's probe loop; declared last
};

}  // namespace locus::server
