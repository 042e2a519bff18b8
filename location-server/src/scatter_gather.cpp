// GCC 12 warns, wrongly, that KJ's promise nodes may destroy an unset
// std::string when a promise of a type holding one (Outcome) is rejected
// (-Wmaybe-uninitialized in kj/async-inl.h). It must be silenced before
// the KJ headers are read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "locus/server/scatter_gather.h"

#include <capnp/message.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "locus/common/reduce.h"
#include "locus/common/shard.h"
#include "locus/common/wire.h"

namespace locus::server {
namespace {

// First segment of a request without a polygon: a nearest query is ~12
// words. The default (1,024 words) meant an 8 KiB calloc per query.
constexpr unsigned kSmallRequestWords = 64;

}  // namespace

ScatterGather::ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort,
                             kj::Timer& timer, const std::vector<std::string>& units,
                             int64_t timeoutMs)
    : timer_(timer), timeoutMs_(timeoutMs), tasks_(*this) {
  channels_.reserve(units.size());
  for (const auto& endpoint : units) {
    channels_.push_back(
        std::make_unique<transport::UnitChannel>(context, eventPort, timer, endpoint));
  }
}

std::vector<const transport::UnitChannel*> ScatterGather::channels() const {
  std::vector<const transport::UnitChannel*> out;
  for (const auto& c : channels_) out.push_back(c.get());
  return out;
}

size_t ScatterGather::pending() const {
  size_t n = 0;
  for (const auto& c : channels_) n += c->pending();
  return n;
}

kj::Promise<ScatterGather::Replies> ScatterGather::scatter(capnp::MessageBuilder& message) {
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  // One timer for the whole scatter, not one per unit: each call only
  // records its reply; the deadline cancels the calls still waiting, whose
  // slots keep their timeout.
  auto replies = kj::heap<Replies>();
  replies->reserve(channels_.size());
  // (No message to format per query: a timeout is counted, not told.)
  for (size_t shard = 0; shard < channels_.size(); ++shard) {
    replies->push_back(Error{ErrorCode::kTimeout, "no reply"});
  }
  Replies* slots = replies.get();
  auto calls = kj::heapArrayBuilder<kj::Promise<void>>(channels_.size());
  for (size_t shard = 0; shard < channels_.size(); ++shard) {
    calls.add(channels_[shard]
                  ->callUnbounded(message)
                  .then([slots, shard](transport::UnitCallResult&& reply) {
                    (*slots)[shard] = kj::mv(reply);
                  })
                  // Eager: a joined branch runs its continuation only when
                  // all have finished, and at the deadline some never do.
                  .eagerlyEvaluate(nullptr));
  }
  return kj::joinPromises(calls.finish())
      .exclusiveJoin(timer_.atTime(deadline))
      .then([replies = kj::mv(replies)]() mutable { return kj::mv(*replies); });
}

namespace {

// Adds one shard's answer to `parts`: a result, or the refusal when the
// shard found the query itself at fault (badRequest); logs why it is
// neither. A timeout is only counted (as missing), not logged per query.
template <typename Parts>
void collect(const Result<wire::QueryResult::Reader>& answer, Parts& parts, const std::string& what,
             size_t shard) {
  if (answer) {
    parts.results.push_back(readQueryResult(*answer));
  } else if (answer.error().code == ErrorCode::kBadRequest) {
    if (!parts.refused) parts.refused = answer.error();
  } else if (answer.error().code != ErrorCode::kTimeout) {
    spdlog::warn("{}: shard {}: {}", what, shard, answer.error().message);
  }
}

// The query result one answer of a batch carries, or why it carries none.
Result<wire::QueryResult::Reader> resultIn(wire::QueryAnswer::Reader answer) {
  if (answer.isResult()) return answer.getResult();
  if (answer.isError()) return readError(answer.getError());
  return Error{ErrorCode::kInternal, "answered with the wrong kind"};
}

}  // namespace

ScatterGather::Parts ScatterGather::resultsOf(Replies& replies, const std::string& what,
                                              size_t index, size_t batch) const {
  Parts parts;
  parts.results.reserve(replies.size());
  for (size_t shard = 0; shard < replies.size(); ++shard) {
    auto root = transport::replyOf(replies[shard], channels_[shard]->endpoint());
    try {
      if (!root) {
        // The whole request refused (or no reply): missing for each of its
        // queries, not a refusal of any one of them.
        Error error = root.error();
        if (error.code == ErrorCode::kBadRequest) {
          error = Error{ErrorCode::kInternal, "refused the request: " + error.message};
        }
        collect(error, parts, what, shard);
      } else if (root->isAnswers() && root->getAnswers().size() == batch) {
        // One answer per query, in the request's order.
        collect(resultIn(root->getAnswers()[static_cast<unsigned>(index)]), parts, what, shard);
      } else {
        collect(Error{ErrorCode::kInternal, "answered a batch with the wrong kind"}, parts, what,
                shard);
      }
    } catch (const kj::Exception& e) {
      spdlog::warn("{}: shard {} sent a malformed reply: {}", what, shard,
                   e.getDescription().cStr());
    }
  }
  return parts;
}

