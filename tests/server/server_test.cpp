// The real `locus-server` over loopback: four `locus-unit` processes loaded
// directly (on every replica of each device's partition, as the gateway
// places them), one server in front of them, and its LocationService called
// over Cap'n Proto RPC. Answers are held against the brute-force model; bad
// queries must come back as typed errors; a unit that dies must make
// answers partial, not slow, with one replica, and cost nothing with two.
#include <capnp/ez-rpc.h>
#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/exception.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <span>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "locus.capnp.h"
#include "locus/client/query_client.h"
#include "locus/common/wire.h"
#include "locus/testkit/brute_force.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/compare.h"
#include "locus/testkit/placement.h"
#include "locus/testkit/process.h"
#include "locus/testkit/refusal.h"
#include "locus/transport/unit_client.h"

namespace locus::server {
namespace {

using namespace std::chrono_literals;
using testkit::BruteForce;
using namespace locus::testkit;

// N units and a server in front of them; reports are loaded straight into
// the units holding them (every replica, as the gateway would) and into a
// brute-force model of the whole cluster. `replicas` 0 is the cluster's
// default (2 from two units on). The default deadline is generous: tests
// that hold answers against brute force need them complete even on a
// loaded machine (200 queries in flight on two busy cores once missed
// 250 ms); tests of the deadline itself pass their own.
struct Cluster {
  explicit Cluster(size_t unitCount, int64_t timeoutMs = 5000, uint32_t replicas = 0)
      : replicas(replicas), units(unitCount) {
    std::vector<std::string> endpoints;
    for (const auto& u : units) endpoints.push_back(u.endpoint);
    std::vector<std::string> args;
    if (replicas != 0) args = {"--replicas", std::to_string(replicas)};
    server = std::make_unique<RunningServer>(endpoints, timeoutMs, "127.0.0.1:0", Http::kOff, args);
  }

  // Where `id` lives, the owner first.
  std::vector<uint32_t> holding(std::string_view id) const {
    return unitsHolding(id, static_cast<uint32_t>(units.size()), replicas);
  }

  void load(const std::vector<Report>& reports) {
    const auto n = static_cast<uint32_t>(units.size());
    std::vector<std::vector<Report>> byShard(n);
    for (const auto& r : reports) {
      for (uint32_t u : holding(r.id)) byShard[u].push_back(r);
    }
    for (uint32_t shard = 0; shard < n; ++shard) {
      transport::UnitClient client(context, units[shard].endpoint, kWait);
      const auto& mine = byShard[shard];
      for (size_t start = 0; start < mine.size(); start += 1000) {
        const size_t size = std::min<size_t>(1000, mine.size() - start);
        auto outcome = client.apply(std::span(mine).subspan(start, size));
        REQUIRE(outcome);
        REQUIRE(outcome->rejected.empty());
      }
    }
    for (const auto& r : reports) model.apply(r);
  }

