// ScatterGather as a library, over inproc:// units in this process: the
// nearest queries of one event-loop turn travel as a few batched messages
// and every answer is mapped back to its own query; a unit that never
// answers costs a partial answer by the deadline, a timeout for the ids it
// owns, and nothing more.
#include "locus/server/scatter_gather.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "locus/testkit/brute_force.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/compare.h"
#include "locus/testkit/inproc.h"
#include "locus/testkit/placement.h"
#include "locus/transport/unit_client.h"
#include "locus/unit/unit_server.h"

namespace locus::server {
namespace {

using namespace std::chrono_literals;
using testkit::BruteForce;
using namespace locus::testkit;

// Loads `reports` into the units of `endpoints` that hold them (every
// replica, `replicas` 0 = the default), and into `model`.
void load(zmq::context_t& context, const std::vector<std::string>& endpoints,
          const std::vector<Report>& reports, BruteForce& model, uint32_t replicas = 0) {
  const auto n = static_cast<uint32_t>(endpoints.size());
  std::vector<std::vector<Report>> byShard(n);
  for (const auto& r : reports) {
    for (uint32_t u : unitsHolding(r.id, n, replicas)) byShard[u].push_back(r);
  }
  for (uint32_t shard = 0; shard < n; ++shard) {
    transport::UnitClient client(context, endpoints[shard], kWait);
    for (size_t start = 0; start < byShard[shard].size(); start += 2000) {
      const size_t size = std::min<size_t>(2000, byShard[shard].size() - start);
      REQUIRE(client.apply(std::span(byShard[shard]).subspan(start, size)));
    }
  }
  for (const auto& r : reports) model.apply(r);
}

TEST_CASE("ScatterGather batches one turn's nearest queries and maps each answer back",
          "[server][library]") {
  zmq::context_t context;
  std::vector<std::unique_ptr<InprocUnit>> units;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 3; ++i) {
    units.push_back(std::make_unique<InprocUnit>(context, "sg-unit-" + std::to_string(i)));
    endpoints.push_back(units.back()->endpoint());
  }
  std::mt19937_64 rng(29);
  std::vector<std::string> ids;
  BruteForce model;
  load(context, endpoints, worldReports(rng, 5000, ids), model);

