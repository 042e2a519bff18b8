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
#include "locus/common/wire.h"

namespace locus::server {
namespace {

// First segment of a request without a polygon: a nearest query is ~12
// words. The default (1,024 words) meant an 8 KiB calloc per query.
constexpr unsigned kSmallRequestWords = 64;

}  // namespace

struct ScatterGather::Unit {
  uint32_t index;
  std::unique_ptr<transport::UnitChannel> channel;  // queries
  std::unique_ptr<transport::UnitChannel> prober;   // stats probes, apart from the data path
  bool down = true;                   // missed a hedge or a probe: skipped while a replica is up
  bool seen = false;                  // a probe was answered since the start
  int answeredProbes = 0;             // in a row, while down
  std::vector<bool> serving;          // by partition, as the unit last said
  std::atomic<bool> routable{false};  // !down, for readiness() on other threads
  std::atomic<uint32_t> notServing{0};
};

// One batch of queries on its way through the rounds of a gather.
struct ScatterGather::Gather {
  enum State : uint8_t { kOpen, kAsked, kCovered };
  struct Call {
    uint32_t unit;
    std::vector<uint32_t> partitions;
    bool live = true;  // waited for
  };
  explicit Gather(size_t words) : message(static_cast<unsigned>(words)) {}

  kj::Array<Pending> batch;
  capnp::MallocMessageBuilder message;  // the queries; `only` is rewritten per call
  std::vector<Parts> parts;             // by query
  std::vector<State> state;             // by partition
  std::vector<uint8_t> tried;           // by partition: replicas asked so far
  std::vector<Call> calls;
  size_t outstanding = 0;             // live calls
  std::vector<bool> asked, answered;  // by unit
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> roundDone;
  kj::Vector<kj::Promise<void>> inFlight;  // declared last: destroyed first
};

ScatterGather::ScatterGather(zmq::context_t& context, kj::UnixEventPort& eventPort,
                             kj::Timer& timer, const std::vector<std::string>& units,
                             int64_t timeoutMs, Replication replication)
    : timer_(timer),
      timeoutMs_(timeoutMs),
      placement_(static_cast<uint32_t>(units.size()), replication.partitions,
                 replication.replicas != 0 ? replication.replicas
                                           : defaultReplicas(static_cast<uint32_t>(units.size()))),
      tasks_(*this),
      probing_(nullptr) {
  units_.reserve(units.size());
  for (uint32_t i = 0; i < units.size(); ++i) {
    auto unit = std::make_unique<Unit>();
    unit->index = i;
    unit->channel = std::make_unique<transport::UnitChannel>(context, eventPort, timer, units[i]);
    unit->prober = std::make_unique<transport::UnitChannel>(context, eventPort, timer, units[i],
                                                            /*maxQueued=*/1);
    unit->serving.assign(placement_.partitions(), true);
    units_.push_back(std::move(unit));
  }
  auto loops = kj::heapArrayBuilder<kj::Promise<void>>(units_.size());
  for (auto& unit : units_) loops.add(probe(*unit));
  probing_ = kj::joinPromises(loops.finish()).eagerlyEvaluate([](kj::Exception&& e) {
    spdlog::error("unit probes stopped: {}", e.getDescription().cStr());
  });
}

ScatterGather::~ScatterGather() {
  probing_ = nullptr;  // before the channels the probes use
}

std::vector<const transport::UnitChannel*> ScatterGather::channels() const {
  std::vector<const transport::UnitChannel*> out;
  for (const auto& u : units_) out.push_back(u->channel.get());
  return out;
}

size_t ScatterGather::pending() const {
  size_t n = 0;
  for (const auto& u : units_) n += u->channel->pending();
  return n;
}

void ScatterGather::markDown(Unit& unit, const std::string& why) {
  unit.answeredProbes = 0;
  if (unit.down) return;
  unit.down = true;
  unit.routable = false;
  if (placement_.replicas() > 1) {
    spdlog::warn("unit {} ({}) {}: asking other replicas of its partitions until it answers again",
                 unit.index, unit.channel->endpoint(), why);
  } else {
    spdlog::warn("unit {} ({}) {}", unit.index, unit.channel->endpoint(), why);
  }
  refreshReadiness();
}

kj::Promise<void> ScatterGather::probe(Unit& unit) {
  capnp::MallocMessageBuilder message(kSmallRequestWords);
  message.initRoot<wire::UnitRequest>().initQueries(1)[0].setStats();
  const kj::TimePoint next = timer_.now() + kProbeInterval;
  return unit.prober->call(message, next)
      .then([this, &unit, next](transport::UnitCallResult&& reply) {
        auto root = transport::replyOf(reply, unit.prober->endpoint());
        bool answered = false;
        try {
          if (root && root->isAnswers() && root->getAnswers().size() == 1 &&
              root->getAnswers()[0].isStats()) {
            auto stats = root->getAnswers()[0].getStats();
            std::fill(unit.serving.begin(), unit.serving.end(), true);
            uint32_t notServing = 0;
            if (stats.getPartitions() == placement_.partitions()) {
              for (uint32_t p : stats.getNotServing()) {
                if (p < unit.serving.size() && unit.serving[p]) {
                  unit.serving[p] = false;
                  ++notServing;
                }
              }
            }
            unit.notServing = notServing;
            answered = true;
          }
        } catch (const kj::Exception&) {
          // Malformed: counts as not answering.
        }
        if (!answered) {
          markDown(unit, "does not answer its probe");
        } else if (unit.down && (!unit.seen || ++unit.answeredProbes >= kUpAfterProbes)) {
          // At the start one answer will do: nobody has missed anything yet.
          unit.down = false;
          unit.routable = true;
          spdlog::info("unit {} ({}) answers{}: routing to it", unit.index,
                       unit.channel->endpoint(), unit.seen ? " again" : "");
        }
        unit.seen = unit.seen || answered;
        refreshReadiness();
      })
      .catch_([&unit](kj::Exception&& e) {
        // One bad probe must not end the loop: the next one asks again.
        spdlog::error("probe of unit {} failed: {}", unit.index, e.getDescription().cStr());
      })
      .then([this, next]() { return timer_.atTime(next); })
      .then([this, &unit]() { return probe(unit); });
}

void ScatterGather::refreshReadiness() {
  uint32_t served = 0;
  for (uint32_t p = 0; p < placement_.partitions(); ++p) {
    for (uint32_t u : placement_.replicasOf(p)) {
      if (!units_[u]->down && units_[u]->serving[p]) {
        ++served;
        break;
      }
    }
  }
  servedPartitions_ = served;
}

transport::Readiness ScatterGather::readiness() const {
  transport::Readiness r;
  const uint32_t served = servedPartitions_.load();
  r.ready = served == placement_.partitions();
  r.detail["partitions"] = {
      {"total", placement_.partitions()}, {"served", served}, {"replicas", placement_.replicas()}};
  auto units = nlohmann::ordered_json::array();
  for (const auto& u : units_) {
    units.push_back({{"shard", u->index},
                     {"endpoint", u->channel->endpoint()},
                     {"routed", u->routable.load()},
                     {"partitions_not_serving", u->notServing.load()}});
  }
  r.detail["routing"] = std::move(units);
  return r;
}

kj::Promise<ScatterGather::Replies> ScatterGather::scatter(capnp::MessageBuilder& message) {
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  // One timer for the whole scatter, not one per unit: each call only
  // records its reply; the deadline cancels the calls still waiting, whose
  // slots keep their timeout.
  auto replies = kj::heap<Replies>();
  replies->reserve(units_.size());
  // (No message to format per query: a timeout is counted, not told.)
  for (size_t shard = 0; shard < units_.size(); ++shard) {
    replies->push_back(Error{ErrorCode::kTimeout, "no reply"});
  }
  Replies* slots = replies.get();
  auto calls = kj::heapArrayBuilder<kj::Promise<void>>(units_.size());
  for (size_t shard = 0; shard < units_.size(); ++shard) {
    calls.add(units_[shard]
                  ->channel->callUnbounded(message)
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
// Whether the answer counts for the query (a result or a refusal).
template <typename Parts>
bool collect(const Result<wire::QueryResult::Reader>& answer, Parts& parts, const std::string& what,
             size_t shard) {
  if (answer) {
    parts.results.push_back(readQueryResult(*answer));
    return true;
  }
  if (answer.error().code == ErrorCode::kBadRequest) {
    if (!parts.refused) parts.refused = answer.error();
    return true;
  }
  if (answer.error().code != ErrorCode::kTimeout) {
    spdlog::warn("{}: shard {}: {}", what, shard, answer.error().message);
  }
  return false;
}

const char* kindOf(const std::variant<NearestQuery, AreaQuery>& query) {
  return std::holds_alternative<NearestQuery>(query) ? "nearest" : "within";
}

template <typename List>
bool holds(List list, uint32_t value) {
  for (uint32_t v : list)
    if (v == value) return true;
  return false;
}

// The query result one answer of a batch carries, or why it carries none.
Result<wire::QueryResult::Reader> resultIn(wire::QueryAnswer::Reader answer) {
  if (answer.isResult()) return answer.getResult();
  if (answer.isError()) return readError(answer.getError());
  return Error{ErrorCode::kInternal, "answered with the wrong kind"};
}

}  // namespace

int ScatterGather::nextReplica(uint32_t partition, uint8_t tried) const {
  const auto replicas = placement_.replicasOf(partition);
  // The first untried replica that is up and serves it; else the first
  // untried at all (nothing better is left: it may answer after all).
  for (size_t i = tried; i < replicas.size(); ++i) {
    const Unit& u = *units_[replicas[i]];
    if (!u.down && u.serving[partition]) return static_cast<int>(i);
  }
  return tried < replicas.size() ? tried : -1;
}

bool ScatterGather::assign(Gather& g) {
  const uint32_t partitions = placement_.partitions();
  std::vector<std::vector<uint32_t>> perUnit(units_.size());
  for (uint32_t p = 0; p < partitions; ++p) {
    if (g.state[p] != Gather::kOpen) continue;
    const int r = nextReplica(p, g.tried[p]);
    if (r < 0) continue;  // no replica left: missing
    g.tried[p] = static_cast<uint8_t>(r + 1);
    g.state[p] = Gather::kAsked;
    perUnit[placement_.replicasOf(p)[static_cast<size_t>(r)]].push_back(p);
  }
  bool sent = false;
  auto request = g.message.getRoot<wire::UnitRequest>();
  for (uint32_t u = 0; u < units_.size(); ++u) {
    if (perUnit[u].empty()) continue;
    if (placement_.replicas() > 1) {
      // Only these: its other partitions are answered by other replicas.
      auto only = request.initOnly();
      only.setPartitions(partitions);
      auto serve = only.initServe(static_cast<unsigned>(perUnit[u].size()));
      for (size_t i = 0; i < perUnit[u].size(); ++i)
        serve.set(static_cast<unsigned>(i), perUnit[u][i]);
    }
    const size_t call = g.calls.size();
    g.calls.push_back(Gather::Call{u, std::move(perUnit[u])});
    g.asked[u] = true;
    ++g.outstanding;
    sent = true;
    g.inFlight.add(
        units_[u]
            ->channel->callUnbounded(g.message)
            .then([this, &g, call](transport::UnitCallResult&& reply) { received(g, call, reply); })
            .eagerlyEvaluate(nullptr));
  }
  return sent;
}

void ScatterGather::received(Gather& g, size_t index, transport::UnitCallResult& reply) {
  Gather::Call& call = g.calls[index];
  if (!call.live) return;  // given up on at a hedge: others answer for it
  call.live = false;
  --g.outstanding;
  Unit& unit = *units_[call.unit];
  auto root = transport::replyOf(reply, unit.channel->endpoint());
  bool answered = false;
  try {
    if (root && root->isAnswers() && root->getAnswers().size() == g.batch.size()) {
      // Read whole before anything counts: a reply malformed halfway
      // must not leave parts behind that another replica answers again.
      const auto notServing = root->getNotServing();
      uint32_t covered = 0;
      for (uint32_t p : call.partitions) {
        covered += notServing.size() == 0 || !holds(notServing, p) ? 1 : 0;
      }
      const auto answers = root->getAnswers();
      std::vector<Parts> mine(g.batch.size());
      for (size_t i = 0; i < g.batch.size(); ++i) {
        if (!collect(resultIn(answers[static_cast<unsigned>(i)]), mine[i], kindOf(g.batch[i].query),
                     call.unit))
          mine[i].lostPartitions = covered;
      }
      for (uint32_t p : notServing) {
        if (p < unit.serving.size()) unit.serving[p] = false;
      }
      for (uint32_t p : call.partitions) {
        const bool serves = notServing.size() == 0 || !holds(notServing, p);
        g.state[p] = serves ? Gather::kCovered : Gather::kOpen;
      }
      for (size_t i = 0; i < g.batch.size(); ++i) {
        Parts& into = g.parts[i];
        for (auto& r : mine[i].results) into.results.push_back(std::move(r));
        if (!into.refused && mine[i].refused) into.refused = std::move(mine[i].refused);
        into.lostPartitions += mine[i].lostPartitions;
      }
      answered = true;
      g.answered[call.unit] = true;
    } else if (root) {
      spdlog::warn("shard {} answered a batch with the wrong kind", call.unit);
    } else if (root.error().code == ErrorCode::kOverloaded ||
               root.error().code == ErrorCode::kUnavailable) {
      markDown(unit, root.error().message);
    } else {
      spdlog::warn("shard {} ({}) refused a batch: {}", call.unit, unit.channel->endpoint(),
                   root.error().message);
    }
  } catch (const kj::Exception& e) {
    spdlog::warn("shard {} sent a malformed reply: {}", call.unit, e.getDescription().cStr());
  }
  if (!answered) {
    for (uint32_t p : call.partitions) g.state[p] = Gather::kOpen;
  }
  if (g.outstanding == 0) {
    KJ_IF_MAYBE (done, g.roundDone) {
      (*done)->fulfill();
      g.roundDone = nullptr;
    }
  }
}

void ScatterGather::abandon(Gather& g, bool replaceableOnly) {
  for (Gather::Call& call : g.calls) {
    if (!call.live) continue;
    if (replaceableOnly) {
      // At the hedge: only a call every partition of which has another
      // replica to ask; the others may still answer in the second half.
      bool replaceable = true;
      for (uint32_t p : call.partitions)
        replaceable = replaceable && nextReplica(p, g.tried[p]) >= 0;
      if (!replaceable) continue;
    }
    call.live = false;
    --g.outstanding;
    for (uint32_t p : call.partitions) g.state[p] = Gather::kOpen;
    markDown(*units_[call.unit], "missed a query's deadline");
  }
  if (g.outstanding == 0) g.roundDone = nullptr;
}

kj::Promise<void> ScatterGather::rounds(Gather& g, kj::TimePoint deadline, bool first) {
  assign(g);
  if (g.outstanding == 0) return kj::READY_NOW;  // nothing sent, nothing left to wait for
  kj::TimePoint until = deadline;
  if (first && placement_.replicas() > 1) {
    // The hedge: half the deadline for the chosen replicas, half for the next.
    until = std::min(deadline, timer_.now() + timeoutMs_ * kj::MILLISECONDS / 2);
  }
  auto paf = kj::newPromiseAndFulfiller<void>();
  g.roundDone = kj::mv(paf.fulfiller);
  return paf.promise.exclusiveJoin(timer_.atTime(until))
      .then([this, &g, deadline]() -> kj::Promise<void> {
        g.roundDone = nullptr;
        if (timer_.now() >= deadline) {
          abandon(g, /*replaceableOnly=*/false);
          return kj::READY_NOW;
        }
        abandon(g, /*replaceableOnly=*/true);
        return rounds(g, deadline, false);
      });
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
  // A grid's cells count as hits in the reply's budget: 8 bytes a cell, up
  // to ~190 a hit, so one hit's room for every 16 cells leaves slack.
  if (a.grid.on()) return static_cast<uint32_t>(a.grid.cells() / 16 + 1);
  return a.countOnly ? 0 : a.limit;  // limit: kMaxResults for "all" (within())
}

// About how many words a query takes in a request: polygons can be large
// (up to the RPC message limit), so a batch is bounded in size too.
uint64_t requestWords(const std::variant<NearestQuery, AreaQuery>& query) {
  constexpr uint64_t kFixedWords = 16;
  const auto* a = std::get_if<AreaQuery>(&query);
  if (a == nullptr) return kFixedWords;
  const auto* polygon = std::get_if<geo::MultiPolygon>(&a->area);
  if (polygon == nullptr) return kFixedWords;
  uint64_t words = kFixedWords;
  for (const auto& part : polygon->parts()) {
    words += 2;
    for (const auto& ring : part.rings()) words += 2 * ring.size() + 2;
  }
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
    auto g = kj::heap<Gather>(kSmallRequestWords * n + placement_.partitions() / 2);
    auto batch = kj::heapArrayBuilder<Pending>(n);
    for (size_t i = start; i < start + n; ++i) batch.add(std::move(queue[i]));
    g->batch = batch.finish();
    auto queries = g->message.initRoot<wire::UnitRequest>().initQueries(static_cast<unsigned>(n));
    for (size_t i = 0; i < n; ++i) writeQuery(g->batch[i].query, queries[static_cast<unsigned>(i)]);
    g->parts.resize(n);
    g->state.assign(placement_.partitions(), Gather::kOpen);
    g->tried.assign(placement_.partitions(), 0);
    g->asked.assign(units_.size(), false);
    g->answered.assign(units_.size(), false);
    const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
    Gather& ref = *g;
    tasks_.add(rounds(ref, deadline, true).then([this, g = kj::mv(g)]() mutable {
      Coverage coverage{0, 0, placement_.partitions(), 0};
      for (size_t u = 0; u < units_.size(); ++u) {
        coverage.total += g->asked[u] ? 1 : 0;
        coverage.answered += g->answered[u] ? 1 : 0;
      }
      for (auto state : g->state) coverage.partitionsAnswered += state == Gather::kCovered ? 1 : 0;
      for (size_t i = 0; i < g->batch.size(); ++i) {
        Coverage mine = coverage;
        mine.partitionsAnswered -= std::min(mine.partitionsAnswered, g->parts[i].lostPartitions);
        g->batch[i].answer->fulfill(reduce(g->batch[i], std::move(g->parts[i]), mine));
      }
    }));
  }
}

ScatterGather::Outcome ScatterGather::reduce(const Pending& pending, Parts parts,
                                             Coverage shards) const {
  if (const auto* n = std::get_if<NearestQuery>(&pending.query)) {
    return Outcome(GatheredResult{mergeNearest(std::move(parts.results), n->k), shards});
  }
  const auto& area = std::get<AreaQuery>(pending.query);
  if (parts.refused) return Outcome(*parts.refused);
  if (area.countOnly) {
    QueryResult counted;
    counted.count = sumCounts(parts.results);
    if (area.grid.on()) counted.cells = sumCells(parts.results, area.grid.cells());
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
  const uint32_t partition = partitionOf(id, placement_.partitions());
  // Its replicas in the order they are worth asking: up and serving first.
  std::vector<uint32_t> candidates;
  for (uint32_t u : placement_.replicasOf(partition)) {
    if (!units_[u]->down && units_[u]->serving[partition]) candidates.push_back(u);
  }
  for (uint32_t u : placement_.replicasOf(partition)) {
    if (std::find(candidates.begin(), candidates.end(), u) == candidates.end())
      candidates.push_back(u);
  }
  const kj::TimePoint deadline = timer_.now() + timeoutMs_ * kj::MILLISECONDS;
  return getFrom(id, partition, std::move(candidates), 0, deadline);
}

kj::Promise<Result<GatheredResult>> ScatterGather::getFrom(const std::string& id,
                                                           uint32_t partition,
                                                           std::vector<uint32_t> candidates,
                                                           size_t next, kj::TimePoint deadline) {
  const uint32_t shard = candidates[next];
  Unit& unit = *units_[shard];
  capnp::MallocMessageBuilder message(kSmallRequestWords);
  auto request = message.initRoot<wire::UnitRequest>();
  request.initQueries(1)[0].setGet(capnp::Text::Reader(id.data(), id.size()));
  const bool more = next + 1 < candidates.size();
  if (placement_.replicas() > 1) {
    auto only = request.initOnly();
    only.setPartitions(placement_.partitions());
    only.initServe(1).set(0, partition);
  }
  const kj::TimePoint until =
      more ? std::min(deadline, timer_.now() + timeoutMs_ * kj::MILLISECONDS / 2) : deadline;
  return unit.channel->call(message, until)
      .then([this, &unit, id, partition, candidates = std::move(candidates), next, more, deadline](
                transport::UnitCallResult&& reply) mutable -> kj::Promise<Result<GatheredResult>> {
        const uint32_t shard = unit.index;
        auto root = transport::replyOf(
            reply, fmt::format("shard {} ({})", shard, unit.channel->endpoint()));
        std::optional<Result<GatheredResult>> answer;
        if (!root) {
          if (root.error().code == ErrorCode::kTimeout) {
            markDown(unit, "missed a query's deadline");
            answer = Error{ErrorCode::kTimeout,
                           fmt::format("shard {} ({}), which owns this id, did not answer within "
                                       "{} ms",
                                       shard, unit.channel->endpoint(), timeoutMs_)};
          } else {
            answer = root.error();
          }
        } else {
          try {
            if (!root->isAnswers() || root->getAnswers().size() != 1) {
              answer = Error{ErrorCode::kInternal,
                             fmt::format("shard {} answered with the wrong kind", shard)};
            } else if (holds(root->getNotServing(), partition)) {
              unit.serving[partition] = false;
              answer = Error{
                  ErrorCode::kUnavailable,
                  fmt::format("no replica of partition {} serves it yet (catching up)", partition)};
            } else {
              auto found = resultIn(root->getAnswers()[0]);
              if (!found) return Result<GatheredResult>(found.error());  // notFound, or refused
              return Result<GatheredResult>(
                  GatheredResult{readQueryResult(*found), Coverage{1, 1, 0, 0}});
            }
          } catch (const kj::Exception& e) {
            answer = Error{ErrorCode::kInternal, fmt::format("shard {} sent a malformed reply: {}",
                                                             shard, e.getDescription().cStr())};
          }
        }
        if (more && timer_.now() < deadline)
          return getFrom(id, partition, std::move(candidates), next + 1, deadline);
        return kj::mv(*answer);
      });
}

kj::Promise<ClusterStats> ScatterGather::stats() {
  capnp::MallocMessageBuilder message(kSmallRequestWords);
  message.initRoot<wire::UnitRequest>().initQueries(1)[0].setStats();
  const uint32_t total = shardCount();
  return scatter(message).then([this, total](Replies&& replies) {
    ClusterStats out;
    out.shards.total = total;
    out.partitions = placement_.partitions();
    out.replicas = placement_.replicas();
    for (size_t shard = 0; shard < replies.size(); ++shard) {
      auto root = transport::replyOf(replies[shard], units_[shard]->channel->endpoint());
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
