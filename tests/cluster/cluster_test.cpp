// The whole cluster started as a user would: four `locus-unit` processes, a
// `locus-gateway` and a `locus-server` on loopback. Positions go in through
// both ingest protocols; every query kind comes back equal to a brute-force
// scan; stale reports change nothing; the server restarts mid-stream without
// the units; a unit killed with SIGKILL makes answers partial, in time; and
// every role's /healthz, /readyz and /metrics tell an operator so.
#include "locus/testkit/cluster.h"

#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <deque>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "locus/client/ingest_client.h"
#include "locus/common/placement.h"
#include "locus/common/report_json.h"
#include "locus/testkit/brute_force.h"
#include "locus/testkit/compare.h"
#include "locus/testkit/http.h"
#include "locus/testkit/line_client.h"
#include "locus/testkit/placement.h"
#include "locus/transport/unit_client.h"

namespace locus {
namespace {

using namespace testkit;

constexpr uint32_t kUnits = 4;

// The whole cluster, as a user starts it.
struct FullCluster : SpawnedCluster {
  explicit FullCluster(Http http = Http::kOff) : SpawnedCluster(kUnits, http) {}
};

// Sends every report over the Cap'n Proto ingest path, pipelined; returns
// how many the gateway accepted.
uint64_t sendOverRpc(const std::string& gateway, const std::vector<Report>& reports) {
  client::IngestClient ingest(gateway);
  uint64_t accepted = 0;
  for (size_t first = 0; first < reports.size(); first += client::kBatchReports) {
    const size_t n = std::min(client::kBatchReports, reports.size() - first);
    ingest.send(
        n, [&](size_t i, wire::Report::Builder out) { writeReport(reports[first + i], out); },
        [&accepted](const BatchOutcome& outcome) { accepted += outcome.accepted; });
  }
  ingest.flush();
  return accepted;
}

// Sends even-numbered reports as NDJSON lines and odd ones over RPC.
void ingestBothWays(FullCluster& cluster, const std::vector<Report>& reports) {
  std::vector<std::string> lines;
  std::vector<Report> rpc;
  for (size_t i = 0; i < reports.size(); ++i) {
    if (i % 2 == 0) {
      lines.push_back(reportToJsonLine(reports[i]));
    } else {
      rpc.push_back(reports[i]);
    }
  }
  LineClient text(cluster.gateway->textAddress);
  for (size_t first = 0; first < lines.size(); first += 2000) {
    const std::vector<std::string> chunk(
        lines.begin() + static_cast<long>(first),
        lines.begin() + static_cast<long>(std::min(lines.size(), first + 2000)));
    for (const auto& reply : text.exchange(chunk)) REQUIRE(reply == R"({"ok":true})");
  }
  REQUIRE(sendOverRpc(cluster.gateway->rpcAddress, rpc) == rpc.size());
}

// Waits (bounded) until the cluster's answer to `probe` equals the model's:
// acknowledged reports become visible within moments.
void awaitVisible(Rpc& rpc, const BruteForce& model) {
  const AreaQuery everything{geo::Box{-90, -180, 90, 180}, 0, /*countOnly=*/false};
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  std::string why;
  while (std::chrono::steady_clock::now() < deadline) {
    const Answer a = rpc.within(everything);
    if (!a.error && testkit::sameAnswer(a.result, model.within(everything, 0), &why)) return;
    usleep(50'000);
  }
  FAIL("the cluster never showed what was acknowledged: " << why);
}

// Ingests `n` worldwide reports through both protocols and waits until the
// server shows them all; returns the model of what was sent.
BruteForce loadWorld(FullCluster& cluster, uint64_t seed, size_t n, std::vector<std::string>& ids) {
  std::mt19937_64 rng(seed);
  const std::vector<Report> reports = worldReports(rng, n, ids);
  ingestBothWays(cluster, reports);
  BruteForce model;
  for (const auto& r : reports) model.apply(r);
  Rpc rpc(cluster.server->address);
  awaitVisible(rpc, model);
  return model;
}

// Sends `line` until the gateway acknowledges it (bounded): with a unit
// just lost, a report sent to it before that was seen gets a retryable
// error, never an ok.
std::string sendUntilOk(LineClient& text, const std::string& line) {
  const auto giveUp = std::chrono::steady_clock::now() + kWait;
  std::string reply;
  do {
    reply = text.exchange({line}).at(0);
  } while (reply != R"({"ok":true})" && std::chrono::steady_clock::now() < giveUp);
  return reply;
}

void checkEveryQueryKind(Rpc& rpc, const BruteForce& model, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0, 1);
  const std::vector<geo::LatLon> centers = {{31.23, 121.47}, {90, 0},        {89.5, -120},
                                            {0, 180},        {-10, -179.99}, {-45, 60}};
  for (int i = 0; i < 60; ++i) {
    const geo::LatLon c = i < 6 ? centers[i] : geo::LatLon{-90 + 180 * u(rng), -180 + 360 * u(rng)};
    for (uint32_t k : {1u, 10u, 100u}) {
      const NearestQuery q{c, k};
      INFO("nearest " << c.lat << "," << c.lon << " k=" << k);
      const Answer a = rpc.nearest(q);
      REQUIRE_FALSE(a.error);
      REQUIRE_SAME_ANSWER(a.result, model.nearest(q, 0));
    }
    for (double r : {500.0, 50'000.0, 2'000'000.0}) {
      const AreaQuery q{Circle{c, r}, 50};
      INFO("radius " << c.lat << "," << c.lon << " r=" << r);
      REQUIRE_SAME_ANSWER(rpc.within(q).result, model.within(q, 0));
      const AreaQuery count{Circle{c, r}, 0, /*countOnly=*/true};
      REQUIRE_SAME_ANSWER(rpc.within(count).result, model.within(count, 0));
    }
  }
  const std::vector<geo::Box> boxes = {{31.1, 121.3, 31.2, 121.4},
                                       {-30, 175, 30, -175},  // crosses the antimeridian
                                       {80, -180, 90, 180},
                                       {-90, -180, 90, 180},
                                       {10, 179, 20, 180}};
  for (const auto& b : boxes) {
    for (uint32_t limit : {0u, 7u}) {
      const AreaQuery q{b, limit};
      INFO("box " << b.south << "," << b.west << "," << b.north << "," << b.east);
      REQUIRE_SAME_ANSWER(rpc.within(q).result, model.within(q, 0));
    }
  }
  const AreaQuery withHole{
      geo::Polygon({{{31.1, 121.3}, {31.1, 121.6}, {31.4, 121.6}, {31.4, 121.3}, {31.1, 121.3}},
                    {{31.2, 121.4}, {31.2, 121.5}, {31.3, 121.5}, {31.3, 121.4}, {31.2, 121.4}}}),
      100};
  REQUIRE_SAME_ANSWER(rpc.within(withHole).result, model.within(withHole, 0));
  for (int i = 0; i < 50; ++i) {
    const Hit& h = model.devices()[rng() % model.size()];
    const Answer a = rpc.get(h.id);
    REQUIRE_FALSE(a.error);
    REQUIRE(a.result.hits.size() == 1);
    CHECK(a.result.hits[0].lat == h.lat);
    CHECK(a.result.hits[0].lon == h.lon);
    CHECK(a.result.hits[0].tsMs == h.tsMs);
  }
}

TEST_CASE("the cluster answers like brute force after ingest through both protocols",
          "[cluster][e2e]") {
  FullCluster cluster;
  std::mt19937_64 rng(2026);
  std::vector<std::string> ids;
  const std::vector<Report> reports = worldReports(rng, 20'000, ids);
  BruteForce model;
  ingestBothWays(cluster, reports);
  for (const auto& r : reports) model.apply(r);

  // Stale reports (older ts, elsewhere) through both protocols change nothing.
  std::vector<Report> stale;
  for (size_t i = 0; i < 2000; ++i) {
    Report r = reports[rng() % reports.size()];
    r.lat = -r.lat;
    r.tsMs -= 1;
    stale.push_back(r);
  }
  ingestBothWays(cluster, stale);
  for (const auto& r : stale) model.apply(r);

  Rpc rpc(cluster.server->address);
  awaitVisible(rpc, model);
  checkEveryQueryKind(rpc, model, rng);
}

TEST_CASE("the server restarts mid-stream and answers without restarting the units",
          "[cluster][e2e]") {
  FullCluster cluster;
  std::mt19937_64 rng(7);
  std::vector<std::string> ids;
  std::vector<Report> reports = worldReports(rng, 10'000, ids);
  BruteForce model;
  ingestBothWays(cluster, reports);
  for (const auto& r : reports) model.apply(r);

  const std::string address = cluster.server->address;
  cluster.server->process.signal(SIGTERM);
  REQUIRE(cluster.server->process.waitExit(kWait));
  // Reports keep flowing while the server is away ...
  for (auto& r : reports) r.lat = std::clamp(r.lat + 0.001, -90.0, 90.0), r.tsMs += 1000;
  ingestBothWays(cluster, reports);
  for (const auto& r : reports) model.apply(r);
  // ... and a new server on the same address sees all of it.
  cluster.server = std::make_unique<RunningServer>(cluster.endpoints, 250, address);
  Rpc rpc(cluster.server->address);
  awaitVisible(rpc, model);
  checkEveryQueryKind(rpc, model, rng);
}

TEST_CASE("a unit killed with SIGKILL costs nothing with two replicas", "[cluster][e2e]") {
  FullCluster cluster;  // the default: every partition on two units
  std::vector<std::string> ids;
  const BruteForce all = loadWorld(cluster, 11, 8'000, ids);
  Rpc rpc(cluster.server->address);

  cluster.units[2].process.signal(SIGKILL);
  REQUIRE(cluster.units[2].process.waitExit(kWait));
  // Complete and exact: the dead unit's partitions are answered by their
  // other replicas; how long it takes is measured by benchmarks.
  for (const auto& q : {NearestQuery{{31.23, 121.47}, 10}, NearestQuery{{0, 179.9}, 50}}) {
    const Answer a = rpc.nearest(q);
    REQUIRE_FALSE(a.error);
    CHECK_FALSE(a.partial);
    CHECK(a.answered == kUnits - 1);
    REQUIRE_SAME_ANSWER(a.result, all.nearest(q, 0));
  }
  const Answer counted =
      rpc.within(AreaQuery{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true});
  CHECK_FALSE(counted.partial);
  CHECK(counted.result.count == all.size());
  // The gateway still acknowledges every device's reports: the dead unit
  // is skipped once its probes go unanswered (a report sent to it before
  // that gets a retryable error, never an ok).
  LineClient text(cluster.gateway->textAddress);
  for (int i = 0; i < 20; ++i) {
    const std::string line = fmt::format(R"({{"id":"late-{}","lat":1,"lon":1}})", i);
    CHECK(sendUntilOk(text, line) == R"({"ok":true})");
  }
}

TEST_CASE("a replica that missed writes while stopped never answers for them stale",
          "[cluster][e2e][replicas]") {
  FullCluster cluster;  // two replicas
  std::vector<std::string> ids;
  BruteForce model = loadWorld(cluster, 31, 2'000, ids);
  Rpc rpc(cluster.server->address);

  // While unit 0 sleeps, new devices are acknowledged by their other
  // replicas alone (each line resent until it gets its ok).
  cluster.units[0].process.signal(SIGSTOP);
  LineClient text(cluster.gateway->textAddress);
  std::vector<std::string> fresh;
  for (int i = 0; i < 100; ++i) {
    fresh.push_back("fresh-" + std::to_string(i));
    const Report r{.id = fresh.back(), .lat = 31.2, .lon = 121.4 + i * 1e-4, .tsMs = kTsMs + i};
    REQUIRE(sendUntilOk(text, reportToJsonLine(r)) == R"({"ok":true})");
    model.apply(r);
  }
  // From the moment it runs again, no answer may lack them: it serves its
  // partitions again only once it copied what it missed.
  cluster.units[0].process.signal(SIGCONT);
  const AreaQuery everything{geo::Box{-90, -180, 90, 180}, 0, /*countOnly=*/true};
  const auto until = std::chrono::steady_clock::now() + 3s;
  int rounds = 0;
  while (std::chrono::steady_clock::now() < until) {
    const Answer counted = rpc.within(everything);
    REQUIRE_FALSE(counted.error);
    if (!counted.partial) REQUIRE(counted.result.count == model.size());
    const std::string& id = fresh[static_cast<size_t>(rounds) % fresh.size()];
    const Answer found = rpc.get(id);
    INFO(id << ": " << (found.error ? found.error->message : "found"));
    REQUIRE_FALSE(found.error);
    ++rounds;
  }
  CHECK(rounds > 10);
  // And once caught up, unit 0 holds them itself.
  zmq::context_t context;
  transport::UnitClient unit0(context, cluster.endpoints[0], kWait);
  const auto giveUp = std::chrono::steady_clock::now() + 10s;
  size_t held = 0;
  while (std::chrono::steady_clock::now() < giveUp) {
    auto stats = unit0.stats();
    if (stats && stats->notServing.empty()) break;
    std::this_thread::sleep_for(50ms);
  }
  for (const auto& id : fresh) {
    if (ownerOf(id, kUnits) != 0 && unitsHolding(id, kUnits)[1] != 0) continue;
    auto hit = unit0.get(id);
    held += hit ? 1 : 0;
    CHECK(hit);
  }
  CHECK(held > 0);
}

TEST_CASE("every role serves health, readiness and metrics that follow the cluster",
          "[cluster][e2e][http]") {
  FullCluster cluster(Http::kOn);
  std::vector<std::string> roles{cluster.gateway->httpAddress, cluster.server->httpAddress};
  for (const auto& u : cluster.units) roles.push_back(u.httpAddress);
  for (const auto& address : roles) {
    INFO("role on " << address);
    CHECK(httpGet(address, "/healthz").status == 200);
    // The gateway and the server are ready once their first probes are answered.
    CHECK(awaitHttpStatus(address, "/readyz", 200, kWait).status == 200);
  }

  std::mt19937_64 rng(5);
  std::vector<std::string> ids;
  const std::vector<Report> reports = worldReports(rng, 4'000, ids);
  ingestBothWays(cluster, reports);
  LineClient text(cluster.gateway->textAddress);
  for (const auto& reply : text.exchange({"not json", R"({"id":"x","lat":91,"lon":0})", ""})) {
    CHECK(reply.find(R"("ok":false)") != std::string::npos);
  }
  BruteForce model;
  for (const auto& r : reports) model.apply(r);
  Rpc rpc(cluster.server->address);
  awaitVisible(rpc, model);
  const NearestQuery q{{31.23, 121.47}, 10};
  for (int i = 0; i < 5; ++i) REQUIRE_FALSE(rpc.nearest(q).error);
  CHECK(rpc.get("no-such-device").error);

  const std::string gateway = httpGet(cluster.gateway->httpAddress, "/metrics").body;
  INFO("gateway metrics:\n" << gateway);
  CHECK(metricSum(gateway, "locus_gateway_reports_total", R"(outcome="accepted")") == 4'000);
  CHECK(metricValue(gateway,
                    R"(locus_gateway_reports_total{protocol="text",outcome="rejected"})") == 3.0);
  CHECK(metricValue(gateway, R"(locus_gateway_connections{protocol="text"})") == 1.0);
  CHECK(metricValue(gateway, "locus_gateway_reports_lost_total") == 0.0);

  double applied = 0, devices = 0;
  for (const auto& u : cluster.units) {
    const std::string unit = httpGet(u.httpAddress, "/metrics").body;
    applied += metricSum(unit, "locus_unit_reports_total", R"(outcome="applied")");
    devices += metricSum(unit, "locus_unit_devices");
  }
  CHECK(applied == 2 * 4'000);  // each report on the two replicas of its partition
  for (const auto& u : cluster.units) {
    // All caught up (a catch-up ordered meanwhile would show for a moment).
    const auto giveUp = std::chrono::steady_clock::now() + kWait;
    std::string unit;
    do {
      unit = httpGet(u.httpAddress, "/metrics").body;
    } while (metricSum(unit, "locus_unit_partitions_not_serving") != 0 &&
             std::chrono::steady_clock::now() < giveUp);
    INFO("unit log:\n" << u.process.stderrText());
    CHECK(metricSum(unit, "locus_unit_partitions_not_serving") == 0);
    CHECK(metricSum(unit, "locus_unit_catch_up_seconds") == 0);
  }
  CHECK(devices == 2 * 4'000);

  const std::string server = httpGet(cluster.server->httpAddress, "/metrics").body;
  INFO("server metrics:\n" << server);
  CHECK(metricValue(server, R"(locus_server_queries_total{kind="nearest"})") == 5.0);
  CHECK(metricValue(server, "locus_server_partitions_served") == kDefaultPartitions);
  CHECK(metricValue(server, R"(locus_server_query_duration_seconds_count{kind="nearest"})") == 5.0);
  CHECK(metricValue(server, R"(locus_server_query_errors_total{kind="get"})") == 1.0);
  CHECK(metricValue(server, R"(locus_server_partial_answers_total{kind="nearest"})") == 0.0);

  // A unit goes down: the server and the gateway say which, and stay ready
  // while every partition has another replica up; answers stay complete.
  cluster.units[1].process.signal(SIGKILL);
  REQUIRE(cluster.units[1].process.waitExit(kWait));
  for (const auto& address : {cluster.server->httpAddress, cluster.gateway->httpAddress}) {
    const auto giveUp = std::chrono::steady_clock::now() + kWait;
    nlohmann::json body;
    HttpReply r;
    do {
      r = httpGet(address, "/readyz");
      body = nlohmann::json::parse(r.body);
    } while (body["units"][1]["up"] != false && std::chrono::steady_clock::now() < giveUp);
    INFO(address << " /readyz: " << r.body);
    CHECK(r.status == 200);
    CHECK(body["units"][1]["up"] == false);
    CHECK(body["units"][0]["up"] == true);
    CHECK(body["units"][0]["storage"] == "memory-only");  // where its positions live
    CHECK(body["partitions"]["total"] == kDefaultPartitions);
  }
  CHECK_FALSE(rpc.nearest(q).partial);
  const std::string after = httpGet(cluster.server->httpAddress, "/metrics").body;
  CHECK(metricValue(after, R"(locus_server_partial_answers_total{kind="nearest"})") == 0.0);
  CHECK(metricValue(after,
                    "locus_unit_up{shard=\"1\",endpoint=\"" + cluster.endpoints[1] + "\"}") == 0.0);
  CHECK(metricValue(after, "locus_unit_durable{shard=\"0\",endpoint=\"" + cluster.endpoints[0] +
                               "\"}") == 0.0);
}

}  // namespace
}  // namespace locus