  auto io = kj::setupAsyncIo();
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), endpoints, 2000);
  std::vector<NearestQuery> queries;
  for (int i = 0; i < 100; ++i) {  // more than one message's worth (kMaxQueriesPerRequest)
    const geo::LatLon c{-80 + static_cast<double>(rng() % 16'000) / 100,
                        -179 + static_cast<double>(rng() % 35'800) / 100};
    queries.push_back(NearestQuery{c, 1 + static_cast<uint32_t>(rng() % 30)});
  }
  auto calls = kj::heapArrayBuilder<kj::Promise<GatheredResult>>(queries.size());
  for (const auto& q : queries) calls.add(cluster.nearest(q));
  auto answers = kj::joinPromises(calls.finish()).wait(io.waitScope);

  CHECK(cluster.scatteredQueries().value() == 100);
  CHECK(cluster.scatterMessages().value() == 2);  // 64 + 36: one message per unit each
  for (size_t i = 0; i < queries.size(); ++i) {
    INFO("query " << i);
    // Complete: with replicas a unit not yet seen up is not asked.
    CHECK_FALSE(answers[i].shards.partial());
    CHECK(answers[i].shards.partitionsAnswered == kDefaultPartitions);
    CHECK(answers[i].shards.answered == answers[i].shards.total);
    REQUIRE_SAME_ANSWER(answers[i].result, model.nearest(queries[i], kTsMs));
  }
}

TEST_CASE("ScatterGather coalesces area queries with nearest ones, each reduced by its kind",
          "[server][library]") {
  zmq::context_t context;
  std::vector<std::unique_ptr<InprocUnit>> units;
  std::vector<std::string> endpoints;
  for (int i = 0; i < 2; ++i) {
    units.push_back(std::make_unique<InprocUnit>(context, "sg-mix-" + std::to_string(i)));
    endpoints.push_back(units.back()->endpoint());
  }
  std::mt19937_64 rng(37);
  std::vector<std::string> ids;
  BruteForce model;
  load(context, endpoints, worldReports(rng, 4000, ids), model);

  auto io = kj::setupAsyncIo();
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), endpoints, 2000);
  const NearestQuery near{{31.25, 121.5}, 7};
  const AreaQuery box{.area = geo::Box{31.1, 121.3, 31.4, 121.7}, .limit = 25};
  const AreaQuery across{.area = geo::Box{-20, 175, 20, -175}};  // the antimeridian
  const AreaQuery circleCount{.area = Circle{{31.25, 121.5}, 5000}, .countOnly = true};
  const AreaQuery polygon{
      .area = geo::Polygon({{{31.1, 121.3}, {31.1, 121.6}, {31.4, 121.6}, {31.1, 121.3}}}),
      .limit = 40};
  auto a = cluster.within(box);
  auto b = cluster.nearest(near);
  auto c = cluster.within(across);
  auto d = cluster.within(circleCount);
  auto e = cluster.within(polygon);
  auto boxAnswer = a.wait(io.waitScope);
  auto nearAnswer = b.wait(io.waitScope);
  auto acrossAnswer = c.wait(io.waitScope);
  auto countAnswer = d.wait(io.waitScope);
  auto polygonAnswer = e.wait(io.waitScope);
  // One message per unit, but for the unlimited query: its hit budget is
  // kMaxResults, so it travels alone and splits the turn in three.
  CHECK(cluster.scatteredQueries().value() == 5);
  CHECK(cluster.scatterMessages().value() == 3);
  REQUIRE(boxAnswer);
  REQUIRE(acrossAnswer);
  REQUIRE(countAnswer);
  REQUIRE(polygonAnswer);
  REQUIRE_SAME_ANSWER(boxAnswer->result, model.within(box, kTsMs));
  REQUIRE_SAME_ANSWER(nearAnswer.result, model.nearest(near, kTsMs));
  REQUIRE_SAME_ANSWER(acrossAnswer->result, model.within(across, kTsMs));
  CHECK(countAnswer->result.count == model.within(circleCount, kTsMs).count);
  REQUIRE_SAME_ANSWER(polygonAnswer->result, model.within(polygon, kTsMs));
  CHECK_FALSE(boxAnswer->shards.partial());
  CHECK(boxAnswer->shards.answered == boxAnswer->shards.total);
}

TEST_CASE("ScatterGather keeps a turn of big polygons within the frame limit",
          "[server][library]") {
  zmq::context_t context;
  // inproc:// has no size limit, so the unit listens on loopback TCP.
  InprocUnit unit(context, "unused", "tcp://127.0.0.1:*");
  std::mt19937_64 rng(41);
  std::vector<std::string> ids;
  BruteForce model;
  std::vector<Report> city;
  for (const auto& r : worldReports(rng, 300, ids)) {
    if (r.lat > 31 && r.lat < 31.5) city.push_back(r);
  }
  load(context, {unit.endpoint()}, city, model);

  // Six rings of 200,000 vertices (~3.2 MB each in a request): together
  // over the 16 MiB a frame may carry.
  geo::Polygon::Ring ring;
  constexpr int kVertices = 200'000;
  for (int i = 0; i < kVertices; ++i) {
    const double t = 2 * geo::kPi * i / kVertices;
    ring.push_back({31.25 + 0.2 * std::sin(t), 121.5 + 0.25 * std::cos(t)});
  }
  ring.push_back(ring.front());
  const AreaQuery q{.area = geo::Polygon({ring}), .limit = 100};

  auto io = kj::setupAsyncIo();
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), {unit.endpoint()},
                        10'000);
  auto calls = kj::heapArrayBuilder<kj::Promise<Result<GatheredResult>>>(6);
  for (int i = 0; i < 6; ++i) calls.add(cluster.within(q));
  auto answers = kj::joinPromises(calls.finish()).wait(io.waitScope);
  CHECK(cluster.scatterMessages().value() >= 3);  // at most half a frame each
  const QueryResult expected = model.within(q, kTsMs);
  for (auto& a : answers) {
    REQUIRE(a);
    CHECK(a->shards.answered == 1);
    REQUIRE_SAME_ANSWER(a->result, expected);
  }
}

