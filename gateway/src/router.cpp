#include "locus/gateway/router.h"

#include <capnp/message.h>
#include <fmt/format.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <map>
#include <utility>

#include "locus.capnp.h"
#include "locus/common/report_json.h"
#include "locus/common/shard.h"
#include "locus/common/wire.h"
#include "locus/transport/unit_channel.h"

namespace locus::gateway {
namespace {

// Lost batches are logged at most this often per unit, with a running count.
constexpr int64_t kLossLogIntervalMs = 1000;
// Unanswered batches remembered per unit, so that a late answer is counted.
constexpr size_t kUnconfirmedRemembered = 4096;

// Settles the slots of an applied batch: each stored, but those the unit
// rejected by index.
template <typename Rejected>
void settleApplied(std::vector<Router::Entry>& entries, Rejected rejected,
                   const std::string& endpoint) {
  std::vector<const char*> reasons(entries.size(), nullptr);
  for (auto r : rejected) {
    if (r.getIndex() < reasons.size()) reasons[r.getIndex()] = r.getReason().cStr();
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    Router::Entry& e = entries[i];
    if (reasons[i] == nullptr) {
      e.acks->stored(e.slot);
    } else {
      e.acks->failed(e.slot, fmt::format("refused by unit {}: {}", endpoint, reasons[i]));
    }
  }
}

}  // namespace

std::optional<AckPolicy> parseAckPolicy(std::string_view text) {
  if (text == "1") return AckPolicy::kOne;
  if (text == "all") return AckPolicy::kAll;
  return std::nullopt;
}

const char* toString(AckPolicy policy) {
  return policy == AckPolicy::kOne ? "1" : "all";
}

std::optional<std::string> RouterOptions::validate(size_t units) const {
  if (units > 0) {
    if (auto why = Placement::check(static_cast<uint32_t>(units), partitions, replicasFor(units)))
      return why;
  }
  if (batchReports < 1 || batchReports > 100'000) {
    return fmt::format("batch size {} must be in 1..100000", batchReports);
  }
  if (flushDelayUs < 0 || flushDelayUs > 10'000'000) {
    return fmt::format("flush delay {} us must be in 0..10000000", flushDelayUs);
  }
  if (maxInFlightBatches < 1) return "at least one batch must be allowed in flight per unit";
  if (maxBufferedReports < batchReports) {
    return fmt::format("the buffer bound {} must hold at least one batch ({})", maxBufferedReports,
                       batchReports);
  }
  if (batchTimeoutMs < 1 || batchTimeoutMs > 600'000) {
    return fmt::format("--batch-timeout-ms {} must be in 1..600000", batchTimeoutMs);
  }
  return std::nullopt;
}

struct Router::Shard {
  uint32_t index = 0;
  std::unique_ptr<transport::UnitChannel> channel;
  std::vector<Entry> buffer;  // oldest first
  size_t inFlight = 0;        // batches sent and not yet answered
  bool due = false;           // the flush delay of the buffer's first report passed
  bool timerArmed = false;
  // When the first batch sent since the unit's last answer left: the unit
  // is stalled once this is batchTimeoutMs old.
  kj::Maybe<kj::TimePoint> unansweredSince;
  bool stallLogged = false;
  bool behind = false;                     // may have missed writes since takeBehind()
  bool down = false;                       // its probes go unanswered (setDown)
  bool mustStop = false;                   // behind, and not yet told to stop serving
  std::map<uint64_t, size_t> unconfirmed;  // request id → reports, for late answers
  uint64_t lostSinceLog = 0;               // batches lost since the last log line
  kj::TimePoint lastLossLog = kj::origin<kj::TimePoint>();
};

class Router::ErrorHandler final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&& exception) override {
    spdlog::warn("routing task failed: {}", exception.getDescription().cStr());
  }
};