void ScatterGather::taskFailed(kj::Exception&& exception) {
  // The callers of the batch see their answers' fulfillers destroyed.
  spdlog::error("scatter failed: {}", exception.getDescription().cStr());
}

kj::Promise<GatheredResult> ScatterGather::nearest(const NearestQuery& query) {
  // A nearest query's reduce never fails.
  return enqueue(Pending{query, 0, {}}).then([](Outcome&& o) { return std::move(o.gathered); });
}

kj::Promise<Result<GatheredResult>> ScatterGather::within(const AreaQuery& query) {
  // "All" is asked of the units as kMaxResults each, so that every unit
  // answers with its exact count and the refusal can name the total.
  AreaQuery asked = query;
  if (asked.limit == 0 && !asked.countOnly) asked.limit = kMaxResults;
  return enqueue(Pending{std::move(asked), query.limit, {}})
      .then([](Outcome&& o) -> Result<GatheredResult> {
        if (o.failed) return std::move(o.error);
        return std::move(o.gathered);
      });
}

kj::Promise<ScatterGather::Outcome> ScatterGather::enqueue(Pending pending) {
  auto paf = kj::newPromiseAndFulfiller<Outcome>();
  pending.answer = kj::mv(paf.fulfiller);
  if (queue_.empty()) tasks_.add(kj::evalLast([this]() { flush(); }));
  queue_.push_back(std::move(pending));
  return kj::mv(paf.promise);
}

namespace {

// The most hits a query's answer from one unit may carry.
uint64_t hitBudget(const std::variant<NearestQuery, AreaQuery>& query) {
  if (const auto* n = std::get_if<NearestQuery>(&query)) return n->k;
  const auto& a = std::get<AreaQuery>(query);
  return a.countOnly ? 0 : a.limit;  // limit: kMaxResults for "all" (within())
}

// About how many words a query takes in a request: polygons can be large
// (up to the RPC message limit), so a batch is bounded in size too.
uint64_t requestWords(const std::variant<NearestQuery, AreaQuery>& query) {
  constexpr uint64_t kFixedWords = 16;
  const auto* a = std::get_if<AreaQuery>(&query);
  if (a == nullptr) return kFixedWords;
  const auto* polygon = std::get_if<geo::Polygon>(&a->area);
  if (polygon == nullptr) return kFixedWords;
  uint64_t words = kFixedWords;
  for (const auto& ring : polygon->rings()) words += 2 * ring.size() + 2;
  return words;
}

// A request's size bound: half a frame, whatever the polygons.
constexpr uint64_t kMaxRequestWords = kMaxMessageBytes / 2 / sizeof(capnp::word);

void writeQuery(const std::variant<NearestQuery, AreaQuery>& query, wire::Query::Builder b) {
  if (const auto* n = std::get_if<NearestQuery>(&query)) {
    writeNearestQuery(*n, b.initNearest());
  } else {
    writeAreaQuery(std::get<AreaQuery>(query), b.initWithin());
  }
}

}  // namespace

void ScatterGather::flush() {
  std::vector<Pending> queue = std::move(queue_);
  queue_.clear();
  for (size_t start = 0, n = 0; start < queue.size(); start += n) {
    // At most kMaxQueriesPerRequest queries and kMaxResults hits a message,
    // so that every unit's reply fits one (validate() bounds each query),
    // and at most kMaxRequestWords, so that the request does.
    uint64_t hits = 0, words = 0;
    for (n = 0; start + n < queue.size() && n < kMaxQueriesPerRequest; ++n) {
      hits += hitBudget(queue[start + n].query);
      words += requestWords(queue[start + n].query);
      if (n > 0 && (hits > kMaxResults || words > kMaxRequestWords)) break;
    }
    scatteredQueries_ += n;
    ++scatterMessages_;
    auto batch = kj::heapArrayBuilder<Pending>(n);
    for (size_t i = start; i < start + n; ++i) batch.add(std::move(queue[i]));
    capnp::MallocMessageBuilder message(static_cast<unsigned>(kSmallRequestWords * n));
    auto queries = message.initRoot<wire::UnitRequest>().initQueries(static_cast<unsigned>(n));
    for (size_t i = 0; i < n; ++i) writeQuery(batch[i].query, queries[static_cast<unsigned>(i)]);
    tasks_.add(scatter(message).then([this, batch = batch.finish()](Replies&& replies) mutable {
      for (size_t i = 0; i < batch.size(); ++i) {
        const char* what =
            std::holds_alternative<NearestQuery>(batch[i].query) ? "nearest" : "within";
        batch[i].answer->fulfill(reduce(batch[i], resultsOf(replies, what, i, batch.size())));
      }
    }));
  }
}

