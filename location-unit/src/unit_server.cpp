#include "locus/unit/unit_server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <random>
#include <vector>
#include <zmq_addon.hpp>

#include "copier.h"
#include "locus/common/clock.h"
#include "locus/common/placement.h"
#include "locus/common/shutdown.h"
#include "locus/common/wire.h"
#include "locus/transport/frame.h"
#include "locus/transport/net.h"
#include "locus/transport/poll.h"

namespace locus::unit {
namespace {

// TTL sweeping: how many devices one tick examines (a few hundred µs).
constexpr size_t kExpireScanPerTick = 20'000;
constexpr auto kTickInterval = std::chrono::milliseconds(50);
// No expiry while a dump was read this recently (a dump's cursor is a
// position, and expiring moves devices between positions).
constexpr auto kDumpQuiet = std::chrono::seconds(10);
// Replies queued per peer before a ROUTER drops more (ZeroMQ's default is
// 1,000, as many as the requests it queues).
constexpr int kReplyQueue = 10'000;
// Requests served between checks of the stop fd and the tick clock.
constexpr int kMaxBurst = 256;
// After a stop: how long the unit keeps answering requests it had already
// received, and how long their replies may take to leave.
constexpr auto kDrainLimit = std::chrono::milliseconds(1000);
// ... and for how long an empty queue must stay empty to end the drain: long
// enough for ZeroMQ's io thread, paused at the receive high-water mark, to
// be scheduled and read the rest on a loaded machine (20 ms was not).
constexpr auto kDrainQuiet = std::chrono::milliseconds(100);
// First segment of a reply: a nearest-10 answer is ~150 words, an apply
// outcome a few. Larger answers grow more segments. (The default, 1,024
// words, was an 8 KiB calloc per request.)
constexpr unsigned kReplyFirstSegmentWords = 256;

std::chrono::steady_clock::duration since(std::chrono::steady_clock::time_point start) {
  return std::chrono::steady_clock::now() - start;
}

uint64_t micros(std::chrono::steady_clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

// Why a request's partition set cannot be served, or nothing.
std::optional<std::string> checkPartitionSet(wire::PartitionSet::Reader set) {
  const uint32_t partitions = set.getPartitions();
  if (partitions < 1 || partitions > kMaxPartitions)
    return fmt::format("a partition set of {} partitions; it must be 1..{}", partitions,
                       kMaxPartitions);
  for (uint32_t p : set.getServe()) {
    if (p >= partitions) return fmt::format("partition {} of {} does not exist", p, partitions);
  }
  return std::nullopt;
}

PartitionFilter filterOf(wire::PartitionSet::Reader set) {
  std::vector<uint32_t> serve;
  for (uint32_t partition : set.getServe()) serve.push_back(partition);
  return PartitionFilter(set.getPartitions(), serve);
}

// A SplitMix64 finalizer.
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t randomNonZero() {
  std::random_device random;
  return (uint64_t{random()} << 32 | random()) | 1;
}

// What a request's queries may answer for: the partitions asked (`only`,
// or all) that this unit serves, and those it does not (for the reply).
// Nothing to filter (`filter` empty) when every device may answer.
struct Scope {
  std::optional<PartitionFilter> filter;
  std::vector<uint32_t> notServing;
};

std::optional<std::string> scopeOf(const wire::UnitRequest::Reader request,
                                   const PartitionStates& states, Scope& scope) {
  if (!request.hasOnly()) {
    if (states.allServing()) return std::nullopt;
    scope.notServing = states.notServing();
    std::vector<uint32_t> serve;
    for (uint32_t p = 0; p < states.partitions(); ++p)
      if (states.serving(p)) serve.push_back(p);
    scope.filter.emplace(states.partitions(), serve);
    return std::nullopt;
  }
  auto set = request.getOnly();
  if (auto why = checkPartitionSet(set)) return why;
  if (set.getPartitions() != states.partitions()) {
    // A tool's own partitioning is fine while the unit serves everything.
    if (!states.allServing())
      return fmt::format(
          "the request counts {} partitions and this unit {}: every role of a cluster needs the "
          "same --partitions",
          set.getPartitions(), states.partitions());
    scope.filter.emplace(filterOf(set));
    return std::nullopt;
  }
  std::vector<uint32_t> serve;
  for (uint32_t p : set.getServe()) {
    if (states.serving(p)) {
      serve.push_back(p);
    } else {
      scope.notServing.push_back(p);
    }
  }
  scope.filter.emplace(states.partitions(), serve);
  return std::nullopt;
}

}  // namespace

PartitionStates::PartitionStates(uint32_t partitions, bool serving)
    : serving_(partitions, serving),
      copiesDue_(partitions, 0),
      notServing_(serving ? 0 : partitions) {}

std::vector<uint32_t> PartitionStates::notServing() const {
  std::vector<uint32_t> out;
  out.reserve(notServing_);
  for (uint32_t p = 0; p < partitions(); ++p)
    if (!serving_[p]) out.push_back(p);
  return out;
}

void PartitionStates::set(uint32_t p, bool serving) {
  if (serving_[p] == serving) return;
  serving_[p] = serving;
  if (serving) {
    --notServing_;
  } else {
    ++notServing_;
  }
}

void PartitionStates::order(const CatchUpOrder& order, const std::vector<uint32_t>& wait,
                            const std::vector<uint32_t>& holds) {
  std::fill(copiesDue_.begin(), copiesDue_.end(), 0);
  pending_ = 0;
  if (!holds.empty()) {
    // Not its partitions: no device of theirs is sent to it, none asked of it.
    std::vector<bool> held(partitions(), false);
    for (uint32_t p : holds) held[p] = true;
    for (uint32_t p = 0; p < partitions(); ++p)
      if (!held[p]) set(p, true);
  }
  for (uint32_t p : wait) set(p, false);
  for (const auto& copy : order.copies) {
    for (uint32_t p : copy.partitions) {
      set(p, false);
      if (copiesDue_[p]++ == 0) ++pending_;
    }
  }
  // A partition both waited for and copied waits: its other replicas are
  // not all there yet.
  for (uint32_t p : wait) {
    if (copiesDue_[p] > 0) --pending_;
    copiesDue_[p] = 0;
  }
}

void PartitionStates::copied(const std::vector<uint32_t>& partitions, bool ok) {
  for (uint32_t p : partitions) {
    if (copiesDue_[p] == 0) continue;  // cancelled by a later order
    if (!ok) {
      copiesDue_[p] = 0;  // stays unserved until ordered again
      --pending_;
    } else if (--copiesDue_[p] == 0) {
      --pending_;
      set(p, true);
    }
  }
}

std::optional<std::string> UnitOptions::validate() const {
  if (listen.empty()) return "--listen needs a ZeroMQ endpoint such as tcp://0.0.0.0:7900";
  if (ttlS < 0) return fmt::format("--ttl-s {} must be >= 0 (0 = never expire)", ttlS);
  if (ttlS > int64_t{1} << 40) return fmt::format("--ttl-s {} is too large", ttlS);
  if (maxFutureSkewMs < 0) {
    return fmt::format("--max-future-skew {} ms must be >= 0", maxFutureSkewMs);
  }
  if (fsyncIntervalMs < 1 || fsyncIntervalMs > 10'000)
    return fmt::format("--fsync-interval {} ms must be in [1 ms, 10 s]", fsyncIntervalMs);
  if (snapshotAfterBytes < (uint64_t{1} << 20))
    return fmt::format("--snapshot-after-bytes {} must be at least 1 MiB", snapshotAfterBytes);
  if (auto why = Placement::check(std::max<uint32_t>(replicas, 1), partitions, replicas))
    return why;
  if (curveKey.empty() != curveClients.empty()) {
    return "--curve-key and --curve-clients go together: the unit's keypair and the client "
           "keys it admits";
  }
  if (!httpListen.empty())
    return transport::checkListen("--http-listen", httpListen, "0.0.0.0:7980");
  return std::nullopt;
}

std::optional<StorageOptions> UnitOptions::storage() const {
  if (dataDir.empty()) return std::nullopt;
  return StorageOptions{.dir = dataDir,
                        .fsync = fsync,
                        .fsyncInterval = std::chrono::milliseconds(fsyncIntervalMs),
                        .snapshotAfterBytes = snapshotAfterBytes};
}

void exposeStorage(metrics::Registry& r, const std::string& unit, const StorageCounters& c) {
  const metrics::Labels u{{"unit", unit}};
  r.counter("locus_unit_storage_appends_total", "Batches written to the unit's log", u, c.appends);
  r.counter("locus_unit_storage_append_errors_total",
            "Batches refused because the log could not be written (e.g. a full disk)", u,
            c.appendErrors);
  r.counter("locus_unit_storage_syncs_total", "fdatasync calls on the log that succeeded", u,
            c.syncs);
  r.counter("locus_unit_storage_snapshots_total", "Snapshots written", u, c.snapshots);
  r.counter("locus_unit_storage_snapshot_errors_total", "Snapshots that failed (the logs stay)", u,
            c.snapshotErrors);
  r.gauge("locus_unit_storage_log_bytes", "Bytes in the logs since the last snapshot", u,
          c.logBytes);
  r.gauge("locus_unit_storage_snapshot_seconds", "How long the last snapshot took", u,
          c.snapshotSeconds);
  r.gauge("locus_unit_storage_writable",
          "1 while the unit stores batches, 0 after a failed sync (until it restarts)", u,
          c.writable);
}

void UnitCounters::expose(metrics::Registry& r, const std::string& unit) const {
  const metrics::Labels u{{"unit", unit}};
  const auto with = [&](const char* name, const char* value) {
    return metrics::Labels{{"unit", unit}, {name, value}};
  };
  const char* reports = "Position reports the unit received, by outcome";
  r.counter("locus_unit_reports_total", reports, with("outcome", "applied"), reportsApplied);
  r.counter("locus_unit_reports_total", reports, with("outcome", "stale"), reportsStale);
  r.counter("locus_unit_reports_total", reports, with("outcome", "rejected"), reportsRejected);
  r.counter("locus_unit_batches_total", "Apply batches the unit executed", u, batches);
  r.counter("locus_unit_bad_messages_total", "Requests the unit could not read (refused)", u,
            badMessages);
  for (size_t k = 0; k < kQueryKindNames.size(); ++k) {
    r.counter("locus_unit_queries_total", "Queries the unit answered, by kind",
              with("kind", kQueryKindNames[k]), queries[k]);
    r.histogram("locus_unit_query_duration_seconds",
                "Time the unit spent executing a query, by kind", with("kind", kQueryKindNames[k]),
                querySeconds[k]);
  }
  r.gauge("locus_unit_devices", "Positions the unit holds", u, devices);
  r.gauge("locus_unit_memory_bytes", "Bytes of the unit's index (its own accounting)", u,
          memoryBytes);
  r.gauge("locus_unit_partitions_not_serving",
          "Partitions the unit does not answer for: catching up from their replicas", u,
          partitionsNotServing);
  r.gauge("locus_unit_catch_up_seconds",
          "Seconds since the unit last served every partition (0 while it does): its lag", u,
          catchUpSeconds);
  r.counter("locus_unit_catch_up_copied_devices_total",
            "Positions copied from replicas while catching up", u, copiedDevices);
}

// Executes one request; exceptions from reading the request (kj::Exception)
// propagate to handle(), which answers them with an error.
class UnitService::Handler {
 public:
  Handler(UnitService& service, int64_t nowMs) : s_(service), nowMs_(nowMs) {}

  void apply(wire::ReportBatch::Reader batch, wire::UnitReply::Builder reply) {
    // Read the whole batch before changing anything.
    auto in = batch.getReports();
    std::vector<Report> reports;
    reports.reserve(in.size());
    for (auto r : in) reports.push_back(readReport(r));
    const Admission admission{nowMs_, s_.maxFutureSkewMs_, "unit"};
    BatchOutcome outcome;
    std::vector<Report> admitted;
    admitted.reserve(reports.size());
    for (uint32_t i = 0; i < reports.size(); ++i) {
      if (auto error = admitReport(reports[i], admission)) {
        outcome.rejected.emplace_back(i, std::move(*error));
      } else {
        admitted.push_back(reports[i]);
      }
    }
    // Logged before applied: a batch the disk refuses changes nothing.
    if (s_.storage_ && !admitted.empty()) {
      if (auto error = s_.storage_->append(admitted)) {
        return writeError(Error{ErrorCode::kUnavailable, std::move(*error)}, reply.initError());
      }
      s_.appendedRequest_ = reply.getRequestId();
    }
    for (const Report& r : admitted) {
      if (s_.index_.apply(r) == ApplyOutcome::kStale) ++outcome.stale;
    }
    outcome.accepted = static_cast<uint32_t>(reports.size() - outcome.rejected.size());
    s_.counters_.reportsApplied += outcome.accepted - outcome.stale;
    s_.counters_.reportsStale += outcome.stale;
    s_.counters_.reportsRejected += outcome.rejected.size();
    ++s_.counters_.batches;
    s_.counters_.devices.set(static_cast<double>(s_.index_.size()));
    writeBatchOutcome(outcome, reply.initApplied());
  }

  // A page of the unit's devices from the request's cursor on.
  void dump(wire::DumpRequest::Reader request, wire::UnitReply::Builder reply) {
    std::optional<PartitionFilter> only;
    if (request.hasOnly()) {
      if (auto why = checkPartitionSet(request.getOnly()))
        return writeError(badRequest(*why), reply.initError());
      only.emplace(filterOf(request.getOnly()));
    }
    const uint32_t limit = request.getLimit();
    if (limit < 1 || limit > kMaxDumpPage)
      return writeError(badRequest(fmt::format("a dump page of {} devices; it must be 1..{}", limit,
                                               kMaxDumpPage)),
                        reply.initError());
    const uint64_t cursor = request.getCursor();
    const size_t from = cursor == 0 ? 0 : static_cast<size_t>(cursor - 1);
    std::vector<Report> reports;
    reports.reserve(limit);
    std::vector<std::string> ids;  // the reports view the index only during scan()
    ids.reserve(limit);
    const size_t next = s_.index_.scan(from, limit, only ? &*only : nullptr, [&](const Report& r) {
      ids.emplace_back(r.id);
      reports.push_back(r);
      reports.back().id = ids.back();
    });
    auto page = reply.initPage();
    auto out = page.initReports(static_cast<unsigned>(reports.size()));
    for (size_t i = 0; i < reports.size(); ++i)
      writeReport(reports[i], out[static_cast<unsigned>(i)]);
    page.setCursor(next >= s_.index_.size() ? 0 : next + 1);
    page.setEpoch(s_.dumpEpoch());
    s_.lastDump_ = std::chrono::steady_clock::now();
  }

  // Takes a gateway's catch-up order: its partitions stop serving now; the
  // copies run from the unit's loop (UnitServer::Copier).
  void catchUp(wire::CatchUpRequest::Reader request, wire::UnitReply::Builder reply) {
    const uint32_t partitions = s_.states_.partitions();
    if (request.getPartitions() != partitions)
      return writeError(badRequest(fmt::format("a catch-up order for {} partitions; this unit has "
                                               "{} (--partitions must match)",
                                               request.getPartitions(), partitions)),
                        reply.initError());
    const auto inRange = [&](auto list) -> std::optional<std::string> {
      for (uint32_t p : list)
        if (p >= partitions) return fmt::format("partition {} of {} does not exist", p, partitions);
      return std::nullopt;
    };
    CatchUpOrder order;
    for (auto copy : request.getCopies()) {
      if (auto why = inRange(copy.getServe()))
        return writeError(badRequest(*why), reply.initError());
      auto source = copy.getSource();
      if (source.size() == 0 || copy.getServe().size() == 0) continue;
      auto& c = order.copies.emplace_back();
      c.source = std::string(source.begin(), source.size());
      for (uint32_t p : copy.getServe()) c.partitions.push_back(p);
    }
    if (auto why = inRange(request.getWait()))
      return writeError(badRequest(*why), reply.initError());
    if (auto why = inRange(request.getHolds()))
      return writeError(badRequest(*why), reply.initError());
    std::vector<uint32_t> wait, holds;
    for (uint32_t p : request.getWait()) wait.push_back(p);
    for (uint32_t p : request.getHolds()) holds.push_back(p);
    if (s_.states_.allServing()) s_.notServingSince_ = std::chrono::steady_clock::now();
    s_.states_.order(order, wait, holds);
    spdlog::info(
        "{}: catch-up ordered: {} copies, {} partitions waiting for a live replica; not "
        "serving {} partitions",
        s_.name_, order.copies.size(), wait.size(), s_.states_.notServing().size());
    s_.order_ = std::move(order);
    reply.initApplied();
  }

  // Answers one entry of a request's `queries`, for the devices of `only`
  // (all when null).
  void query(wire::Query::Reader query, wire::QueryAnswer::Builder reply,
             const PartitionFilter* only) {
    const auto started = std::chrono::steady_clock::now();
    ++s_.counters_.queriesServed;
    switch (query.which()) {
      case wire::Query::NEAREST: {
        auto q = readNearestQuery(query.getNearest());
        if (!q) return writeError(q.error(), reply.initError());
        return answer(QueryKind::kNearest, s_.index_.nearest(*q, nowMs_, only), started, reply);
      }
      case wire::Query::WITHIN: {
        auto q = readAreaQuery(query.getWithin());
        if (!q) return writeError(q.error(), reply.initError());
        // "All" is at most kMaxResults: beyond it the answer would not fit
        // one message, and the count says by how much.
        const bool all = q->limit == 0 && !q->countOnly;
        if (all) q->limit = kMaxResults;
        QueryResult result = s_.index_.within(*q, nowMs_, only);
        if (all && result.count > kMaxResults) {
          return writeError(badRequest(tooManyMatches(result.count)), reply.initError());
        }
        return answer(QueryKind::kWithin, result, started, reply);
      }
      case wire::Query::GET: {
        const auto text = query.getGet();
        const std::string_view id(text.begin(), text.size());
        if (auto e = validateId(id)) return writeError(badRequest(*e), reply.initError());
        auto hit = s_.index_.get(id, nowMs_);
        if (hit && only && !only->contains(id)) hit.reset();
        if (!hit) {
          return writeError(Error{ErrorCode::kNotFound, fmt::format("no device with id {}", id)},
                            reply.initError());
        }
        QueryResult result;
        result.hits.push_back(std::move(*hit));
        result.count = 1;
        return answer(QueryKind::kGet, result, started, reply);
      }
      case wire::Query::STATS:
        stats(reply.initStats());
        return count(QueryKind::kStats, since(started));
    }
    writeError(badRequest("unknown query kind (a newer client?)"), reply.initError());
  }

 private:
  void answer(QueryKind kind, const QueryResult& result,
              std::chrono::steady_clock::time_point started, wire::QueryAnswer::Builder reply) {
    auto out = reply.initResult();
    writeQueryResult(result, out);
    out.initShards().setTotal(1);
    out.getShards().setAnswered(1);
    const auto took = since(started);
    out.setTookUs(micros(took));
    count(kind, took);
  }

  void count(QueryKind kind, std::chrono::steady_clock::duration took) {
    const auto k = static_cast<size_t>(kind);
    ++s_.counters_.queries[k];
    s_.counters_.querySeconds[k].observe(std::chrono::duration<double>(took).count());
  }

  void stats(wire::UnitStats::Builder out) {
    const auto& c = s_.counters_;
    UnitStats stats;
    stats.name = s_.name_;
    stats.devices = s_.index_.size();
    stats.reportsApplied = c.reportsApplied.value();
    stats.reportsStale = c.reportsStale.value();
    stats.reportsRejected = c.reportsRejected.value();
    stats.queriesServed = c.queriesServed.value();
    stats.memoryBytes = s_.index_.memoryUsage().total();
    stats.incarnation = s_.incarnation_;
    stats.partitions = s_.states_.partitions();
    stats.notServing = s_.states_.notServing();
    stats.copying = s_.states_.pending() > 0;
    stats.catchUpPending = s_.states_.pending();
    stats.copiedDevices = s_.copiedDevices_;
    stats.catchUpSeconds = s_.catchUpSeconds();
    if (const Storage* storage = s_.storage_.get()) {
      stats.durable = true;
      stats.writable = storage->counters().writable.value() > 0;
      stats.logBytes = static_cast<uint64_t>(storage->counters().logBytes.value());
    }
    writeUnitStats(stats, out);
  }

  UnitService& s_;
  int64_t nowMs_;
};

UnitService::UnitService(std::string name, IndexOptions options, int64_t maxFutureSkewMs,
                         std::optional<StorageOptions> storage, uint32_t partitions,
                         uint32_t replicas)
    : name_(std::move(name)),
      incarnation_(randomNonZero()),
      maxFutureSkewMs_(maxFutureSkewMs),
      index_(options),
      states_(partitions, replicas <= 1),
      startNonce_(randomNonZero()) {
  if (storage) {
    storage_ = std::make_unique<Storage>(std::move(*storage), index_);
    incarnation_ = storage_->incarnation();  // the data's, kept across restarts
    counters_.devices.set(static_cast<double>(index_.size()));
  }
}

std::optional<CatchUpOrder> UnitService::takeCatchUpOrder() {
  auto order = std::move(order_);
  order_.reset();
  return order;
}

std::optional<std::string> UnitService::applyCopied(std::span<const Report> reports) {
  // A replica's positions were admitted once; only what could break the
  // index is checked again (a bad one is counted and skipped).
  std::vector<Report> valid;
  valid.reserve(reports.size());
  for (const Report& r : reports) {
    if (validateReport(r) || r.tsMs == 0) {
      ++counters_.reportsRejected;
    } else {
      valid.push_back(r);
    }
  }
  if (storage_ && !valid.empty()) {
    if (auto error = storage_->append(valid)) return error;
  }
  // Not counted as reports applied or stale: those count what the gateway
  // sent, and a copy is counted when done (copiedDevices).
  for (const Report& r : valid) index_.apply(r);
  counters_.devices.set(static_cast<double>(index_.size()));
  return std::nullopt;
}

void UnitService::copyDone(const std::vector<uint32_t>& partitions, bool ok, uint64_t devices) {
  copiedDevices_ += devices;
  counters_.copiedDevices += devices;
  states_.copied(partitions, ok);
  if (states_.allServing()) spdlog::info("{}: caught up: serving every partition", name_);
}

double UnitService::catchUpSeconds() const {
  if (states_.allServing()) return 0;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - notServingSince_).count();
}

uint64_t UnitService::dumpEpoch() const {
  return mix(startNonce_ + removals_) | 1;
}

void UnitService::beginGroup() {
  if (storage_) storage_->beginGroup();
}

std::optional<std::string> UnitService::endGroup() {
  return storage_ ? storage_->endGroup() : std::nullopt;
}

zmq::message_t UnitService::refuseUnstored(uint64_t requestId, const std::string& why) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::UnitReply>();
  reply.setRequestId(requestId);
  writeError(Error{ErrorCode::kUnavailable, why}, reply.initError());
  return transport::toFrame(message);
}

void UnitService::tickStorage() {
  if (storage_) storage_->tick(index_);
}

std::chrono::milliseconds UnitService::idleFor() const {
  return storage_ ? storage_->idleFor() : std::chrono::milliseconds(1000);
}

zmq::message_t UnitService::handle(const void* data, size_t size, int64_t nowMs) {
  appendedRequest_.reset();
  uint64_t requestId = 0;
  std::string problem;
  FlatMessage message(data, size);
  if (message.error()) {
    problem = *message.error();
  } else {
    // The reply is returned outside the try block on purpose: GCC 12 may run
    // the destructor of the not yet constructed return value when an
    // exception leaves a try block that holds the `return` (here: with a
    // switch and noexcept(false) capnp destructors in scope), which crashed
    // the unit on malformed requests.
    capnp::MallocMessageBuilder replyMessage(kReplyFirstSegmentWords);
    try {
      auto reply = replyMessage.initRoot<wire::UnitReply>();
      auto request = message.root<wire::UnitRequest>();
      requestId = request.getRequestId();
      reply.setRequestId(requestId);
      Handler handler(*this, nowMs);
      switch (request.which()) {
        case wire::UnitRequest::APPLY:
          handler.apply(request.getApply(), reply);
          break;
        case wire::UnitRequest::DUMP:
          handler.dump(request.getDump(), reply);
          break;
        case wire::UnitRequest::CATCH_UP:
          handler.catchUp(request.getCatchUp(), reply);
          break;
        case wire::UnitRequest::OBSOLETE_QUERY:
          writeError(badRequest("the single-query request is retired: send `queries`"),
                     reply.initError());
          break;
        case wire::UnitRequest::QUERIES: {
          const auto queries = request.getQueries();
          if (queries.size() > kMaxQueriesPerRequest) {
            writeError(badRequest(fmt::format("{} queries in one request, at most {}",
                                              queries.size(), kMaxQueriesPerRequest)),
                       reply.initError());
            break;
          }
          Scope scope;
          if (auto why = scopeOf(request, states_, scope)) {
            writeError(badRequest(*why), reply.initError());
            break;
          }
          auto answers = reply.initAnswers(queries.size());
          const PartitionFilter* only = scope.filter ? &*scope.filter : nullptr;
          for (unsigned i = 0; i < queries.size(); ++i) handler.query(queries[i], answers[i], only);
          if (!scope.notServing.empty()) {
            auto list = reply.initNotServing(static_cast<unsigned>(scope.notServing.size()));
            for (size_t i = 0; i < scope.notServing.size(); ++i)
              list.set(static_cast<unsigned>(i), scope.notServing[i]);
          }
          break;
        }
        default:
          writeError(badRequest("unknown request kind (a newer client?)"), reply.initError());
      }
    } catch (const kj::Exception& e) {
      problem = fmt::format("malformed request: {}", e.getDescription().cStr());
    }
    if (problem.empty()) {
      const size_t bytes = capnp::computeSerializedSizeInWords(replyMessage) * sizeof(capnp::word);
      if (bytes <= static_cast<size_t>(kMaxMessageBytes)) return transport::toFrame(replyMessage);
      // Never sent: a frame over the peer's limit makes ZeroMQ drop the
      // connection, and the answers of every other request with it.
      problem = fmt::format("the answer is {} bytes, more than the {} a message may carry", bytes,
                            kMaxMessageBytes);
    }
  }
  return refuse(requestId, problem);
}

zmq::message_t UnitService::refuseEnvelope(size_t frames) {
  return refuse(0, fmt::format("expected a request as [payload] (DEALER) or [\"\"][payload] (REQ), "
                               "got {} frames",
                               frames));
}

zmq::message_t UnitService::refuse(uint64_t requestId, const std::string& problem) {
  ++counters_.badMessages;
  // One warning a second at most: a peer sending garbage must not flood the log.
  const auto now = std::chrono::steady_clock::now();
  if (now - lastWarning_ >= std::chrono::seconds(1)) {
    spdlog::warn("{}: {} (bad messages so far: {})", name_, problem, counters_.badMessages.value());
    lastWarning_ = now;
  }
  capnp::MallocMessageBuilder replyMessage;
  auto reply = replyMessage.initRoot<wire::UnitReply>();
  reply.setRequestId(requestId);
  writeError(badRequest(problem), reply.initError());
  return transport::toFrame(replyMessage);
}

void UnitService::tick(int64_t nowMs) {
  // Expiring moves devices between positions: not while a dump is read.
  const bool dumping = std::chrono::steady_clock::now() - lastDump_ < kDumpQuiet;
  if (const size_t n = dumping ? 0 : index_.expire(nowMs, kExpireScanPerTick); n > 0) {
    removals_ += n;
    spdlog::debug("{}: expired {} positions", name_, n);
  }
  counters_.devices.set(static_cast<double>(index_.size()));
  counters_.memoryBytes.set(static_cast<double>(index_.memoryUsage().total()));
  counters_.partitionsNotServing.set(static_cast<double>(states_.notServingCount()));
  counters_.catchUpSeconds.set(catchUpSeconds());
}

namespace {

// The CURVE keypair of `options`, or nothing; throws when it cannot be read.
std::optional<transport::CurveKeypair> unitKeypair(const UnitOptions& options) {
  if (options.curveKey.empty()) return std::nullopt;
  auto keys = transport::loadCurveKeypair(options.curveKey);
  if (!keys) throw std::runtime_error("--curve-key: " + keys.error().message);
  return *keys;
}

}  // namespace

UnitServer::UnitServer(zmq::context_t& context, const UnitOptions& options)
    : gate_(options.curveClients.empty()
                ? nullptr
                : std::make_unique<transport::CurveGate>(context, options.curveClients)),
      socket_(context, zmq::socket_type::router),
      service_(options.name, IndexOptions{.ttlMs = options.ttlS * 1000}, options.maxFutureSkewMs,
               options.storage(), options.partitions, options.replicas),
      copier_(std::make_unique<Copier>(context, service_)) {
  socket_.set(zmq::sockopt::maxmsgsize, kMaxMessageBytes);
  socket_.set(zmq::sockopt::linger, 0);
  // A ROUTER drops, silently, what it sends to a peer whose queue is at the
  // high-water mark. Replies leave a burst at a time, and a peer may have
  // sent a thousand requests before it reads: give replies room beyond the
  // 1,000 requests the receive side queues.
  socket_.set(zmq::sockopt::sndhwm, kReplyQueue);
  if (auto keys = unitKeypair(options)) {
    transport::makeCurveServer(socket_, *keys);
    // The copier reaches its peers, which share the unit key, as a client.
    links_ = std::make_unique<transport::UnitLinkCredentials>(
        context, transport::UnitLinkKeys{*keys, keys->publicKey});
  } else {
    transport::warnIfOpen("reports and queries", options.listen,
                          "give --curve-key and --curve-clients to admit listed clients only");
  }
  socket_.bind(options.listen);
  endpoint_ = socket_.get(zmq::sockopt::last_endpoint);
  if (service_.name().empty()) service_.setName(endpoint_);
  if (!options.httpListen.empty()) {
    service_.counters().expose(registry_, service_.name());
    if (gate_) {
      registry_.counter("locus_unit_curve_refused_total",
                        "Connections refused: not CURVE, or a client key not in --curve-clients",
                        {{"unit", service_.name()}}, gate_->refused());
    }
    if (const Storage* storage = service_.storage())
      exposeStorage(registry_, service_.name(), storage->counters());
    http_ = std::make_unique<transport::HttpEndpoint>(options.httpListen, registry_, [this] {
      const auto& c = service_.counters();
      nlohmann::ordered_json detail{{"unit", service_.name()},
                                    {"devices", static_cast<uint64_t>(c.devices.value())}};
      if (const Storage* storage = service_.storage()) {
        // Read across threads: the gauges are atomic, the options constant.
        detail["storage"] = {{"dir", storage->options().dir},
                             {"fsync", toString(storage->options().fsync)},
                             {"writable", storage->counters().writable.value() > 0}};
      } else {
        detail["storage"] = "memory-only";
      }
      return transport::Readiness{serving_.load(), std::move(detail)};
    });
  }
}

size_t UnitServer::serveQueued(size_t max) {
  // Every reply of the burst waits for one sync of what it logged (group
  // commit), then all leave.
  struct Outgoing {
    zmq::message_t identity;
    bool withDelimiter;
    zmq::message_t reply;
    std::optional<uint64_t> appended;  // the logged batch's request id
  };
  std::vector<Outgoing> out;
  std::vector<zmq::message_t> frames;
  service_.beginGroup();
  for (size_t served = 0; served < max; ++served) {
    if (!zmq::recv_multipart(socket_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      break;
    }
    // [identity][payload] from DEALER peers, [identity][""][payload] from REQ.
    // A REQ peer drops any reply that lacks the empty delimiter, so it is
    // echoed whenever the request had one, malformed envelopes included.
    const bool withDelimiter = frames.size() >= 3 && frames[1].size() == 0;
    zmq::message_t reply;
    std::optional<uint64_t> appended;
    if (frames.size() == 2 || (withDelimiter && frames.size() == 3)) {
      const zmq::message_t& payload = frames.back();
      reply = service_.handle(payload.data(), payload.size(), wallClockMs());
      appended = service_.appendedRequest();
    } else {
      reply = service_.refuseEnvelope(frames.size() - 1);
    }
    out.push_back(Outgoing{std::move(frames[0]), withDelimiter, std::move(reply), appended});
    frames.clear();
    if (auto order = service_.takeCatchUpOrder()) copier_->start(*order);
  }
  const auto unstored = service_.endGroup();
  for (Outgoing& o : out) {
    if (unstored && o.appended) o.reply = service_.refuseUnstored(*o.appended, *unstored);
    socket_.send(o.identity, zmq::send_flags::sndmore);
    if (o.withDelimiter) socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
    socket_.send(o.reply, zmq::send_flags::dontwait);
  }
  return out.size();
}

UnitServer::~UnitServer() = default;

void UnitServer::run(int stopFd, int reloadFd) {
  std::vector<zmq::pollitem_t> items;
  auto nextTick = std::chrono::steady_clock::now();
  serving_ = true;
  for (;;) {
    // A negative fd is ignored by poll.
    items.assign({{socket_.handle(), 0, ZMQ_POLLIN, 0},
                  {nullptr, stopFd, ZMQ_POLLIN, 0},
                  {nullptr, reloadFd, ZMQ_POLLIN, 0}});
    copier_->pollItems(items);
    // A copy's page timeout is checked at every tick at least.
    transport::pollThroughSignals(items.data(), items.size(),
                                  std::min(kTickInterval, service_.idleFor()));
    if (items[1].revents & ZMQ_POLLIN) break;
    if (items[2].revents & ZMQ_POLLIN) {
      drainSignalFd(reloadFd);
      if (gate_) gate_->reload();
    }
    serveQueued(kMaxBurst);
    if (!copier_->idle()) copier_->serve();
    service_.tickStorage();
    if (auto why = service_.storageFailure()) {
      // The index may hold batches whose sync failed (they were applied
      // before it, and answered with an error): only a restart, recovering
      // from the log, tells what was stored. Stop, loudly.
      throw std::runtime_error(*why + "; stopping: at restart the log says what was stored");
    }
    if (const auto now = std::chrono::steady_clock::now(); now >= nextTick) {
      service_.tick(wallClockMs());
      nextTick = now + kTickInterval;
    }
  }
  serving_ = false;  // not ready: stopping

  // Finish what was already received (bounded in time), and give the
  // replies a moment to leave before the socket closes.
  const auto giveUp = std::chrono::steady_clock::now() + kDrainLimit;
  size_t drained = 0;
  while (std::chrono::steady_clock::now() < giveUp) {
    if (const size_t n = serveQueued(kMaxBurst); n > 0) {
      drained += n;
      continue;
    }
    // An empty queue is not the end: past the receive high-water mark
    // ZeroMQ's io thread stops reading the connection and resumes only as
    // the queue drains, so more may be on its way. Done once it stays quiet.
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (transport::pollThroughSignals(&item, 1, kDrainQuiet) == 0) break;
  }
  if (drained > 0)
    spdlog::info("{}: answered {} requests received before the stop", service_.name(), drained);
  socket_.set(zmq::sockopt::linger, static_cast<int>(kDrainLimit.count()));
}

}  // namespace locus::unit
