#include "locus/transport/unit_health.h"

#include <capnp/message.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <string>
#include <utility>

#include "locus.capnp.h"
#include "locus/transport/rpc_listener.h"
#include "locus/transport/unit_channel.h"

namespace locus::transport {

struct UnitHealth::Unit {
  uint32_t shard;
  UnitChannel channel;
  const UnitChannel* data = nullptr;  // the daemon's own channel, if watched
  metrics::Gauge up;                  // 1 while the latest probe was answered
  metrics::Gauge devices;             // as the unit reported in that answer
  metrics::Counter restarts;          // incarnation changes seen
  metrics::Counter positionsDropped;  // positions held before those restarts
  metrics::Gauge durable;             // 1 when it keeps a data dir, as last reported
  metrics::Gauge writable;            // 1 while it stores writes, as last reported
  uint64_t incarnation = 0;           // the latest seen; 0 = none yet
  bool seen = false;                  // a probe has been answered
  bool logged = false;                // the current state has been logged

  Unit(uint32_t shard, zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
       const std::string& endpoint)
      : shard(shard), channel(context, eventPort, timer, endpoint, /*maxQueued=*/1) {}
};

UnitHealth::UnitHealth(zmq::context_t& context, kj::UnixEventPort& eventPort, kj::Timer& timer,
                       const std::vector<std::string>& units, std::vector<const UnitChannel*> data,
                       kj::Duration interval)
    : timer_(timer), interval_(interval), probing_(nullptr) {
  KJ_REQUIRE(data.empty() || data.size() == units.size(), "one data channel per unit", data.size(),
             units.size());
  auto loops = kj::heapArrayBuilder<kj::Promise<void>>(units.size());
  for (uint32_t shard = 0; shard < units.size(); ++shard) {
    units_.push_back(std::make_unique<Unit>(shard, context, eventPort, timer, units[shard]));
    if (!data.empty()) units_.back()->data = data[shard];
    loops.add(probe(*units_.back()));
  }
  probing_ = kj::joinPromises(loops.finish()).eagerlyEvaluate([](kj::Exception&& e) {
    spdlog::error("unit health probes stopped: {}", e.getDescription().cStr());
  });
}

UnitHealth::~UnitHealth() {
  probing_ = nullptr;  // before the channels the probes use
}

kj::Promise<void> UnitHealth::probe(Unit& unit) {
  capnp::MallocMessageBuilder message;
  message.initRoot<wire::UnitRequest>().initQueries(1)[0].setStats();
  const kj::TimePoint next = timer_.now() + interval_;
  return unit.channel.call(message, next)
      .then([this, &unit, next](UnitCallResult&& reply) {
        bool answered = false;
        auto root = replyOf(reply, unit.channel.endpoint());
        if (root && root->isAnswers() && root->getAnswers().size() == 1 &&
            root->getAnswers()[0].isStats()) {
          try {
            const auto stats = root->getAnswers()[0].getStats();
            const uint64_t held = static_cast<uint64_t>(unit.devices.value());
            if (unit.incarnation != 0 && stats.getIncarnation() != unit.incarnation) {
              // A memory-only unit comes back empty: what it held is gone.
              ++unit.restarts;
              unit.positionsDropped += held;
              spdlog::warn("unit {} ({}) restarted: it held {} positions, now {}", unit.shard,
                           unit.channel.endpoint(), held, stats.getDevices());
            }
            unit.incarnation = stats.getIncarnation();
            unit.devices.set(static_cast<double>(stats.getDevices()));
            const bool wasWritable = !unit.seen || unit.writable.value() > 0;
            unit.seen = true;
            unit.durable.set(stats.getDurable() ? 1 : 0);
            unit.writable.set(stats.getWritable() ? 1 : 0);
            if (wasWritable && !stats.getWritable())
              spdlog::error("unit {} ({}) no longer stores writes (a failed sync of its log)",
                            unit.shard, unit.channel.endpoint());
            answered = true;
          } catch (const kj::Exception&) {
            // Malformed: counts as not answering.
          }
        }
        const bool wasUp = unit.up.value() > 0;
        unit.up.set(answered ? 1 : 0);
        if (answered != wasUp || !unit.logged) {
          if (answered) {
            spdlog::info("unit {} ({}) answers", unit.shard, unit.channel.endpoint());
          } else {
            spdlog::warn("unit {} ({}) does not answer", unit.shard, unit.channel.endpoint());
          }
          unit.logged = true;
        }
        return timer_.atTime(next);
      })
      .then([this, &unit]() { return probe(unit); });
}

bool UnitHealth::up(size_t shard) const {
  return units_.at(shard)->up.value() > 0;
}

Readiness UnitHealth::readiness() const {
  Readiness r{true, {}};
  auto units = nlohmann::ordered_json::array();
  for (const auto& unit : units_) {
    const bool answering = !unit->data || unit->data->health().answering.load();
    const bool up = unit->up.value() > 0 && answering;
    r.ready = r.ready && up;
    nlohmann::ordered_json entry = {{"shard", unit->shard},
                                    {"endpoint", unit->channel.endpoint()},
                                    {"up", up},
                                    {"devices", static_cast<uint64_t>(unit->devices.value())}};
    if (unit->up.value() > 0) {
      entry["storage"] =
          unit->durable.value() > 0
              ? nlohmann::ordered_json{{"durable", true}, {"writable", unit->writable.value() > 0}}
              : nlohmann::ordered_json("memory-only");
    }
    if (unit->data) {
      entry["channel"] = {{"answering", answering},
                          {"resets", unit->data->health().resets.value()}};
    }
    units.push_back(std::move(entry));
  }
  r.detail["units"] = std::move(units);
  return r;
}

void UnitHealth::expose(metrics::Registry& registry) const {
  for (const auto& unit : units_) {
    const metrics::Labels labels{{"shard", std::to_string(unit->shard)},
                                 {"endpoint", unit->channel.endpoint()}};
    registry.gauge("locus_unit_up", "1 while the unit answers its health probe, else 0", labels,
                   unit->up);
    registry.gauge("locus_unit_reported_devices",
                   "Positions the unit held at its latest health probe", labels, unit->devices);
    registry.counter("locus_unit_restarts_total",
                     "Restarts of the unit seen by the health probe (a new incarnation)", labels,
                     unit->restarts);
    registry.gauge("locus_unit_durable",
                   "1 when the unit keeps its positions in a data dir (--data-dir), else 0", labels,
                   unit->durable);
    registry.gauge("locus_unit_writable",
                   "1 while the unit stores writes; 0 after a failed sync of its log", labels,
                   unit->writable);
    registry.counter("locus_unit_positions_dropped_total",
                     "Positions a unit held at its last probe before a restart (memory-only "
                     "units restart empty)",
                     labels, unit->positionsDropped);
    if (const UnitChannel* data = unit->data) {
      registry.gauge("locus_unit_channel_answering",
                     "1 while the last request on the data channel to the unit was answered",
                     labels, [data] { return data->health().answering.load() ? 1.0 : 0.0; });
      registry.counter("locus_unit_channel_resets_total",
                       "Connections to the unit reopened because the old one broke", labels,
                       data->health().resets);
      registry.counter("locus_unit_replies_dropped_total",
                       "Replies from the unit no caller waited for any more (late, unreadable)",
                       labels, data->health().repliesDropped);
    }
  }
}

FrontEndHttp::FrontEndHttp(zmq::context_t& context, kj::AsyncIoContext& io,
                           const std::vector<std::string>& units,
                           std::vector<const UnitChannel*> data,
                           std::vector<const Listener*> listeners, const std::string& listen,
                           metrics::Registry& registry, HttpRoutes api,
                           std::function<Readiness()> cluster, kj::TlsContext* tls)
    : health_(context, io.unixEventPort, io.provider->getTimer(), units, std::move(data)),
      listeners_(std::move(listeners)),
      httpLimit_(std::min(kMaxHttpConnections, defaultMaxConnections())) {
  health_.expose(registry);
  auto routes = operatorRoutes(registry, [this, cluster = std::move(cluster)] {
    Readiness r = health_.readiness();
    if (cluster) {
      Readiness c = cluster();
      r.ready = c.ready;
      for (auto& [key, value] : c.detail.items()) r.detail[key] = value;
    }
    auto listening = nlohmann::ordered_json::array();
    for (const Listener* l : listeners_) {
      const bool accepting = l->health().accepting.load();
      r.ready = r.ready && accepting;
      listening.push_back(
          {{"name", l->name()}, {"address", l->address()}, {"accepting", accepting}});
    }
    r.detail["listeners"] = std::move(listening);
    if (stopping_) r.ready = false;
    r.detail["stopping"] = stopping_.load();
    return r;
  });
  routes.merge(std::move(api));
  http_ =
      std::make_unique<HttpServer>(io, listen, std::move(routes), httpLimit_, HttpLimits{}, tls);
  listeners_.push_back(&http_->listener());
  http_->expose(registry);
}

}  // namespace locus::transport