ScatterGather::Outcome ScatterGather::reduce(const Pending& pending, Parts parts) const {
  const Coverage shards{shardCount(), static_cast<uint32_t>(parts.results.size())};
  if (const auto* n = std::get_if<NearestQuery>(&pending.query)) {
    return Outcome(GatheredResult{mergeNearest(std::move(parts.results), n->k), shards});
  }
  const auto& area = std::get<AreaQuery>(pending.query);
  if (parts.refused) return Outcome(*parts.refused);
  if (area.countOnly) {
    QueryResult counted;
    counted.count = sumCounts(parts.results);
    return Outcome(GatheredResult{std::move(counted), shards});
  }
  // Each part is within the bound; together they may not be.
  if (const uint64_t matched = sumCounts(parts.results);
      pending.limit == 0 && matched > kMaxResults) {
    return Outcome(badRequest(tooManyMatches(matched, shards.partial())));
  }
  return Outcome(GatheredResult{
      unionArea(std::move(parts.results), pending.limit, hasCenter(area.area)), shards});
}

kj::Promise<Result<GatheredResult>> ScatterGather::get(const std::string& id) {
  const uint32_t shard = shardOf(id, shardCount());
  capnp::MallocMessageBuilder message(kSmallRequestWords);
  message.initRoot<wire::UnitRequest>().initQueries(1)[0].setGet(
      capnp::Text::Reader(id.data(), id.size()));
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  transport::UnitChannel& channel = *channels_[shard];
  const int64_t timeoutMs = timeoutMs_;
  return channel.call(message, deadline)
      .then([shard, timeoutMs, endpoint = channel.endpoint()](
                transport::UnitCallResult&& reply) -> Result<GatheredResult> {
        auto root = transport::replyOf(reply, fmt::format("shard {} ({})", shard, endpoint));
        if (!root) {
          if (root.error().code != ErrorCode::kTimeout) return root.error();
          return Error{ErrorCode::kTimeout,
                       fmt::format("shard {} ({}), which owns this id, did not answer within {} ms",
                                   shard, endpoint, timeoutMs)};
        }
        try {
          if (!root->isAnswers() || root->getAnswers().size() != 1) {
            return Error{ErrorCode::kInternal,
                         fmt::format("shard {} answered with the wrong kind", shard)};
          }
          auto found = resultIn(root->getAnswers()[0]);
          if (!found) return found.error();  // notFound, or the unit's own refusal
          return GatheredResult{readQueryResult(*found), Coverage{1, 1}};
        } catch (const kj::Exception& e) {
          return Error{ErrorCode::kInternal, fmt::format("shard {} sent a malformed reply: {}",
                                                         shard, e.getDescription().cStr())};
        }
      });
}

kj::Promise<GatheredStats> ScatterGather::stats() {
  capnp::MallocMessageBuilder message(kSmallRequestWords);
  message.initRoot<wire::UnitRequest>().initQueries(1)[0].setStats();
  const uint32_t total = shardCount();
  return scatter(message).then([this, total](Replies&& replies) {
    GatheredStats out;
    out.shards.total = total;
    for (size_t shard = 0; shard < replies.size(); ++shard) {
      auto root = transport::replyOf(replies[shard], channels_[shard]->endpoint());
      if (!root) continue;
      try {
        if (!root->isAnswers() || root->getAnswers().size() != 1) continue;
        const auto answer = root->getAnswers()[0];
        if (!answer.isStats()) continue;
        out.units.push_back(readUnitStats(answer.getStats()));
      } catch (const kj::Exception& e) {
        spdlog::warn("stats: shard {} sent a malformed reply: {}", shard,
                     e.getDescription().cStr());
      }
    }
    out.shards.answered = static_cast<uint32_t>(out.units.size());
    return out;
  });
}

}  // namespace locus::server