TEST_CASE("ScatterGather answers partially by the deadline when a unit never answers",
          "[server][library]") {
  zmq::context_t context;
  InprocUnit a(context, "sg-live-0");
  SilentUnit silent(context, "sg-silent-1");
  const std::vector<std::string> endpoints{a.endpoint(), silent.endpoint};
  std::mt19937_64 rng(31);
  std::vector<std::string> ids;
  const auto reports = worldReports(rng, 2000, ids);
  // One replica: only the live unit's share is loaded; the model holds
  // just that.
  std::vector<Report> live;
  std::string silentId;
  for (const auto& r : reports) {
    if (ownerOf(r.id, 2, 1) == 0) {
      live.push_back(r);
    } else if (silentId.empty()) {
      silentId = std::string(r.id);
    }
  }
  BruteForce model;
  load(context, {a.endpoint()}, live, model);

  auto io = kj::setupAsyncIo();
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), endpoints, 100,
                        Replication{.replicas = 1});
  const NearestQuery q{{31.25, 121.5}, 10};
  const GatheredResult near = cluster.nearest(q).wait(io.waitScope);
  CHECK(near.shards.partial());
  CHECK(near.shards.answered == 1);
  REQUIRE_SAME_ANSWER(near.result, model.nearest(q, kTsMs));

  const auto counted =
      cluster.within(AreaQuery{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true})
          .wait(io.waitScope);
  REQUIRE(counted);
  CHECK(counted->shards.answered == 1);
  CHECK(counted->result.count == live.size());

  const auto lost = cluster.get(silentId).wait(io.waitScope);
  REQUIRE_FALSE(lost);
  CHECK(lost.error().code == ErrorCode::kTimeout);
  CHECK_THAT(lost.error().message, Catch::Contains("which owns this id"));
  const auto found = cluster.get(std::string(live.front().id)).wait(io.waitScope);
  REQUIRE(found);
  CHECK(found->result.hits.at(0).id == live.front().id);

  const ClusterStats stats = cluster.stats().wait(io.waitScope);
  CHECK(stats.shards.total == 2);
  CHECK(stats.shards.answered == 1);
  CHECK(cluster.pending() == 0);  // the silent unit's calls were forgotten at the deadline
}