Router::Router(const RouterOptions& options, zmq::context_t& context, kj::UnixEventPort& eventPort,
               kj::Timer& timer, const std::vector<std::string>& units)
    : options_(options),
      placement_(static_cast<uint32_t>(units.size()), options.partitions,
                 options.replicasFor(units.size())),
      timer_(timer),
      errorHandler_(std::make_unique<ErrorHandler>()),
      tasks_(std::make_unique<kj::TaskSet>(*errorHandler_)) {
  KJ_REQUIRE(!units.empty(), "a router needs at least one unit");
  for (const auto& endpoint : units) {
    auto shard = std::make_unique<Shard>();
    shard->index = static_cast<uint32_t>(shards_.size());
    // A unit that is down holds at most its window plus a few batches in
    // ZeroMQ's queue; the rest are counted lost at once (memory stays bounded).
    shard->channel = std::make_unique<transport::UnitChannel>(
        context, eventPort, timer, endpoint, static_cast<int>(options.maxInFlightBatches) * 4);
    Shard* s = shard.get();
    shard->channel->onLateReply([this, s](uint64_t id, wire::UnitReply::Reader reply) {
      s->unansweredSince = nullptr;  // it answers again (a probe's answer counts too)
      if (s->stallLogged) {
        spdlog::info("unit {} ({}) answers again", s->index, s->channel->endpoint());
        s->stallLogged = false;
      }
      stopIfBehind(*s);
      auto it = s->unconfirmed.find(id);
      if (it == s->unconfirmed.end()) return;
      if (reply.isApplied()) {
        ++counters_.batchesLate;
        counters_.reportsAppliedLate += it->second;
      }
      s->unconfirmed.erase(it);
    });
    shard->buffer.reserve(options_.batchReports);
    shards_.push_back(std::move(shard));
  }
}

std::vector<const transport::UnitChannel*> Router::channels() const {
  std::vector<const transport::UnitChannel*> out;
  for (const auto& shard : shards_) out.push_back(shard->channel.get());
  return out;
}

Router::~Router() {
  // Batches and timers first: their continuations point into the shards.
  tasks_ = nullptr;
}

void RouterCounters::expose(metrics::Registry& r) const {
  r.counter("locus_gateway_reports_routed_total", "Valid reports handed to the router", {},
            reportsRouted);
  const char* batches = "Apply batches sent to units, by what became of them";
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "sent"}}, batchesSent);
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "applied"}}, batchesApplied);
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "refused"}}, batchesRefused);
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "unsendable"}}, batchesUnsendable);
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "unanswered"}}, batchesUnanswered);
  r.counter("locus_gateway_batches_total", batches, {{"outcome", "applied_late"}}, batchesLate);
  r.counter("locus_gateway_reports_lost_total",
            "Acknowledged reports no unit applied: their batch could not be queued or was refused",
            {}, reportsLost);
  r.counter("locus_gateway_reports_unconfirmed_total",
            "Acknowledged reports whose batch had no answer by --batch-timeout-ms (maybe applied)",
            {}, reportsUnconfirmed);
  r.counter("locus_gateway_reports_applied_late_total",
            "Unconfirmed reports whose unit answered after all", {}, reportsAppliedLate);
  r.counter("locus_gateway_reports_refused_by_units_total",
            "Reports a unit refused after the gateway accepted them (should stay 0)", {},
            reportsRejected);
  r.counter("locus_gateway_reports_refused_total",
            "Reports refused with an error (not acknowledged) because their unit was stalled",
            {{"reason", "unit_stalled"}}, reportsRefusedStalled);
  r.counter("locus_gateway_copies_skipped_total",
            "Report copies not sent because their replica was stalled (it catches up later)", {},
            copiesSkipped);
  r.gauge("locus_gateway_buffered_reports", "Reports waiting to be sent to their units", {},
          [this] {
            // Every sent report was routed first; the counters are read
            // one after the other, so clamp a momentary skew.
            const uint64_t left = reportsSent.value() + reportsUnsent.value();
            const uint64_t routed = reportsRouted.value();
            return routed > left ? double(routed - left) : 0.0;
          });
}

void Router::setDown(uint32_t unit, bool down) {
  Shard& shard = *shards_[unit];
  if (shard.down == down) return;
  shard.down = down;
  if (down) {
    spdlog::warn("unit {} ({}) does not answer its probes: not sending it reports", unit,
                 shard.channel->endpoint());
    if (!closing_) refuseBuffered(shard);
  } else {
    spdlog::info("unit {} ({}) answers its probes again", unit, shard.channel->endpoint());
    // Alive: a batch it lost while down will never be answered.
    shard.unansweredSince = nullptr;
    stopIfBehind(shard);
    pump(unit);
  }
  notifyIfReady();
}

