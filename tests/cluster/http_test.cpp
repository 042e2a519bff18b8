// The HTTP/JSON API as a user reaches it with curl: reports POSTed to the
// gateway's /v1/reports, every query kind from the server's /v1/ held
// against brute force (antimeridian, poles, polygons and multipolygons
// as GeoJSON), GeoJSON answers, clear 4xx errors that change nothing,
// and the OpenAPI document checked against what the server answers.
#include "locus/testkit/http.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "locus/common/report_json.h"
#include "locus/testkit/brute_force.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/command.h"
#include "locus/testkit/compare.h"
#include "locus/testkit/line_client.h"

namespace locus {
namespace {

using namespace testkit;
using json = nlohmann::json;

// An answer of the HTTP API as the QueryResult it stands for; its
// `partial` and coverage checked on the way.
QueryResult resultOf(const HttpReply& reply) {
  INFO(reply.body);
  REQUIRE(reply.status == 200);
  REQUIRE(reply.contentType == "application/json");
  const json j = json::parse(reply.body);
  REQUIRE(j["partial"] == false);
  QueryResult out;
  out.count = j["count"].get<uint64_t>();
  for (const auto& r : j["results"]) {
    Hit h{.id = r["id"], .lat = r["lat"], .lon = r["lon"], .tsMs = r["ts"]};
    if (r.contains("distance_m")) h.distanceM = r["distance_m"];
    out.hits.push_back(std::move(h));
  }
  return out;
}

std::string errorOf(const HttpReply& reply, int status) {
  INFO(reply.body);
  REQUIRE(reply.status == status);
  const json j = json::parse(reply.body);
  REQUIRE(j.contains("error"));
  return j["error"];
}

std::string ringJson(const std::vector<geo::LatLon>& ring) {
  json positions = json::array();
  for (const auto& p : ring) positions.push_back({p.lon, p.lat});
  return positions.dump();
}

// Posts half the reports as NDJSON and half as a JSON array; every one
// must be acknowledged.
void postReports(const std::string& gateway, const std::vector<Report>& reports) {
  for (size_t first = 0; first < reports.size(); first += 1000) {
    const size_t end = std::min(reports.size(), first + 1000);
    const bool ndjson = (first / 1000) % 2 == 0;
    std::string body = ndjson ? "" : "[";
    for (size_t i = first; i < end; ++i) {
      if (ndjson) {
        body += reportToJsonLine(reports[i]) + "\n";
      } else {
        body += (i == first ? "" : ",") + reportToJsonLine(reports[i]);
      }
    }
    if (!ndjson) body += "]";
    const HttpReply reply = httpPost(gateway, "/v1/reports", body,
                                     ndjson ? "application/x-ndjson" : "application/json");
    INFO(reply.body.substr(0, 300));
    REQUIRE(reply.status == 200);
    size_t results = 0;
    if (ndjson) {
      REQUIRE(reply.contentType == "application/x-ndjson");
      for (size_t at = 0; at < reply.body.size(); at = reply.body.find('\n', at) + 1) {
        REQUIRE(reply.body.compare(at, 12, "{\"ok\":true}\n") == 0);
        ++results;
      }
    } else {
      for (const auto& r : json::parse(reply.body)) {
        REQUIRE(r == json{{"ok", true}});
        ++results;
      }
    }
    REQUIRE(results == end - first);
  }
}

struct HttpCluster {
  SpawnedCluster cluster{3, Http::kOn};
  BruteForce model;
  std::vector<std::string> ids;
  std::string api() const { return cluster.server->httpAddress; }