TEST_CASE("ScatterGather with replicas: one replica per partition, failover for the silent",
          "[server][library]") {
  zmq::context_t context;
  InprocUnit a(context, "sg-rep-0"), b(context, "sg-rep-1");
  SilentUnit silent(context, "sg-rep-silent-2");
  const std::vector<std::string> endpoints{a.endpoint(), b.endpoint(), silent.endpoint};
  std::mt19937_64 rng(37);
  std::vector<std::string> ids;
  const auto reports = worldReports(rng, 3000, ids);
  BruteForce model;
  // Every device on both replicas of its partition (the silent one holds
  // nothing: its share must come from the others).
  {
    std::vector<std::vector<Report>> byUnit(3);
    for (const auto& r : reports) {
      for (uint32_t u : unitsHolding(r.id, 3, 2)) byUnit[u].push_back(r);
      model.apply(r);
    }
    for (uint32_t u = 0; u < 2; ++u) {
      transport::UnitClient client(context, endpoints[u], kWait);
      for (size_t start = 0; start < byUnit[u].size(); start += 1000) {
        const size_t size = std::min<size_t>(1000, byUnit[u].size() - start);
        REQUIRE(client.apply(std::span(byUnit[u]).subspan(start, size)));
      }
    }
  }
  auto io = kj::setupAsyncIo();
  constexpr int64_t kTimeoutMs = 400;
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), endpoints, kTimeoutMs,
                        Replication{.replicas = 2});
  auto& timer = io.provider->getTimer();
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    const kj::TimePoint started = timer.now();
    const NearestQuery q{{31.25, 121.5}, 20};
    const GatheredResult near = cluster.nearest(q).wait(io.waitScope);
    CHECK_FALSE(near.shards.partial());
    CHECK(near.shards.partitionsAnswered == kDefaultPartitions);
    REQUIRE_SAME_ANSWER(near.result, model.nearest(q, kTsMs));
    // Each device counted once although two units hold it.
    const auto counted =
        cluster.within(AreaQuery{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true})
            .wait(io.waitScope);
    REQUIRE(counted);
    CHECK_FALSE(counted->shards.partial());
    CHECK(counted->result.count == reports.size());
    // Within the deadline: the silent unit costs one hedge (half of it).
    CHECK(timer.now() - started < 2 * kTimeoutMs * kj::MILLISECONDS);
  }
  // A device the silent unit owns is found on its other replica.
  std::string silentOwned;
  for (const auto& id : ids) {
    if (ownerOf(id, 3, 2) == 2) {
      silentOwned = id;
      break;
    }
  }
  REQUIRE(!silentOwned.empty());
  const auto found = cluster.get(silentOwned).wait(io.waitScope);
  REQUIRE(found);
  CHECK(found->result.hits.at(0).id == silentOwned);
  CHECK(cluster.readiness().detail["partitions"]["served"] == kDefaultPartitions);
}

TEST_CASE("ScatterGather asks another replica for a partition a unit does not serve yet",
          "[server][library]") {
  zmq::context_t context;
  // b restarted in a replicated cluster: it holds nothing and serves nothing
  // until it caught up, and says so in every answer.
  InprocUnit a(context, "sg-catch-0"), b(context, "sg-catch-1", "", /*replicas=*/2);
  const std::vector<std::string> endpoints{a.endpoint(), b.endpoint()};
  std::mt19937_64 rng(41);
  std::vector<std::string> ids;
  const auto reports = worldReports(rng, 2000, ids);
  BruteForce model;
  load(context, {a.endpoint()}, reports, model, 1);  // all of it on a
  auto io = kj::setupAsyncIo();
  ScatterGather cluster(context, io.unixEventPort, io.provider->getTimer(), endpoints, 1000,
                        Replication{.replicas = 2});
  for (int round = 0; round < 2; ++round) {
    const NearestQuery q{{-10, 40}, 30};
    const GatheredResult near = cluster.nearest(q).wait(io.waitScope);
    CHECK_FALSE(near.shards.partial());
    REQUIRE_SAME_ANSWER(near.result, model.nearest(q, kTsMs));
    const auto counted =
        cluster.within(AreaQuery{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true})
            .wait(io.waitScope);
    REQUIRE(counted);
    CHECK(counted->result.count == reports.size());
  }
  // Once the probes said so, b's partitions are routed to a at once.
  io.provider->getTimer().afterDelay(500 * kj::MILLISECONDS).wait(io.waitScope);
  const auto ready = cluster.readiness();
  CHECK(ready.ready);
  CHECK(ready.detail["routing"][1]["partitions_not_serving"] == kDefaultPartitions);
  for (const auto& id : {ids[0], ids[1], ids[2]}) {
    const auto found = cluster.get(id).wait(io.waitScope);
    REQUIRE(found);
    CHECK(found->result.hits.at(0).id == id);
  }
}

}  // namespace
}  // namespace locus::server