bool Router::stalled(const Shard& shard) const {
  if (shard.down) return true;
  KJ_IF_MAYBE (since, shard.unansweredSince) {
    return timer_.now() - *since >= options_.batchTimeoutMs * kj::MILLISECONDS;
  }
  return false;
}

void Router::markBehind(Shard& shard) {
  shard.behind = true;
  if (placement_.replicas() > 1) shard.mustStop = true;
}

void Router::stopIfBehind(Shard& shard) {
  if (!shard.mustStop || stalled(shard) || closing_) return;
  shard.mustStop = false;
  // It may serve what it missed: first of all, before any new batch, it
  // stops serving every partition another replica can answer for; the
  // catch-up coordinator then orders the copies. (Those with no other
  // replica up: it holds the best copy there is.)
  std::vector<uint32_t> stop;
  for (uint32_t p : placement_.partitionsOf(shard.index)) {
    for (uint32_t replica : placement_.replicasOf(p)) {
      if (replica != shard.index && !stalled(*shards_[replica])) {
        stop.push_back(p);
        break;
      }
    }
  }
  if (stop.empty()) return;
  capnp::MallocMessageBuilder message(static_cast<unsigned>(16 + stop.size() / 2));
  auto request = message.initRoot<wire::UnitRequest>().initCatchUp();
  request.setPartitions(placement_.partitions());
  auto wait = request.initWait(static_cast<unsigned>(stop.size()));
  for (size_t i = 0; i < stop.size(); ++i) wait.set(static_cast<unsigned>(i), stop[i]);
  const auto& held = placement_.partitionsOf(shard.index);
  auto holds = request.initHolds(static_cast<unsigned>(held.size()));
  for (size_t i = 0; i < held.size(); ++i) holds.set(static_cast<unsigned>(i), held[i]);
  spdlog::info(
      "unit {} ({}) answers again after missing writes: it stops serving {} partitions "
      "until it caught up",
      shard.index, shard.channel->endpoint(), stop.size());
  const kj::TimePoint deadline = timer_.now() + options_.batchTimeoutMs * kj::MILLISECONDS;
  Shard* s = &shard;
  tasks_->add(shard.channel->call(message, deadline).then([s](transport::UnitCallResult&& reply) {
    if (!reply) s->mustStop = true;  // told again at its next answer
  }));
}

bool Router::takeBehind(uint32_t unit) {
  Shard& shard = *shards_[unit];
  const bool was = shard.behind;
  shard.behind = false;
  return was;
}

void Router::add(const Report& report, Acks& acks, uint32_t slot) {
  const auto replicas = placement_.replicasOf(partitionOf(report.id, placement_.partitions()));
  std::array<uint32_t, kMaxReplicas> targets;  // the copies that go out
  uint32_t copies = 0;
  for (uint32_t unit : replicas) {
    Shard& shard = *shards_[unit];
    if (!stalled(shard) || closing_) {
      if (copies < targets.size()) targets[copies++] = unit;
      continue;
    }
    markBehind(shard);
    ++counters_.copiesSkipped;
    if (!shard.stallLogged) {
      spdlog::warn(
          "unit {} ({}) has left a batch unanswered for {} ms: not sending it reports until it "
          "answers (it catches up then)",
          unit, shard.channel->endpoint(), options_.batchTimeoutMs);
      shard.stallLogged = true;
    }
    // An empty batch asks whether it is back.
    if (shard.inFlight == 0) send(unit, 0);
  }
  if (copies == 0) {
    ++counters_.reportsRefusedStalled;
    acks.failed(slot, stalledReason(*shards_[replicas[0]]), /*retry=*/true);
    return;
  }
  acks.expect(slot, copies, options_.acks == AckPolicy::kOne ? 1 : copies);
  for (uint32_t i = 0; i < copies; ++i) buffer(targets[i], report, acks, slot);
}

void Router::buffer(uint32_t index, const Report& report, Acks& acks, uint32_t slot) {
  Shard& shard = *shards_[index];
  Entry& entry = shard.buffer.emplace_back();
  entry.report.id.assign(report.id);
  entry.report.fields = report;
  entry.report.fields.id = {};
  entry.acks = kj::addRef(acks);
  entry.slot = slot;
  ++counters_.reportsRouted;
  if (shard.buffer.size() >= options_.batchReports || closing_) {
    pump(index);
  } else if (!shard.timerArmed && !shard.due) {
    shard.timerArmed = true;
    tasks_->add(timer_.afterDelay(options_.flushDelayUs * kj::MICROSECONDS).then([this, index]() {
      Shard& s = *shards_[index];
      s.timerArmed = false;
      s.due = true;
      pump(index);
    }));
  }
}

