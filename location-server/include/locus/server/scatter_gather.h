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
#include <utility>
#include <variant>
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
  // Nearest and area queries scattered so far, and the messages (per unit)
  // that carried them: their ratio is how well coalescing works.
  uint64_t scatteredQueries() const { return scatteredQueries_; }
  uint64_t scatterMessages() const { return scatterMessages_; }

 private:
  using Replies = std::vector<transport::UnitCallResult>;

  // The map step: sends the UnitRequest in `message` to every unit and
  // resolves, by the deadline, to each unit's reply or why there is none
  // (shard order).
  kj::Promise<Replies> scatter(capnp::MessageBuilder& message);
  // The query results among `replies` to a UnitRequest.queries of `batch`
  // entries, for entry `index`, and the first refusal of that query itself
  // (a badRequest answer); the other replies count as missing.
  struct Parts {
    std::vector<QueryResult> results;
    std::optional<Error> refused;
  };
  Parts resultsOf(Replies& replies, const std::string& what, size_t index, size_t batch) const;

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
  Outcome reduce(const Pending& pending, Parts parts) const;
  void taskFailed(kj::Exception&& exception) override;

  kj::Timer& timer_;
  int64_t timeoutMs_;
  std::vector<std::unique_ptr<transport::UnitChannel>> channels_;  // index = shard id
  std::vector<Pending> queue_;                                     // this turn's, not yet sent
  uint64_t scatteredQueries_ = 0;
  uint64_t scatterMessages_ = 0;
  kj::TaskSet tasks_;  // flushes and batches in flight; declared after channels_
};

}  // namespace locus::server
