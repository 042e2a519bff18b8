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
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "locus/common/query.h"
#include "locus/common/status.h"
#include "locus/transport/unit_channel.h"

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
class ScatterGather final : private kj::TaskSet::ErrorHandler {
 public:
  // `units` in shard order (shard i = units[i]); `timeoutMs` is the deadline
  // of each query, counted from when it is scattered. Throws zmq::error_t on
  // a malformed endpoint.
  ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                const std::vector<std::string>& units, int64_t timeoutMs);

  // Global k nearest: every unit's top k merged (mergeNearest). The nearest
  // queries that arrive in one event-loop turn are sent to each unit as one
  // message (UnitRequest.queries) at the end of that turn; their deadlines
  // count from then.
  kj::Promise<GatheredResult> nearest(const NearestQuery& query);
  // Area matches: the union of every unit's (unionArea), or with countOnly
  // the sum of their counts. Errors: badRequest when a unit refused the
  // query, or when it has no limit and more than kMaxResults devices match.
  kj::Promise<Result<GatheredResult>> within(const AreaQuery& query);
  // One device, asked of its owning shard only (shardOf); the answer covers
  // that one shard (shards {1, 1}). Errors: notFound for an unknown id,
  // timeout when the owner does not answer in time.
  // Precondition: validateId(id) passed.
  kj::Promise<Result<GatheredResult>> get(const std::string& id);
  // Every unit's counters.
  kj::Promise<GatheredStats> stats();

  uint32_t shardCount() const { return static_cast<uint32_t>(channels_.size()); }
  // The channel to each unit, in shard order (for their health).
  std::vector<const transport::UnitChannel*> channels() const;
  int64_t timeoutMs() const { return timeoutMs_; }
  // Calls to units still waiting for replies, over all units.
  size_t pending() const;
  // Nearest queries scattered so far, and the requests (per unit) that
  // carried them: their ratio is how well coalescing works.
  uint64_t nearestQueries() const { return nearestQueries_; }
  uint64_t nearestRequests() const { return nearestRequests_; }

 private:
  using Replies = std::vector<transport::UnitCallResult>;

  // The map step: sends the UnitRequest in `message` to every unit and
  // resolves, by the deadline, to each unit's reply or why there is none
  // (shard order).
  kj::Promise<Replies> scatter(capnp::MessageBuilder& message);
  // The query results among `replies`, and the first refusal of the query
  // itself (a badRequest answer); the other replies count as missing. With
  // `batch` > 0 the replies answer a UnitRequest.queries of that many
  // entries and the results are those of entry `index`.
  struct Parts {
    std::vector<QueryResult> results;
    std::optional<Error> refused;
  };
  static Parts resultsOf(Replies& replies, const std::string& what, size_t index = 0,
                         size_t batch = 0);

  struct PendingNearest {
    NearestQuery query;
    kj::Own<kj::PromiseFulfiller<GatheredResult>> answer;
  };
  // Scatters the queued nearest queries (in messages of at most
  // kMaxQueriesPerRequest) and answers each by its own reduce.
  void flushNearest();
  void taskFailed(kj::Exception&& exception) override;

  kj::Timer& timer_;
  int64_t timeoutMs_;
  std::vector<std::unique_ptr<transport::UnitChannel>> channels_;  // index = shard id
  std::vector<PendingNearest> nearestQueue_;                       // this turn's, not yet sent
  uint64_t nearestQueries_ = 0;
  uint64_t nearestRequests_ = 0;
  kj::TaskSet tasks_;  // flushes and batches in flight; declared after channels_
};

}  // namespace locus::server