std::string Router::stalledReason(const Shard& shard) const {
  return fmt::format(
      "unit {} ({}), which owns this id{}, has not answered for {} ms; not stored, "
      "retry later",
      shard.index, shard.channel->endpoint(),
      placement_.replicas() > 1 ? ", and every other replica of it" : "", options_.batchTimeoutMs);
}

void Router::refuseBuffered(Shard& shard) {
  if (shard.buffer.empty()) return;
  const std::string why = stalledReason(shard);
  markBehind(shard);
  for (Entry& e : shard.buffer) e.acks->failed(e.slot, why, /*retry=*/true);
  counters_.reportsRefusedStalled += shard.buffer.size();
  counters_.reportsUnsent += shard.buffer.size();
  shard.buffer.clear();
  shard.due = false;
}

void Router::pump(uint32_t index) {
  Shard& shard = *shards_[index];
  while (shard.inFlight < options_.maxInFlightBatches && !shard.buffer.empty() &&
         (shard.buffer.size() >= options_.batchReports || shard.due || closing_)) {
    send(index, std::min(shard.buffer.size(), options_.batchReports));
  }
  if (shard.buffer.empty()) shard.due = false;
}

void Router::send(uint32_t index, size_t count) {
  Shard& shard = *shards_[index];
  capnp::MallocMessageBuilder message(static_cast<unsigned>(16 + count * 16));
  auto reports =
      message.initRoot<wire::UnitRequest>().initApply().initReports(static_cast<unsigned>(count));
  for (size_t i = 0; i < count; ++i) {
    writeReport(shard.buffer[i].report.view(), reports[static_cast<unsigned>(i)]);
  }
  std::vector<Entry> entries;
  if (count == shard.buffer.size()) {
    entries = std::move(shard.buffer);
    shard.buffer.clear();  // moved from: make it empty
    shard.buffer.reserve(options_.batchReports);
  } else {
    const auto end = shard.buffer.begin() + static_cast<std::ptrdiff_t>(count);
    entries.assign(std::make_move_iterator(shard.buffer.begin()), std::make_move_iterator(end));
    shard.buffer.erase(shard.buffer.begin(), end);
  }
  ++shard.inFlight;
  if (count > 0) {
    ++counters_.batchesSent;
    counters_.reportsSent += count;
  }
  const kj::TimePoint deadline = timer_.now() + options_.batchTimeoutMs * kj::MILLISECONDS;
  auto call = shard.channel->call(message, deadline);
  // After the call: sending drains replies, and a late one may have ended
  // an earlier wait.
  if (shard.unansweredSince == nullptr) shard.unansweredSince = timer_.now();
  const uint64_t requestId = message.getRoot<wire::UnitRequest>().getRequestId();
  tasks_->add(call.then([this, index, requestId,
                         entries = std::move(entries)](transport::UnitCallResult&& reply) mutable {
    answered(index, requestId, entries, kj::mv(reply));
  }));
}