  uint32_t replicas;
  zmq::context_t context;
  std::vector<RunningUnit> units;
  std::unique_ptr<RunningServer> server;
  BruteForce model;
};

// Complete: every partition answered for, by units that all answered.
// With replicas, fewer than all `units` may be asked (while one is not yet
// seen up, its partitions go to their other replicas).
void requireComplete(const Answer& a, uint32_t units) {
  INFO((a.error ? a.error->message : std::string("no error")));
  REQUIRE(!a.error);
  CHECK(!a.partial);
  CHECK(a.total >= 1);
  CHECK(a.total <= units);
  CHECK(a.answered == a.total);
  CHECK(a.partitions == kDefaultPartitions);
  CHECK(a.partitionsAnswered == a.partitions);
}

geo::Polygon polygon(std::vector<geo::Polygon::Ring> rings) {
  REQUIRE(!geo::Polygon::validate(rings));
  return geo::Polygon(std::move(rings));
}

// ------------------------------------------------------------------ tests

TEST_CASE("locus-server answers equal brute force over four units", "[cluster]") {
  Cluster cluster(4);
  std::mt19937_64 rng(7);
  std::vector<std::string> ids;
  const auto reports = worldReports(rng, 20'000, ids);
  cluster.load(reports);
  Rpc rpc(cluster.server->address);
  const auto& model = cluster.model;
  const int64_t now = kTsMs;  // no age filters and no TTL: time does not matter

  SECTION("nearest") {
    const std::vector<geo::LatLon> centres{{31.25, 121.5}, {31.0, 121.2},  {0, 179.99},
                                           {0, -179.99},   {89.9, 10},     {-89.5, -45},
                                           {51.5, -0.12},  {31.3, 121.45}, {-20, 175}};
    for (const auto& c : centres) {
      for (uint32_t k : {1u, 10u, 100u, 1000u}) {
        INFO("nearest " << k << " to " << c.lat << "," << c.lon);
        NearestQuery q{c, k};
        auto a = rpc.nearest(q);
        requireComplete(a, 4);
        REQUIRE_SAME_ANSWER(a.result, model.nearest(q, now));
      }
    }
    NearestQuery bounded{{31.25, 121.5}, 50, 800};
    auto a = rpc.nearest(bounded);
    requireComplete(a, 4);
    REQUIRE_SAME_ANSWER(a.result, model.nearest(bounded, now));
  }

  SECTION("nearest, many in flight at once (coalesced into batches per unit)") {
    std::vector<NearestQuery> queries;
    for (int i = 0; i < 150; ++i) {  // more than one batch (kMaxQueriesPerRequest)
      const geo::LatLon c{-80 + static_cast<double>(rng() % 16'000) / 100,
                          -179 + static_cast<double>(rng() % 35'800) / 100};
      queries.push_back(NearestQuery{c, 1 + static_cast<uint32_t>(rng() % 40)});
    }
    queries[7].k = 0;  // refused alone; the others are answered
    const auto answers = rpc.nearestAll(queries);
    REQUIRE(answers.size() == queries.size());
    for (size_t i = 0; i < queries.size(); ++i) {
      INFO("query " << i);
      if (i == 7) {
        REQUIRE(answers[i].error);
        CHECK(answers[i].error->code == ErrorCode::kBadRequest);
        continue;
      }
      requireComplete(answers[i], 4);
      REQUIRE_SAME_ANSWER(answers[i].result, model.nearest(queries[i], now));
    }
  }

  SECTION("nearestMany and withinMany: one call, an answer per point, in order") {
    std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
    NearestMany many{.points = {{0, 179.999}, {0, -179.999}, {90, 0}, {-90, 45}, {31.25, 121.5}}};
    while (many.points.size() < 400) many.points.push_back({lat(rng), lon(rng)});
    many.each.k = 7;
    auto answers = rpc.nearestMany(many);
    REQUIRE(answers);
    REQUIRE(answers->size() == many.points.size());
    for (size_t i = 0; i < many.points.size(); ++i) {
      INFO("point " << i);
      requireComplete((*answers)[i], 4);
      REQUIRE_SAME_ANSWER((*answers)[i].result, model.nearest(many.at(i), now));
    }
    for (bool countOnly : {false, true}) {
      WithinMany circles{.points = many.points, .radiusM = 400'000};
      circles.each.limit = countOnly ? 0 : 25;
      circles.each.countOnly = countOnly;
      auto within = rpc.withinMany(circles);
      REQUIRE(within);
      REQUIRE(within->size() == circles.points.size());
      for (size_t i = 0; i < circles.points.size(); ++i) {
        INFO("circle " << i << " count only " << countOnly);
        requireComplete((*within)[i], 4);
        REQUIRE_SAME_ANSWER((*within)[i].result, model.within(circles.at(i), now));
      }
    }
  }

  SECTION("circles, with limits and count-only") {
    for (const auto& [c, r] : std::vector<std::pair<geo::LatLon, double>>{{{31.25, 121.5}, 1000},
                                                                          {{31.25, 121.5}, 5000},
                                                                          {{0, 180}, 500'000},
                                                                          {{89.5, 0}, 200'000},
                                                                          {{10, 10}, 0}}) {
      for (uint32_t limit : {0u, 7u}) {
        for (bool countOnly : {false, true}) {
          INFO("circle " << c.lat << "," << c.lon << " r " << r << " limit " << limit << " count "
                         << countOnly);
          AreaQuery q{.area = Circle{c, r}, .limit = limit, .countOnly = countOnly};
          auto a = rpc.within(q);
          requireComplete(a, 4);
          REQUIRE_SAME_ANSWER(a.result, model.within(q, now));
        }
      }
    }
  }

  SECTION("boxes, the antimeridian included") {
    for (const auto& box : std::vector<geo::Box>{{31.1, 121.3, 31.2, 121.4},
                                                 {-30, 170, 30, -170},
                                                 {-10, 179, 10, -179.5},
                                                 {80, -180, 90, 180},
                                                 {-90, -180, 90, 180}}) {
      for (uint32_t limit : {0u, 25u}) {
        for (bool countOnly : {false, true}) {
          INFO("box " << box.south << " " << box.west << " " << box.north << " " << box.east
                      << " limit " << limit << " count " << countOnly);
          AreaQuery q{.area = box, .limit = limit, .countOnly = countOnly};
          auto a = rpc.within(q);
          requireComplete(a, 4);
          REQUIRE_SAME_ANSWER(a.result, model.within(q, now));
          if (!countOnly && limit == 0) CHECK(a.result.count > 0);
        }
      }
    }
  }

  SECTION("a polygon with a hole") {
    auto poly = polygon(
        {{{31.05, 121.25}, {31.05, 121.75}, {31.45, 121.75}, {31.45, 121.25}, {31.05, 121.25}},
         {{31.2, 121.4}, {31.3, 121.4}, {31.3, 121.6}, {31.2, 121.6}, {31.2, 121.4}}});
    for (uint32_t limit : {0u, 10u}) {
      for (bool countOnly : {false, true}) {
        AreaQuery q{.area = poly, .limit = limit, .countOnly = countOnly};
        auto a = rpc.within(q);
        requireComplete(a, 4);
        REQUIRE_SAME_ANSWER(a.result, model.within(q, now));
      }
    }
    // The hole really is empty in the answer, and its devices exist.
    AreaQuery hole{
        .area =
            polygon({{{31.2, 121.4}, {31.3, 121.4}, {31.3, 121.6}, {31.2, 121.6}, {31.2, 121.4}}}),
        .countOnly = true};
    CHECK(rpc.within(hole).result.count > 0);
  }

  SECTION("get, routed to the owning unit") {
    for (size_t i = 0; i < ids.size(); i += 997) {
      INFO("get " << ids[i]);
      auto a = rpc.get(ids[i]);
      REQUIRE(!a.error);
      REQUIRE(a.result.hits.size() == 1);
      const Hit& expected = model.at(ids[i]);
      CHECK(a.result.hits[0].id == ids[i]);
      CHECK(a.result.hits[0].lat == expected.lat);
      CHECK(a.result.hits[0].lon == expected.lon);
      CHECK(a.result.hits[0].tsMs == expected.tsMs);
      CHECK(!a.partial);
      CHECK(a.answered == a.total);
    }
  }

  SECTION("stats covers every unit") {
    auto request = rpc.service().statsRequest();
    auto response = rpc.await(request.send().then([](auto&& r) {
      auto stats = r.getStats();
      uint64_t devices = 0;
      for (auto u : stats.getUnits()) devices += u.getDevices();
      return std::make_tuple(r.hasError(), stats.getUnits().size(), devices,
                             stats.getShards().getTotal(), stats.getShards().getAnswered());
    }));
    CHECK(!std::get<0>(response));
    CHECK(std::get<1>(response) == 4);
    CHECK(std::get<2>(response) == 2 * ids.size());  // each device on its two replicas
    CHECK(std::get<3>(response) == 4);
    CHECK(std::get<4>(response) == 4);
  }

  SECTION("many calls in flight on one connection") {
    std::vector<kj::Promise<Answer>> calls;
    std::vector<NearestQuery> queries;
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 200; ++i) {
      queries.push_back(NearestQuery{{31 + 0.5 * u(rng), 121.2 + 0.6 * u(rng)}, 10});
      auto request = rpc.service().nearestRequest();
      writeNearestQuery(queries.back(), request.initQuery());
      calls.push_back(request.send().then([](auto&& r) { return answerOf(r); }));
    }
    auto builder = kj::heapArrayBuilder<kj::Promise<Answer>>(calls.size());
    for (auto& c : calls) builder.add(kj::mv(c));
    auto answers = rpc.await(kj::joinPromises(builder.finish()));
    for (size_t i = 0; i < queries.size(); ++i) {
      requireComplete(answers[i], 4);
      REQUIRE_SAME_ANSWER(answers[i].result, model.nearest(queries[i], now));
    }
  }
}

TEST_CASE("a query client whose loop sat idle past its call timeout still gets answers",
          "[cluster]") {
  // Its loop runs only while it waits; a deadline counted from the loop's
  // last poll would have passed before the call was sent.
  Cluster cluster(1);
  std::mt19937_64 rng(5);
  std::vector<std::string> ids;
  cluster.load(worldReports(rng, 100, ids));
  client::QueryClient client(cluster.server->address, 300 * kj::MILLISECONDS);
  const NearestQuery q{{31.25, 121.5}, 5};
  REQUIRE(client.nearest(q));
  std::this_thread::sleep_for(700ms);
  auto again = client.nearest(q);
  REQUIRE(again);
  REQUIRE_SAME_ANSWER(again->result, cluster.model.nearest(q, kTsMs));
}

TEST_CASE("locus-server answers bad queries with typed errors and keeps serving", "[cluster]") {
  Cluster cluster(4);
  std::vector<std::string> ids;
  std::mt19937_64 rng(3);
  cluster.load(worldReports(rng, 500, ids));
  Rpc rpc(cluster.server->address);

  const auto stillAnswers = [&] {
    NearestQuery q{{31.25, 121.5}, 5};
    auto good = rpc.nearest(q);
    requireComplete(good, 4);
    REQUIRE_SAME_ANSWER(good.result, cluster.model.nearest(q, kTsMs));
  };
  const auto expectError = [&](const Answer& a, ErrorCode code) {
    REQUIRE(a.error);
    INFO(a.error->message);
    CHECK(a.error->code == code);
    CHECK(!a.error->message.empty());
    stillAnswers();
  };

  expectError(rpc.nearest(NearestQuery{{31.25, 121.5}, 0}), ErrorCode::kBadRequest);
  expectError(rpc.nearest(NearestQuery{{95, 121.5}, 3}), ErrorCode::kBadRequest);
  expectError(rpc.nearest(NearestQuery{{31, 181}, 3}), ErrorCode::kBadRequest);
  expectError(rpc.within(AreaQuery{.area = Circle{{31.25, 121.5}, -5}}), ErrorCode::kBadRequest);
  expectError(rpc.within(AreaQuery{.area = geo::Box{31.3, 121, 31.2, 122}}),
              ErrorCode::kBadRequest);
  {
    // An unclosed ring, and a ring with too few positions.
    for (unsigned size : {4u, 3u}) {
      auto request = rpc.service().withinRequest();
      auto ring = request.initQuery().initArea().initPolygon().initRings(1).init(0, size);
      for (unsigned i = 0; i < size; ++i) writeLatLon({31.0 + 0.1 * i, 121.0 + 0.05 * i}, ring[i]);
      expectError(rpc.send(request), ErrorCode::kBadRequest);
    }
  }
  {
    // Many points: refused as a whole, the bad point named.
    const auto refusedMany = [&](const Result<std::vector<Answer>>& r, const std::string& says) {
      REQUIRE(!r);
      INFO(r.error().message);
      CHECK(r.error().code == ErrorCode::kBadRequest);
      CHECK(r.error().message.find(says) != std::string::npos);
      stillAnswers();
    };
    refusedMany(rpc.nearestMany(NearestMany{}), "no points");
    NearestMany many{.points = std::vector<geo::LatLon>(kMaxBatchPoints + 1, {31.2, 121.5})};
    refusedMany(rpc.nearestMany(many), "allowed in one call");
    many.points.resize(100);
    many.each.k = kMaxResults / 50;
    refusedMany(rpc.nearestMany(many), "ask fewer points per call");
    many.each.k = 3;
    many.points[2] = {95, 0};
    refusedMany(rpc.nearestMany(many), "point 2: ");
    WithinMany circles{.points = {{31.2, 121.5}}, .radiusM = 100};
    refusedMany(rpc.withinMany(circles), "need a limit");
    circles.each.limit = 5;
    circles.radiusM = -1;
    refusedMany(rpc.withinMany(circles), "point 0: ");
  }
  expectError(rpc.get("nobody-has-this-id"), ErrorCode::kNotFound);
  expectError(rpc.get(""), ErrorCode::kBadRequest);
  expectError(rpc.get(std::string(200, 'x')), ErrorCode::kBadRequest);
  CHECK(cluster.server->process.waitExit(0ms) == std::nullopt);  // still running
}

TEST_CASE("locus-server answers partially within the deadline when a unit dies", "[cluster]") {
  constexpr int64_t kTimeoutMs = 300;
  Cluster cluster(4, kTimeoutMs, /*replicas=*/1);
  std::vector<std::string> ids;
  std::mt19937_64 rng(11);
  cluster.load(worldReports(rng, 2000, ids));
  Rpc rpc(cluster.server->address);
  const NearestQuery q{{31.25, 121.5}, 10};
  requireComplete(rpc.nearest(q), 4);

  constexpr uint32_t kDead = 2;
  cluster.units[kDead].process.signal(SIGKILL);
  REQUIRE(cluster.units[kDead].process.waitExit(kWait));

  // What the cluster still holds: every device but the dead unit's.
  BruteForce alive;
  std::string deadId, liveId;
  for (const Hit& h : cluster.model.devices()) {
    if (cluster.holding(h.id)[0] == kDead) {
      if (deadId.empty()) deadId = h.id;
      continue;
    }
    if (liveId.empty()) liveId = h.id;
    alive.apply(Report{.id = h.id, .lat = h.lat, .lon = h.lon, .tsMs = h.tsMs});
  }

  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    auto a = rpc.nearest(q);
    REQUIRE(!a.error);
    CHECK(a.partial);
    CHECK(a.total == 4);
    CHECK(a.answered == 3);
    REQUIRE_SAME_ANSWER(a.result, alive.nearest(q, kTsMs));

    AreaQuery box{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true};
    auto counted = rpc.within(box);
    CHECK(counted.partial);
    CHECK(counted.answered == 3);
    CHECK(counted.result.count == alive.size());
  }
  // Many queries at once are all answered, partially: one after another
  // (50 deadlines) they would outlast the bound Rpc puts on every wait.
  {
    auto builder = kj::heapArrayBuilder<kj::Promise<Answer>>(50);
    for (int i = 0; i < 50; ++i) {
      auto request = rpc.service().nearestRequest();
      writeNearestQuery(q, request.initQuery());
      builder.add(request.send().then([](auto&& r) { return answerOf(r); }));
    }
    auto answers = rpc.await(kj::joinPromises(builder.finish()));
    for (const auto& a : answers) CHECK(a.answered == 3);
  }
  // get: the dead unit's devices time out, the others are found.
  auto lost = rpc.get(deadId);
  REQUIRE(lost.error);
  CHECK(lost.error->code == ErrorCode::kTimeout);
  auto found = rpc.get(liveId);
  CHECK(!found.error);

  auto stats = rpc.await(rpc.service().statsRequest().send().then([](auto&& r) {
    return std::make_pair(r.getStats().getShards().getTotal(),
                          r.getStats().getShards().getAnswered());
  }));
  CHECK(stats.first == 4);
  CHECK(stats.second == 3);
}

TEST_CASE("locus-server answers completely through a dead unit with two replicas", "[cluster]") {
  constexpr int64_t kTimeoutMs = 300;
  Cluster cluster(4, kTimeoutMs);  // the default: 2 replicas
  std::vector<std::string> ids;
  std::mt19937_64 rng(13);
  cluster.load(worldReports(rng, 3000, ids));
  Rpc rpc(cluster.server->address);
  const NearestQuery q{{31.25, 121.5}, 25};
  const AreaQuery everything{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true};
  const auto exact = [&](const Answer& a) {
    INFO((a.error ? a.error->message : std::string("no error")));
    REQUIRE(!a.error);
    CHECK(!a.partial);
  };
  {
    auto a = rpc.nearest(q);
    requireComplete(a, 4);
    REQUIRE_SAME_ANSWER(a.result, cluster.model.nearest(q, kTsMs));
    auto counted = rpc.within(everything);
    exact(counted);
    CHECK(counted.result.count == cluster.model.size());  // each device once, not twice
  }

  constexpr uint32_t kDead = 1;
  cluster.units[kDead].process.signal(SIGKILL);
  REQUIRE(cluster.units[kDead].process.waitExit(kWait));
  std::string deadOwned;  // a device whose owner is the dead unit
  for (const auto& id : ids) {
    if (cluster.holding(id)[0] == kDead) {
      deadOwned = id;
      break;
    }
  }
  REQUIRE(!deadOwned.empty());

  // The first query after the kill finds out (its hedge), the others know.
  for (int round = 0; round < 5; ++round) {
    INFO("round " << round);
    const auto started = std::chrono::steady_clock::now();
    auto a = rpc.nearest(q);
    exact(a);
    CHECK(a.answered == 3);
    REQUIRE_SAME_ANSWER(a.result, cluster.model.nearest(q, kTsMs));
    auto counted = rpc.within(everything);
    exact(counted);
    CHECK(counted.result.count == cluster.model.size());
    auto found = rpc.get(deadOwned);
    REQUIRE(!found.error);
    CHECK(found.result.hits.at(0).id == deadOwned);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(3 * kTimeoutMs));
  }
}

TEST_CASE("locus-server stays complete and in time while a replica is stopped", "[cluster]") {
  constexpr int64_t kTimeoutMs = 300;
  Cluster cluster(2, kTimeoutMs);
  std::vector<std::string> ids;
  std::mt19937_64 rng(17);
  cluster.load(worldReports(rng, 2000, ids));
  Rpc rpc(cluster.server->address);
  const NearestQuery q{{10, 20}, 15};
  requireComplete(rpc.nearest(q), 2);

  cluster.units[0].process.signal(SIGSTOP);
  for (int round = 0; round < 4; ++round) {
    INFO("round " << round);
    const auto started = std::chrono::steady_clock::now();
    auto a = rpc.nearest(q);
    REQUIRE(!a.error);
    CHECK(!a.partial);
    REQUIRE_SAME_ANSWER(a.result, cluster.model.nearest(q, kTsMs));
    // Within the deadline: the stopped unit costs half of it at most.
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::milliseconds(kTimeoutMs + 150));
  }
  cluster.units[0].process.signal(SIGCONT);
}

TEST_CASE("locus-server drops late replies and never lets a slow unit block others", "[cluster]") {
  constexpr int64_t kTimeoutMs = 400;
  Cluster cluster(4, kTimeoutMs, /*replicas=*/1);
  std::vector<std::string> ids;
  std::mt19937_64 rng(19);
  cluster.load(worldReports(rng, 2000, ids));
  Rpc rpc(cluster.server->address);
  constexpr uint32_t kSlow = 1;
  std::string liveId;
  for (const auto& id : ids) {
    if (cluster.holding(id)[0] != kSlow) {
      liveId = id;
      break;
    }
  }

  cluster.units[kSlow].process.signal(SIGSTOP);  // alive but silent
  const NearestQuery q{{31.25, 121.5}, 20};
  bool nearestDone = false;
  auto slow = rpc.service().nearestRequest();
  writeNearestQuery(q, slow.initQuery());
  auto nearest = slow.send().then([&nearestDone](auto&& r) {
    nearestDone = true;
    return answerOf(r);
  });
  // A get for a device of a healthy unit is answered while the nearest
  // query still waits for the silent one.
  auto found = rpc.get(liveId);
  CHECK(!found.error);
  CHECK(!nearestDone);
  auto partial = rpc.await(kj::mv(nearest));
  CHECK(partial.partial);
  CHECK(partial.answered == 3);

  // The unit wakes up and answers the expired request late; later queries
  // must take only the answers to themselves.
  cluster.units[kSlow].process.signal(SIGCONT);
  for (int i = 0; i < 5; ++i) {
    NearestQuery other{{31.0 + 0.1 * i, 121.3}, 5 + static_cast<uint32_t>(i)};
    auto a = rpc.nearest(other);
    requireComplete(a, 4);
    REQUIRE_SAME_ANSWER(a.result, cluster.model.nearest(other, kTsMs));
  }
}

TEST_CASE("locus-server exits 0 on SIGTERM and SIGINT", "[cluster]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  Cluster cluster(2);
  {
    Rpc rpc(cluster.server->address);
    requireComplete(rpc.nearest(NearestQuery{{0, 0}, 1}), 2);
  }
  cluster.server->process.signal(sig);
  const auto status = cluster.server->process.waitExit(kWait);
  REQUIRE(status);
  INFO(status->describe() << "\nstderr:\n" << cluster.server->process.stderrText());
  CHECK(status->exited);
  CHECK(status->code == 0);
}

TEST_CASE("locus-server finishes a query in flight before it exits on SIGTERM", "[cluster]") {
  constexpr int64_t kTimeoutMs = 600;
  Cluster cluster(2, kTimeoutMs, /*replicas=*/1);
  cluster.units[1].process.signal(SIGKILL);  // so the query waits for its deadline
  REQUIRE(cluster.units[1].process.waitExit(kWait));
  Rpc rpc(cluster.server->address);
  auto request = rpc.service().nearestRequest();
  writeNearestQuery(NearestQuery{{0, 0}, 3}, request.initQuery());
  auto inFlight = request.send().then([](auto&& r) { return answerOf(r); });
  // Let the request reach the server, then stop it while the query waits.
  rpc.runFor(150ms);
  cluster.server->process.signal(SIGTERM);
  auto answer = rpc.await(kj::mv(inFlight));
  REQUIRE(!answer.error);
  CHECK(answer.partial);
  CHECK(answer.answered == 1);
  const auto status = cluster.server->process.waitExit(kWait);
  REQUIRE(status);
  INFO(status->describe() << "\nstderr:\n" << cluster.server->process.stderrText());
  CHECK(status->exited);
  CHECK(status->code == 0);
}

TEST_CASE("locus-server exits non-zero with a reason on bad flags", "[cluster]") {
  using Args = std::vector<std::string>;
  auto [args, mention] = GENERATE(table<Args, std::string>({
      {Args{"--listen", "127.0.0.1:0"}, "--units"},
      {Args{"--units", "tcp://127.0.0.1:9", "--listen", "nowhere"}, "nowhere"},
      {Args{"--units", "tcp://127.0.0.1:9", "--listen", "127.0.0.1:0", "--timeout-ms", "0"},
       "--timeout-ms"},
      {Args{"--units", "not-an-endpoint", "--listen", "127.0.0.1:0"}, "units"},
      {Args{"--units", "tcp://127.0.0.1:9", "--listen", "127.0.0.1:0", "--http-listen", "x"},
       "--http-listen x"},
  }));
  testkit::checkRefusesToStart(binary("locus-server"), args, mention);
}

TEST_CASE("locus-server exits non-zero with one line when the address is in use", "[cluster]") {
  Cluster cluster(1);
  testkit::ChildProcess second(binary("locus-server"), {"--units", cluster.units[0].endpoint,
                                                        "--listen", cluster.server->address});
  const auto status = second.waitExit(kWait);
  REQUIRE(status);
  CHECK((status->exited && status->code != 0));
  second.waitForStderrClosed(kWait);
  const std::string err = second.stderrText();
  INFO("stderr:\n" << err);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_THAT(err, Catch::Contains("in use"));
}

}  // namespace
}  // namespace locus::server