  explicit HttpCluster(size_t devices) {
    std::mt19937_64 rng(14);
    const std::vector<Report> reports = worldReports(rng, devices, ids);
    postReports(cluster.gateway->httpAddress, reports);
    for (const auto& r : reports) model.apply(r);
    // Acknowledged is visible within moments.
    const AreaQuery everything{geo::Box{-90, -180, 90, 180}, 0, /*countOnly=*/true};
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline) {
      const auto r = httpGet(api(), "/v1/box?south=-90&west=-180&north=90&east=180&count");
      if (r.status == 200 && json::parse(r.body)["count"] == model.size()) return;
      usleep(50'000);
    }
    FAIL("the cluster never showed every acknowledged report");
  }
};

TEST_CASE("HTTP queries answer like brute force, everywhere on Earth", "[cluster][http]") {
  HttpCluster c(8'000);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  const std::vector<geo::LatLon> centers = {{31.23, 121.47}, {90, 0},        {89.5, -120},
                                            {0, 180},        {-10, -179.99}, {-45, 60}};
  for (int i = 0; i < 20; ++i) {
    const geo::LatLon p = i < 6 ? centers[i] : geo::LatLon{-90 + 180 * u(rng), -180 + 360 * u(rng)};
    for (uint32_t k : {1u, 10u, 100u}) {
      INFO("nearest " << p.lat << "," << p.lon << " k=" << k);
      const auto path = fmt::format("/v1/nearest?lat={}&lon={}&k={}", p.lat, p.lon, k);
      REQUIRE_SAME_ANSWER(resultOf(httpGet(c.api(), path)), c.model.nearest({p, k}, 0));
    }
    for (double r : {50'000.0, 2'000'000.0}) {
      INFO("radius " << p.lat << "," << p.lon << " r=" << r);
      const auto path = fmt::format("/v1/radius?lat={}&lon={}&radius_m={}", p.lat, p.lon, r);
      REQUIRE_SAME_ANSWER(resultOf(httpGet(c.api(), path + "&limit=50")),
                          c.model.within({Circle{p, r}, 50}, 0));
      REQUIRE_SAME_ANSWER(resultOf(httpGet(c.api(), path + "&count=true")),
                          c.model.within({Circle{p, r}, 0, true}, 0));
    }
  }
  for (const geo::Box& b : std::vector<geo::Box>{
           {31.1, 121.3, 31.2, 121.4}, {-30, 175, 30, -175}, {80, -180, 90, 180}}) {
    INFO("box " << b.south << "," << b.west << "," << b.north << "," << b.east);
    const auto path = fmt::format("/v1/box?south={}&west={}&north={}&east={}&limit=20", b.south,
                                  b.west, b.north, b.east);
    REQUIRE_SAME_ANSWER(resultOf(httpGet(c.api(), path)), c.model.within({b, 20}, 0));
  }

  // A Polygon with a hole, a MultiPolygon across the antimeridian (as RFC
  // 7946 splits it) and a FeatureCollection: the union of their polygons.
  const std::vector<geo::LatLon> outer{
      {31.1, 121.3}, {31.1, 121.6}, {31.4, 121.6}, {31.4, 121.3}, {31.1, 121.3}};
  const std::vector<geo::LatLon> hole{
      {31.2, 121.4}, {31.2, 121.5}, {31.3, 121.5}, {31.3, 121.4}, {31.2, 121.4}};
  const std::vector<geo::LatLon> east{{-30, 170}, {-30, 180}, {30, 180}, {30, 170}, {-30, 170}};
  const std::vector<geo::LatLon> west{
      {-30, -180}, {-30, -170}, {30, -170}, {30, -180}, {-30, -180}};
  const std::vector<geo::LatLon> polar{{80, -180}, {80, 180}, {90, 180}, {90, -180}, {80, -180}};
  const geo::Polygon withHole({outer, hole});
  const geo::MultiPolygon acrossAntimeridian({geo::Polygon({east}), geo::Polygon({west})});
  const geo::MultiPolygon all({withHole, geo::Polygon({east}), geo::Polygon({polar})});
  const std::string polygon =
      R"({"type":"Polygon","coordinates":[)" + ringJson(outer) + "," + ringJson(hole) + "]}";
  const std::string multi = R"({"type":"MultiPolygon","coordinates":[[)" + ringJson(east) + "],[" +
                            ringJson(west) + "]]}";
  const std::string collection =
      R"({"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":)" +
      polygon + R"(},{"type":"Feature","properties":{},"geometry":{"type":"MultiPolygon",)" +
      R"("coordinates":[[)" + ringJson(east) + "],[" + ringJson(polar) + "]]}}]}";
  REQUIRE_SAME_ANSWER(resultOf(httpPost(c.api(), "/v1/polygon?limit=100", polygon)),
                      c.model.within({withHole, 100}, 0));
  const auto acrossAnswer = resultOf(httpPost(c.api(), "/v1/polygon", multi));
  REQUIRE(acrossAnswer.count > 0);
  REQUIRE_SAME_ANSWER(acrossAnswer, c.model.within({acrossAntimeridian, 0}, 0));
  REQUIRE_SAME_ANSWER(resultOf(httpPost(c.api(), "/v1/polygon?limit=500", collection)),
                      c.model.within({all, 500}, 0));
  REQUIRE_SAME_ANSWER(resultOf(httpPost(c.api(), "/v1/polygon?count", collection)),
                      c.model.within({all, 0, true}, 0));

  // Counts per grid cell (the map's heat map), summed over the units.
  for (const geo::Box& b : std::vector<geo::Box>{
           {-90, -180, 90, 180}, {-30, 175, 30, -175}, {31.0, 121.2, 31.5, 121.8}}) {
    AreaQuery q{b, 0, true};
    q.grid = Grid{16, 8};
    const auto reply = httpGet(c.api(), fmt::format("/v1/grid?bbox={},{},{},{}&columns=16&rows=8",
                                                    b.west, b.south, b.east, b.north));
    INFO(reply.body.substr(0, 300));
    REQUIRE(reply.status == 200);
    const json j = json::parse(reply.body);
    QueryResult got;
    got.count = j["count"];
    got.cells = j["cells"].get<std::vector<uint64_t>>();
    REQUIRE(got.count > 0);
    REQUIRE_SAME_ANSWER(got, c.model.within(q, 0));
  }

  for (int i = 0; i < 20; ++i) {
    const Hit& h = c.model.devices()[rng() % c.model.size()];
    const auto got = resultOf(httpGet(c.api(), "/v1/devices/" + h.id));
    REQUIRE(got.hits.size() == 1);
    CHECK(got.hits[0].lat == h.lat);
    CHECK(got.hits[0].lon == h.lon);
    CHECK(got.hits[0].tsMs == h.tsMs);
  }
}

TEST_CASE("format=geojson answers a FeatureCollection of the same devices", "[cluster][http]") {
  HttpCluster c(2'000);
  const auto plain = json::parse(httpGet(c.api(), "/v1/nearest?lat=31.23&lon=121.47&k=5").body);
  const auto reply = httpGet(c.api(), "/v1/nearest?lat=31.23&lon=121.47&k=5&format=geojson");
  REQUIRE(reply.status == 200);
  const auto geo = json::parse(reply.body);
  REQUIRE(geo["type"] == "FeatureCollection");
  REQUIRE(geo["features"].size() == plain["results"].size());
  for (size_t i = 0; i < plain["results"].size(); ++i) {
    const auto& hit = plain["results"][i];
    const auto& f = geo["features"][i];
    CHECK(f["geometry"]["coordinates"] == json::array({hit["lon"], hit["lat"]}));
    CHECK(f["properties"]["id"] == hit["id"]);
    CHECK(f["properties"]["distance_m"] == hit["distance_m"]);
  }
  CHECK(geo["count"] == plain["count"]);
}

TEST_CASE("bad HTTP requests get a 4xx with a reason and change nothing", "[cluster][http]") {
  HttpCluster c(500);
  const std::string api = c.api();
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lat=95&lon=0"), 400), Catch::Contains("lat"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lat=abc&lon=0"), 400),
             Catch::Contains("must be a number"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lon=0"), 400), Catch::Contains("lat is required"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lat=0&lon=0&k=0"), 400), Catch::Contains("k"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lat=0&lon=0&k=-1"), 400),
             Catch::Contains("whole number"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/radius?lat=0&lon=0&radius=5"), 400),
             Catch::Contains("unknown query parameter"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/radius?lat=0&lon=0&radius_m=-5"), 400),
             Catch::Contains("radius"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/box?south=10&west=0&north=0&east=1"), 400),
             Catch::Contains("south"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/box?south=0&west=0&north=1&east=1&count=maybe"), 400),
             Catch::Contains("true or false"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nearest?lat=0&lon=0&format=xml"), 400),
             Catch::Contains("geojson"));
  CHECK_THAT(errorOf(httpPost(api, "/v1/polygon", "{not json"), 400),
             Catch::Contains("not valid JSON"));
  CHECK_THAT(errorOf(httpPost(api, "/v1/polygon", R"({"type":"Point","coordinates":[0,0]})"), 400),
             Catch::Contains("a Point"));
  CHECK_THAT(errorOf(httpPost(api, "/v1/polygon", std::string(9 << 20, ' ')), 413),
             Catch::Contains("over"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/devices/no-such-device"), 404),
             Catch::Contains("no-such-device"));
  CHECK_THAT(errorOf(httpGet(api, "/v1/nowhere"), 404), Catch::Contains("/v1/nearest"));
  // A path that is not UTF-8 is named in the error all the same (with
  // U+FFFD), not a 500 (fuzz/http_request found it).
  CHECK_THAT(errorOf(httpGet(api, "/v1/op%A5napi.json"), 404), Catch::Contains("/v1/op"));
  CHECK_THAT(errorOf(httpPost(api, "/v1/nearest", ""), 405), Catch::Contains("GET"));
  CHECK_THAT(errorOf(httpGet(c.cluster.gateway->httpAddress, "/v1/reports"), 405),
             Catch::Contains("POST"));

  // Garbage bytes instead of HTTP: an error status, and the port keeps serving.
  LineClient raw(api);
  REQUIRE(raw.send("\x01\x02 garbage \xff\r\n\r\n"));
  const auto replies = raw.readLines(1);
  REQUIRE_FALSE(replies.empty());
  // kj-http names an unknown method 501; either way an error, not a crash.
  CHECK_THAT(replies.front(), Catch::StartsWith("HTTP/1.1 400 Bad Request") ||
                                  Catch::StartsWith("HTTP/1.1 501 Not Implemented"));
  // A chunked body with a malformed chunk is the client's fault, not a 500
  // (fuzz/http_request found it).
  LineClient chunked(api);
  REQUIRE(
      chunked.send("POST /v1/polygon HTTP/1.1\r\nHost: locus\r\n"
                   "Transfer-Encoding: chunked\r\n\r\na\r\n{\"type\":\"Po\r\n0\r\n\r\n"));
  const auto malformed = chunked.readLines(1);
  REQUIRE_FALSE(malformed.empty());
  CHECK_THAT(malformed.front(), Catch::StartsWith("HTTP/1.1 400 Bad Request"));
  LineClient badLength(c.cluster.gateway->httpAddress);
  REQUIRE(
      badLength.send("POST /v1/reports HTTP/1.1\r\nHost: locus\r\nContent-Length: 8x\r\n\r\n[]"));
  const auto lengthReply = badLength.readLines(1);
  REQUIRE_FALSE(lengthReply.empty());
  CHECK_THAT(lengthReply.front(), Catch::StartsWith("HTTP/1.1 400 Bad Request"));

  // Reports the gateway refuses, one result each, in order; nothing stored.
  const auto reply = httpPost(c.cluster.gateway->httpAddress, "/v1/reports",
                              "{\"id\":\"x\",\"lat\":95,\"lon\":0}\nnot json\n\n"
                              "{\"id\":\"y\",\"lat\":1,\"lon\":1,\"ts\":99999999999999}\n",
                              "application/x-ndjson");
  REQUIRE(reply.status == 200);
  std::vector<json> results;
  for (size_t at = 0; at < reply.body.size(); at = reply.body.find('\n', at) + 1) {
    results.push_back(json::parse(reply.body.substr(at, reply.body.find('\n', at) - at)));
  }
  REQUIRE(results.size() == 3);  // the blank line is no report
  for (const auto& r : results) CHECK(r["ok"] == false);
  CHECK_THAT(results[0]["error"].get<std::string>(), Catch::Contains("lat"));
  CHECK_THAT(results[1]["error"].get<std::string>(), Catch::Contains("invalid JSON"));
  CHECK_THAT(results[2]["error"].get<std::string>(), Catch::Contains("future"));
  CHECK(httpGet(api, "/v1/devices/x").status == 404);
  CHECK(httpGet(api, "/v1/devices/y").status == 404);
  CHECK(errorOf(httpPost(c.cluster.gateway->httpAddress, "/v1/reports", "[1,"), 400) != "");
  CHECK(errorOf(httpPost(c.cluster.gateway->httpAddress, "/v1/reports", " \n"), 400) != "");
  std::string tooMany;
  for (int i = 0; i < 10'001; ++i) tooMany += "{\"id\":\"m\",\"lat\":1,\"lon\":1}\n";
  CHECK_THAT(errorOf(httpPost(c.cluster.gateway->httpAddress, "/v1/reports", tooMany), 413),
             Catch::Contains("10000"));

  // Still serving, with what it held before.
  REQUIRE(resultOf(httpGet(api, "/v1/box?south=-90&west=-180&north=90&east=180&count")).count ==
          c.model.size());
}

// The next `data:` event of an SSE stream read off a raw socket (chunked
// encoding's size lines are skipped with everything else not `data:`).
json nextEvent(LineClient& stream) {
  for (int i = 0; i < 200; ++i) {
    const auto lines = stream.readLines(1);
    if (lines.empty()) break;
    if (lines[0].rfind("data: ", 0) == 0) return json::parse(lines[0].substr(6));
  }
  FAIL("no event on the stream");
  return {};
}

TEST_CASE("/v1/stream sends the devices in a viewport and then what changed", "[cluster][http]") {
  SpawnedCluster cluster(2, Http::kOn);
  const std::string gateway = cluster.gateway->httpAddress;
  const auto post = [&](const std::string& lines) {
    const auto r = httpPost(gateway, "/v1/reports", lines, "application/x-ndjson");
    REQUIRE(r.status == 200);
    REQUIRE(r.body.find("false") == std::string::npos);
  };
  post(
      "{\"id\":\"in-1\",\"lat\":31.2,\"lon\":121.4,\"ts\":1000}\n"
      "{\"id\":\"in-2\",\"lat\":31.3,\"lon\":121.5,\"ts\":1000}\n"
      "{\"id\":\"out\",\"lat\":10,\"lon\":10,\"ts\":1000}\n");
  usleep(200'000);

  LineClient stream(cluster.server->httpAddress);
  REQUIRE(
      stream.send("GET /v1/stream?bbox=121,31,122,32&interval_ms=250&limit=10 HTTP/1.1\r\n"
                  "Host: test\r\n\r\n"));
  const auto head = stream.readLines(1);
  REQUIRE_FALSE(head.empty());
  CHECK_THAT(head[0], Catch::StartsWith("HTTP/1.1 200"));

  // First: everything in the box.
  json e = nextEvent(stream);
  CHECK(e["type"] == "positions");
  CHECK(e["seq"] == 1);
  CHECK(e["count"] == 2);
  REQUIRE(e["changed"].size() == 2);
  CHECK(e["changed"][0]["id"] == "in-1");
  CHECK(e["changed"][1]["id"] == "in-2");
  CHECK(e["left"].empty());

  // A move inside, a device leaving the box and one arriving: only those.
  post(
      "{\"id\":\"in-1\",\"lat\":31.25,\"lon\":121.4,\"ts\":2000}\n"
      "{\"id\":\"in-2\",\"lat\":40,\"lon\":121.5,\"ts\":2000}\n"
      "{\"id\":\"out\",\"lat\":31.4,\"lon\":121.6,\"ts\":2000}\n");
  json changed = json::array(), left = json::array();
  for (int i = 0; i < 10 && (changed.size() < 2 || left.empty()); ++i) {
    e = nextEvent(stream);
    for (const auto& h : e["changed"]) changed.push_back(h);
    for (const auto& id : e["left"]) left.push_back(id);
  }
  REQUIRE(changed.size() == 2);
  CHECK(changed[0]["id"] == "in-1");
  CHECK(changed[0]["lat"] == 31.25);
  CHECK(changed[1]["id"] == "out");
  CHECK(left == json::array({"in-2"}));
  CHECK(e["count"] == 2);
  CHECK(e["shown"] == 2);
  CHECK(e["partial"] == false);

  const auto metrics = httpGet(cluster.server->httpAddress, "/metrics").body;
  CHECK(metricValue(metrics, "locus_server_streams_open") == 1);
  // A bad stream request is an ordinary 400.
  CHECK_THAT(errorOf(httpGet(cluster.server->httpAddress, "/v1/stream?bbox=1,2,3"), 400),
             Catch::Contains("WEST,SOUTH,EAST,NORTH"));
  CHECK_THAT(
      errorOf(httpGet(cluster.server->httpAddress, "/v1/stream?bbox=121,31,122,32&interval_ms=10"),
              400),
      Catch::Contains("interval_ms"));
}

TEST_CASE("/v1/openapi.json describes what the server answers", "[cluster][http]") {
  HttpCluster c(1'000);
  const auto check =
      runCommand(fmt::format("python3 {}/tests/cluster/openapi_check.py http://{} {}",
                             LOCUS_SOURCE_DIR, c.api(), c.ids.front()));
  INFO(check.out << check.err);
  REQUIRE(check.code == 0);
  CHECK_THAT(check.out, Catch::Contains("operations checked"));
}

}  // namespace
}  // namespace locus
