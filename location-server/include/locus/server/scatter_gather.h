// Scatter/gather over the units of a cluster as an explicit map-reduce:
// each query goes to every unit at once (the map step, one UnitChannel per
// unit), the answers that arrive before one shared deadline are combined by
// the common reducers (locus/common/reduce.h), and the caller learns how many
// units the answer covers.
#pragma once

#include <kj/async-unix.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/query.h"
#include "locus/common/status.h"
#include "locus/server/unit_channel.h"

namespace locus::server {

// How many units an answer covers.
struct Coverage {
  uint32_t total = 0;     // units asked
  uint32_t answered = 0;  // units that answered before the deadline
  bool partial() const { return answered < total; }
};

struct GatheredResult {
  QueryResult result;
  Coverage shards;
};

struct GatheredStats {
  std::vector<UnitStats> units;  // the units that answered, in shard order
  Coverage shards;
};

// Thread-affinity: one thread, the one running the event loop of
// `eventPort` and `timer`; every promise it returns resolves on that loop.
// Ownership: must outlive the promises it returned. Queries are assumed
// valid (validate() passed); the units check them again.
class ScatterGather {
 public:
  // `units` in shard order (shard i = units[i]); `timeoutMs` is the deadline
  // of each query, counted from when it is scattered. Throws zmq::error_t on
  // a malformed endpoint.
  ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                const std::vector<std::string>& units, int64_t timeoutMs);

  // Global k nearest: every unit's top k merged (mergeNearest).
  kj::Promise<GatheredResult> nearest(const NearestQuery& query);
  // Area matches: the union of every unit's (unionArea), or with countOnly
  // the sum of their counts.
  kj::Promise<GatheredResult> within(const AreaQuery& query);
  // One device, asked of its owning shard only (shardOf); the answer covers
  // that one shard (shards {1, 1}). Errors: notFound for an unknown id,
  // timeout when the owner does not answer in time.
  // Precondition: validateId(id) passed.
  kj::Promise<Result<GatheredResult>> get(const std::string& id);
  // Every unit's counters.
  kj::Promise<GatheredStats> stats();

  uint32_t shardCount() const { return static_cast<uint32_t>(channels_.size()); }
  int64_t timeoutMs() const { return timeoutMs_; }
  // Calls to units still waiting for replies, over all units.
  size_t pending() const;

 private:
  using Replies = kj::Array<kj::Maybe<kj::Own<UnitReplyFrame>>>;

  // The map step: sends the UnitRequest in `message` to every unit and
  // resolves, by the deadline, to each unit's reply or nothing (shard order).
  kj::Promise<Replies> scatter(capnp::MessageBuilder& message);
  // The query results among `replies`; the other replies count as missing.
  static std::vector<QueryResult> resultsOf(Replies& replies, const std::string& what);

  kj::Timer& timer_;
  int64_t timeoutMs_;
  std::vector<std::unique_ptr<UnitChannel>> channels_;  // index = shard id
};

}  // namespace locus::server