void Router::answered(uint32_t index, uint64_t requestId, std::vector<Entry>& entries,
                      transport::UnitCallResult&& reply) {
  Shard& s = *shards_[index];
  const size_t count = entries.size();
  --s.inFlight;
  if (reply) {
    s.unansweredSince = nullptr;  // it answered
    if (s.stallLogged) {
      spdlog::info("unit {} ({}) answers again", index, s.channel->endpoint());
      s.stallLogged = false;
    }
  }
  std::string lost;  // why no unit applied the batch, if none did
  bool unconfirmed = false;
  bool unsendable = false;
  auto root = transport::replyOf(reply, s.channel->endpoint());
  if (root) {
    try {
      if (root->isApplied()) {
        if (count > 0) ++counters_.batchesApplied;
        auto rejected = root->getApplied().getRejected();
        counters_.reportsRejected += rejected.size();
        settleApplied(entries, rejected, s.channel->endpoint());
        entries.clear();
      } else {
        lost = "unexpected reply";
      }
    } catch (const kj::Exception& e) {
      lost = std::string("malformed reply: ") + e.getDescription().cStr();
    }
  } else if (!reply) {
    // No reply: not queued at all (overloaded), or sent and unanswered (it
    // may yet be applied).
    unsendable = root.error().code == ErrorCode::kOverloaded;
    unconfirmed = !unsendable;
    lost = root.error().message;
  } else {
    lost = root.error().message;  // the unit refused the batch, or its reply is unreadable
  }
  // A copy that may not have been stored: the unit catches up before it
  // serves this partition again.
  if (count > 0 && (unconfirmed || !lost.empty())) markBehind(s);
  if (count > 0 && unconfirmed) {
    ++counters_.batchesUnanswered;
    counters_.reportsUnconfirmed += count;
    s.unconfirmed.emplace(requestId, count);
    if (s.unconfirmed.size() > kUnconfirmedRemembered) s.unconfirmed.erase(s.unconfirmed.begin());
  } else if (count > 0 && !lost.empty()) {
    if (unsendable) {
      ++counters_.batchesUnsendable;
    } else {
      ++counters_.batchesRefused;
    }
    counters_.reportsLost += count;
  }
  if (!entries.empty()) {
    const std::string why =
        unconfirmed
            ? fmt::format(
                  "not confirmed: unit {} ({}) did not answer within {} ms ({}); "
                  "it may still store it: resend, the newest ts wins",
                  index, s.channel->endpoint(), options_.batchTimeoutMs, lost)
            : fmt::format("not stored: unit {} ({}): {}", index, s.channel->endpoint(), lost);
    for (Entry& e : entries) e.acks->failed(e.slot, why, /*retry=*/true);
  }
  if (count > 0 && (unconfirmed || !lost.empty())) {
    ++s.lostSinceLog;
    const kj::TimePoint now = timer_.now();
    if (now - s.lastLossLog >= kLossLogIntervalMs * kj::MILLISECONDS) {
      spdlog::warn("unit {}: {} batch(es) not confirmed, last of {} reports: {}",
                   s.channel->endpoint(), s.lostSinceLog, count, lost);
      s.lostSinceLog = 0;
      s.lastLossLog = now;
    }
  }
  // Stalled now: what waits for it would only wait a deadline more each.
  if (stalled(s) && !closing_) refuseBuffered(s);
  stopIfBehind(s);
  pump(index);
  notifyIfReady();
}

bool Router::ready() const {
  if (closing_) return false;
  for (const auto& shard : shards_) {
    if (shard->buffer.size() >= options_.maxBufferedReports && !stalled(*shard)) return false;
  }
  return true;
}

kj::Promise<void> Router::whenReady() {
  if (closing_) return kj::NEVER_DONE;
  if (ready()) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  waiters_.push_back(kj::mv(paf.fulfiller));
  armStallCheck();
  return kj::mv(paf.promise);
}

void Router::armStallCheck() {
  if (stallCheckArmed_) return;
  std::optional<kj::TimePoint> first;
  for (const auto& shard : shards_) {
    if (shard->buffer.size() < options_.maxBufferedReports) continue;
    KJ_IF_MAYBE (since, shard->unansweredSince) {
      const kj::TimePoint at = *since + options_.batchTimeoutMs * kj::MILLISECONDS;
      if (!first || at < *first) first = at;
    }
  }
  if (first) {
    stallCheckArmed_ = true;
    tasks_->add(timer_.atTime(*first).then([this]() {
      stallCheckArmed_ = false;
      notifyIfReady();
      if (!waiters_.empty()) armStallCheck();
    }));
  }
}

void Router::notifyIfReady() {
  if (waiters_.empty() || !ready()) return;
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& waiter : waiters) waiter->fulfill();
}

void Router::close() {
  closing_ = true;
  // Whoever waits for room gets it now and sees closing(): an RPC call
  // whose reports are all settled is answered instead of hanging.
  auto waiters = std::move(waiters_);
  waiters_.clear();
  for (auto& waiter : waiters) waiter->fulfill();
  for (uint32_t i = 0; i < shardCount(); ++i) pump(i);
}

bool Router::idle() const {
  for (const auto& shard : shards_) {
    if (!shard->buffer.empty() || shard->inFlight > 0) return false;
  }
  return true;
}

}  // namespace locus::gateway
