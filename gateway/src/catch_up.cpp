#include "locus/gateway/catch_up.h"

#include <capnp/message.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <utility>

#include "locus.capnp.h"
#include "locus/transport/unit_channel.h"

namespace locus::gateway {

struct CatchUpCoordinator::Unit {
  uint32_t index;
  transport::UnitChannel channel;
  bool up = false;  // the latest probe was answered
  int missed = 0;   // probes unanswered in a row
  uint64_t incarnation = 0;
  std::vector<uint32_t> notServing;  // as last reported
  bool copying = false;
  bool behind = false;  // the router said so; not ordered yet
  kj::TimePoint lastOrder = kj::origin<kj::TimePoint>();
  metrics::Gauge notServingGauge;

  Unit(uint32_t index, zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
       const std::string& endpoint)
      : index(index), channel(context, eventPort, timer, endpoint, /*maxQueued=*/4) {}
};

CatchUpCoordinator::CatchUpCoordinator(zmq::context_t& context, kj::UnixEventPort& eventPort,
                                       kj::Timer& timer, const std::vector<std::string>& units,
                                       Router& router, kj::Duration interval)
    : timer_(timer), interval_(interval), router_(router), tasks_(*this), running_(nullptr) {
  for (uint32_t i = 0; i < units.size(); ++i)
    units_.push_back(std::make_unique<Unit>(i, context, eventPort, timer, units[i]));
  if (router.placement().replicas() > 1) {
    running_ = round().eagerlyEvaluate([](kj::Exception&& e) {
      spdlog::error("catch-up coordination stopped: {}", e.getDescription().cStr());
    });
  }
}

void CatchUpCoordinator::taskFailed(kj::Exception&& exception) {
  spdlog::warn("catch-up order failed: {}", exception.getDescription().cStr());
}

CatchUpCoordinator::~CatchUpCoordinator() {
  running_ = nullptr;  // before the channels it uses
}

void CatchUpCoordinator::expose(metrics::Registry& r) const {
  r.counter("locus_gateway_catch_up_orders_total",
            "Catch-up orders sent to units (copy partitions from their replicas)", {}, orders_);
  for (const auto& u : units_) {
    r.gauge("locus_unit_partitions_not_serving",
            "Partitions the unit does not answer for (catching up), as it last reported",
            {{"shard", std::to_string(u->index)}, {"endpoint", u->channel.endpoint()}},
            u->notServingGauge);
  }
}

kj::Promise<void> CatchUpCoordinator::round() {
  const kj::TimePoint next = timer_.now() + interval_;
  auto probes = kj::heapArrayBuilder<kj::Promise<void>>(units_.size());
  for (auto& unit : units_) {
    capnp::MallocMessageBuilder message(64);
    message.initRoot<wire::UnitRequest>().initQueries(1)[0].setStats();
    Unit* u = unit.get();
    probes.add(u->channel.call(message, next).then([this, u](transport::UnitCallResult&& reply) {
      auto root = transport::replyOf(reply, u->channel.endpoint());
      bool answered = false;
      try {
        if (root && root->isAnswers() && root->getAnswers().size() == 1 &&
            root->getAnswers()[0].isStats()) {
          auto stats = root->getAnswers()[0].getStats();
          u->notServing.clear();
          for (uint32_t p : stats.getNotServing()) u->notServing.push_back(p);
          u->copying = stats.getCopying();
          u->notServingGauge.set(static_cast<double>(u->notServing.size()));
          // A new incarnation: it restarted without its data, whatever it says.
          if (u->incarnation != 0 && u->incarnation != stats.getIncarnation()) u->behind = true;
          u->incarnation = stats.getIncarnation();
          answered = true;
        }
      } catch (const kj::Exception&) {
        // Malformed: counted as not answered.
      }
      u->up = answered;
      if (answered) {
        u->missed = 0;
        router_.setDown(u->index, false);
      } else if (++u->missed >= kMissesDown) {
        // Two misses in a row: one may be a burst of batches ahead of it.
        router_.setDown(u->index, true);
      }
    }));
  }
  return kj::joinPromises(probes.finish())
      .then([this]() {
        for (uint32_t u = 0; u < units_.size(); ++u) decide(u);
      })
      .catch_([](kj::Exception&& e) {
        // One bad round must not end coordination: the next one retries.
        spdlog::error("catch-up round failed: {}", e.getDescription().cStr());
      })
      .then([this, next]() { return timer_.atTime(next); })
      .then([this]() { return round(); });
}

void CatchUpCoordinator::decide(uint32_t index) {
  Unit& unit = *units_[index];
  if (router_.takeBehind(index)) unit.behind = true;
  if (!unit.up || router_.stalled(index)) return;
  const Placement& placement = router_.placement();
  const auto& held = placement.partitionsOf(index);
  if (unit.behind) {
    spdlog::warn("unit {} ({}) may have missed writes: it copies its {} partitions again", index,
                 unit.channel.endpoint(), held.size());
    unit.behind = false;
    order(index, held, /*behind=*/true);
    return;
  }
  if (unit.notServing.empty() || unit.copying) return;
  if (timer_.now() - unit.lastOrder < kReorderAfter) return;
  std::vector<uint32_t> missing;
  std::set_intersection(held.begin(), held.end(), unit.notServing.begin(), unit.notServing.end(),
                        std::back_inserter(missing));
  if (!missing.empty()) order(index, missing, /*behind=*/false);
}

void CatchUpCoordinator::order(uint32_t index, const std::vector<uint32_t>& partitions,
                               bool behind) {
  Unit& unit = *units_[index];
  const Placement& placement = router_.placement();
  std::map<uint32_t, std::vector<uint32_t>> bySource;
  std::vector<uint32_t> wait;
  for (uint32_t p : partitions) {
    bool sourced = false;
    for (uint32_t replica : placement.replicasOf(p)) {
      if (replica == index || !units_[replica]->up || router_.stalled(replica)) continue;
      bySource[replica].push_back(p);
      sourced = true;
    }
    // No other replica up: a unit that serves it keeps serving it (it holds
    // the best copy there is); one that does not waits for a source.
    if (!sourced && !behind) wait.push_back(p);
  }
  if (bySource.empty() && wait.empty()) return;
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>().initCatchUp();
  request.setPartitions(placement.partitions());
  auto copies = request.initCopies(static_cast<unsigned>(bySource.size()));
  unsigned i = 0;
  for (const auto& [source, list] : bySource) {
    auto copy = copies[i++];
    copy.setSource(units_[source]->channel.endpoint());
    auto serve = copy.initServe(static_cast<unsigned>(list.size()));
    for (size_t j = 0; j < list.size(); ++j) serve.set(static_cast<unsigned>(j), list[j]);
  }
  auto waitList = request.initWait(static_cast<unsigned>(wait.size()));
  for (size_t j = 0; j < wait.size(); ++j) waitList.set(static_cast<unsigned>(j), wait[j]);
  const auto& held = placement.partitionsOf(index);
  auto holds = request.initHolds(static_cast<unsigned>(held.size()));
  for (size_t j = 0; j < held.size(); ++j) holds.set(static_cast<unsigned>(j), held[j]);
  unit.lastOrder = timer_.now();
  unit.copying = !bySource.empty();  // until the next probe says
  ++orders_;
  spdlog::info("unit {} ({}): catch-up of {} partitions from {} replicas{}", index,
               unit.channel.endpoint(), partitions.size(), bySource.size(),
               wait.empty() ? "" : fmt::format(", {} waiting for a live replica", wait.size()));
  // Fire and forget: a lost order is sent again (the unit keeps reporting
  // those partitions unserved).
  const kj::TimePoint deadline = timer_.now() + interval_;
  auto sent = unit.channel.call(message, deadline);
  Unit* u = &unit;
  tasks_.add(sent.then([u, behind](transport::UnitCallResult&& reply) {
    // An order for missed writes that did not arrive is sent again: the
    // unit still serves, so nothing else would bring it back.
    if (behind && !reply) u->behind = true;
  }));
}

}  // namespace locus::gateway
