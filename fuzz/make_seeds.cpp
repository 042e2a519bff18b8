// Writes valid inputs of each kind into the corpus of the fuzz target that
// takes them, so that the fuzzers start from real Cap'n Proto structure
// and real requests rather than having to discover segment tables, method
// selectors and credentials: every frame a unit takes (UnitRequest) and
// sends (UnitReply), every LocationService and Ingest call, and HTTP
// requests for every route with the fixture's credentials
// (credentials.h). scripts/fuzz.sh runs it first.
//
//   fuzz-make-seeds [CORPUS_ROOT]   (default fuzz/corpus)
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "credentials.h"
#include "locus/common/auth.h"
#include "locus/common/wire.h"

namespace {

// Writes seed `name` of `dir`: `prefix` (a target's selector bytes), then
// the message `build` makes, if any.
void write(const std::string& dir, const std::string& name,
           const std::function<void(capnp::MessageBuilder&)>& build,
           const std::string& prefix = "") {
  std::filesystem::create_directories(dir);
  std::ofstream out(dir + "/seed-" + name, std::ios::binary);
  out << prefix;
  if (!build) return;
  capnp::MallocMessageBuilder message;
  build(message);
  const auto words = capnp::messageToFlatArray(message);
  out.write(reinterpret_cast<const char*>(words.asBytes().begin()),
            static_cast<std::streamsize>(words.asBytes().size()));
}

// An HTTP/1.1 request with `headers` (each ending in CRLF) and `body`.
std::string http(const std::string& method, const std::string& target, const std::string& headers,
                 const std::string& body = "") {
  std::string request = method + " " + target + " HTTP/1.1\r\nHost: locus\r\n" + headers;
  if (!body.empty() || method == "POST") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return request + "\r\n" + body;
}

void only(locus::wire::PartitionSet::Builder set) {
  set.setPartitions(8);
  auto serve = set.initServe(3);
  serve.set(0, 1), serve.set(1, 2), serve.set(2, 7);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace locus;
  const std::string root = argc > 1 ? argv[1] : "fuzz/corpus";
  const std::string requests = root + "/unit_request";
  const std::string replies = root + "/unit_reply";
  const Report reports[] = {
      {"truck-7", 31.2, 121.5, 1'763'000'000'000}, {"phone-x", -33.9, 151.2, 0}, {"bad", 91, 0, 5}};
  write(requests, "apply", [&](capnp::MessageBuilder& m) {
    auto list = m.initRoot<wire::UnitRequest>().initApply().initReports(3);
    for (unsigned i = 0; i < 3; ++i) writeReport(reports[i], list[i]);
  });
  write(requests, "queries", [&](capnp::MessageBuilder& m) {
    auto request = m.initRoot<wire::UnitRequest>();
    auto q = request.initQueries(5);
    writeNearestQuery(NearestQuery{{31.2, 121.5}, 10}, q[0].initNearest());
    writeAreaQuery(AreaQuery{.area = geo::Box{31, 121, 32, 122}, .limit = 5}, q[1].initWithin());
    writeAreaQuery(
        AreaQuery{.area = geo::Polygon({{{0, 0}, {0, 1}, {1, 1}, {0, 0}}}), .countOnly = true},
        q[2].initWithin());
    q[3].setGet("truck-7");
    q[4].setStats();
    only(request.initOnly());
  });
  write(requests, "dump", [&](capnp::MessageBuilder& m) {
    auto dump = m.initRoot<wire::UnitRequest>().initDump();
    dump.setCursor(2);
    dump.setLimit(100);
    only(dump.initOnly());
  });
  write(requests, "catch-up", [&](capnp::MessageBuilder& m) {
    auto order = m.initRoot<wire::UnitRequest>().initCatchUp();
    order.setPartitions(8);
    auto copy = order.initCopies(1)[0];
    copy.setSource("inproc://nowhere");
    copy.initServe(2).set(1, 3);
    order.initWait(1).set(0, 4);
    order.initHolds(2).set(1, 4);
  });
  write(replies, "applied", [&](capnp::MessageBuilder& m) {
    auto r = m.initRoot<wire::UnitReply>().initApplied();
    r.setAccepted(2);
    auto rejected = r.initRejected(1);
    rejected[0].setIndex(2);
    rejected[0].setReason("lat out of range");
  });
  write(replies, "answers", [&](capnp::MessageBuilder& m) {
    auto reply = m.initRoot<wire::UnitReply>();
    auto answers = reply.initAnswers(3);
    QueryResult result;
    result.hits.push_back(Hit{.id = "truck-7", .lat = 31.2, .lon = 121.5, .tsMs = 1});
    result.count = 1;
    writeQueryResult(result, answers[0].initResult());
    UnitStats stats;
    stats.name = "unit-0";
    stats.notServing = {1, 2};
    writeUnitStats(stats, answers[1].initStats());
    writeError(Error{ErrorCode::kNotFound, "no device"}, answers[2].initError());
    reply.initNotServing(1).set(0, 5);
  });
  write(replies, "page", [&](capnp::MessageBuilder& m) {
    auto page = m.initRoot<wire::UnitReply>().initPage();
    auto list = page.initReports(2);
    for (unsigned i = 0; i < 2; ++i) writeReport(reports[i], list[i]);
    page.setCursor(3);
    page.setEpoch(9);
  });

  // location_service: a selector byte (method + 7 * caller: no key, admin,
  // read:fleet/), then the method's parameters.
  const std::string service = root + "/location_service";
  using Service = wire::LocationService;
  const std::string callers[] = {"none", "admin", "fleet"};
  for (char caller = 0; caller < 3; ++caller) {
    const std::string who = callers[static_cast<int>(caller)];
    const auto selector = [caller](char method) { return std::string(1, method + 7 * caller); };
    write(
        service, "nearest-" + who,
        [](capnp::MessageBuilder& m) {
          writeNearestQuery(NearestQuery{{31.2, 121.5}, 10},
                            m.initRoot<Service::NearestParams>().initQuery());
        },
        selector(0));
    write(
        service, "nearest-pole-" + who,
        [](capnp::MessageBuilder& m) {
          writeNearestQuery(NearestQuery{{89.9, 179.9}, 25, 2'000'000, 0, "fleet/"},
                            m.initRoot<Service::NearestParams>().initQuery());
        },
        selector(0));
    write(
        service, "radius-" + who,
        [](capnp::MessageBuilder& m) {
          writeAreaQuery(AreaQuery{.area = Circle{{0, 180}, 3'000'000}, .limit = 50},
                         m.initRoot<Service::WithinParams>().initQuery());
        },
        selector(1));
    write(
        service, "box-" + who,
        [](capnp::MessageBuilder& m) {
          writeAreaQuery(AreaQuery{.area = geo::Box{-10, 170, 10, -170}, .countOnly = true},
                         m.initRoot<Service::WithinParams>().initQuery());
        },
        selector(1));
    write(
        service, "grid-" + who,
        [](capnp::MessageBuilder& m) {
          writeAreaQuery(
              AreaQuery{
                  .area = geo::Box{-90, -180, 90, 180}, .countOnly = true, .grid = Grid{8, 4}},
              m.initRoot<Service::WithinParams>().initQuery());
        },
        selector(1));
    write(
        service, "polygon-" + who,
        [](capnp::MessageBuilder& m) {
          writeAreaQuery(AreaQuery{.area = geo::Polygon(
                                       {{{-60, -60}, {-60, 60}, {60, 60}, {60, -60}, {-60, -60}}}),
                                   .limit = 100},
                         m.initRoot<Service::WithinParams>().initQuery());
        },
        selector(1));
    write(
        service, "get-" + who,
        [](capnp::MessageBuilder& m) { m.initRoot<Service::GetParams>().setId("fleet/0"); },
        selector(2));
    write(
        service, "get-other-" + who,
        [](capnp::MessageBuilder& m) { m.initRoot<Service::GetParams>().setId("other/1"); },
        selector(2));
    write(
        service, "stats-" + who,
        [](capnp::MessageBuilder& m) { m.initRoot<Service::StatsParams>(); }, selector(3));
    write(
        service, "nearest-many-" + who,
        [](capnp::MessageBuilder& m) {
          NearestMany many{.points = {{31.2, 121.5}, {0, 180}, {-90, 0}}};
          many.each.k = 5;
          writeNearestMany(many, m.initRoot<Service::NearestManyParams>().initQuery());
        },
        selector(5));
    write(
        service, "within-many-" + who,
        [](capnp::MessageBuilder& m) {
          WithinMany many{.points = {{31.2, 121.5}, {0, -180}}, .radiusM = 1'000'000};
          many.each.limit = 20;
          many.each.idPrefix = "fleet/";
          writeWithinMany(many, m.initRoot<Service::WithinManyParams>().initQuery());
        },
        selector(6));
  }
  write(
      service, "login-admin",
      [](capnp::MessageBuilder& m) {
        m.initRoot<Service::LoginParams>().setApiKey(fuzz::kAdminKey);
      },
      std::string(1, 4));
  write(
      service, "login-bad",
      [](capnp::MessageBuilder& m) {
        m.initRoot<Service::LoginParams>().setApiKey("admin.not-the-secret");
      },
      std::string(1, 4));

  // ingest: a selector byte (0 logged in for fleet/, 1 not logged in, 2
  // logging in with the input's token), then the call's parameters.
  const std::string ingest = root + "/ingest";
  const Report batch[] = {{"fleet/7", 31.2, 121.5, 0},
                          {"fleet/8", -89.99, 179.99, 1'763'000'000'000},
                          {"other/9", 1, 2, 0},
                          {"fleet/bad", 91, 0, 5}};
  for (char mode = 0; mode < 2; ++mode) {
    write(
        ingest, "report-" + std::to_string(mode),
        [&](capnp::MessageBuilder& m) {
          auto list = m.initRoot<wire::Ingest::ReportParams>().initBatch().initReports(4);
          for (unsigned i = 0; i < 4; ++i) writeReport(batch[i], list[i]);
        },
        std::string(1, mode));
  }
  write(
      ingest, "login-forged",
      [](capnp::MessageBuilder& m) {
        m.initRoot<wire::Ingest::LoginParams>().setToken(
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.e30.AAAA");
      },
      std::string(1, 2));

  // http_request: requests for every route, with and without credentials.
  const std::string web = root + "/http_request";
  const auto bearer = [](const std::string& credential) {
    return "Authorization: Bearer " + credential + "\r\n";
  };
  const std::string admin = bearer(fuzz::kAdminKey), fleet = bearer(fuzz::kFleetKey);
  const auto keys = *auth::TokenKeys::parse(fuzz::kTokenKeyLine, "credentials.h");
  const std::string device = bearer(*auth::issueToken(
      keys.newest(),
      auth::DeviceScope{"fuzz", fuzz::kTokenPrefix, fuzz::kTokenExpiresMs, keys.newest().id},
      fuzz::kTokenIssuedMs));
  const std::pair<const char*, std::string> pages[] = {
      {"healthz", http("GET", "/healthz", "")},
      {"readyz", http("GET", "/readyz", "")},
      {"metrics", http("GET", "/metrics", "")},
      {"nearest", http("GET", "/v1/nearest?lat=31.2&lon=121.5&k=5&max_distance_m=5000000", admin)},
      {"nearest-open", http("GET", "/v1/nearest?lat=0&lon=0", "")},
      {"nearest-token", http("GET",
                             "/v1/nearest?lat=0&lon=179.9&access_token=" +
                                 std::string(fuzz::kFleetKey) + "&format=geojson",
                             "")},
      {"radius", http("GET", "/v1/radius?lat=0&lon=180&radius_m=2000000&limit=20", fleet)},
      {"box", http("GET", "/v1/box?south=-10&west=170&north=10&east=-170&count=true", admin)},
      {"grid", http("GET", "/v1/grid?bbox=-180,-90,180,90&columns=8&rows=4", admin)},
      {"device", http("GET", "/v1/devices/fleet%2F0", fleet)},
      {"device-other", http("GET", "/v1/devices/other%2F1", fleet)},
      {"stats", http("GET", "/v1/stats", admin)},
      {"stats-fleet", http("GET", "/v1/stats", fleet)},
      {"openapi", http("GET", "/v1/openapi.json", "")},
      {"polygon",
       http(
           "POST", "/v1/polygon?limit=10", admin,
           R"({"type":"Polygon","coordinates":[[[-60,-60],[60,-60],[60,60],[-60,60],[-60,-60]]]})")},
      {"polygon-feature",
       http(
           "POST", "/v1/polygon?count=true&format=geojson", fleet,
           R"({"type":"Feature","properties":{},"geometry":{"type":"MultiPolygon","coordinates":[[[[170,-5],[-170,-5],[-170,5],[170,5],[170,-5]]]]}})")},
      {"reports-ndjson", http("POST", "/v1/reports", device,
                              "{\"id\":\"fleet/1\",\"lat\":1.5,\"lon\":2.5}\n"
                              "{\"id\":\"other/2\",\"lat\":1,\"lon\":2}\n")},
      {"reports-array",
       http(
           "POST", "/v1/reports", device + "Content-Type: application/json\r\n",
           R"([{"id":"fleet/3","lat":-89.9,"lon":-179.9,"ts":0},{"id":"fleet/4","lat":100,"lon":0}])")},
      {"reports-open",
       http("POST", "/v1/reports", "", "{\"id\":\"fleet/1\",\"lat\":1,\"lon\":2}\n")},
      {"keep-alive", http("GET", "/healthz", "") + http("GET", "/v1/devices/fleet%2F2", admin) +
                         http("DELETE", "/v1/stats", admin)},
      {"chunked", "POST /v1/polygon HTTP/1.1\r\nHost: locus\r\n" + admin +
                      "Transfer-Encoding: chunked\r\n\r\n"
                      "a\r\n{\"type\":\"Po\r\n0\r\n\r\n"},
  };
  for (const auto& [name, request] : pages) write(web, name, nullptr, request);
  return 0;
}
