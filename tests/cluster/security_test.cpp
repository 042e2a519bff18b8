// A cluster with its doors locked, as an operator sets it up with the CLI:
// `locus token keygen/issue` for devices, `locus apikey create` for
// clients, --auth-keys on the gateway and --api-keys on the server. Every
// unauthenticated or out-of-scope path is refused — each port, each
// method — authenticated clients still work, scoped reads are exact
// against brute force, and keys rotate on SIGHUP.
#include <signal.h>

#include <catch2/catch.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "locus/client/ingest_client.h"
#include "locus/client/query_client.h"
#include "locus/client/rpc_client.h"
#include "locus/common/auth.h"
#include "locus/common/report_json.h"
#include "locus/testkit/brute_force.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/command.h"
#include "locus/testkit/compare.h"
#include "locus/testkit/http.h"
#include "locus/testkit/line_client.h"
#include "locus/testkit/temp_dir.h"

namespace locus {
namespace {

using namespace testkit;
using json = nlohmann::json;

// `locus <args>`: its stdout as JSON, the command required to succeed.
json locusCli(const std::string& args) {
  const auto outcome = runCommand(binary("locus") + " " + args);
  INFO(outcome.err);
  REQUIRE(outcome.code == 0);
  return json::parse(outcome.out);
}

// A unit, a gateway that requires device tokens and a server that requires
// API keys, with the keys made by the CLI.
struct LockedCluster {
  LockedCluster() {
    tokenKeys = dir.path() + "/auth.keys";
    apiKeys = dir.path() + "/api.keys";
    CHECK(locusCli("token keygen --key-file " + tokenKeys)["key_id"] == "k1");
    readKey = locusCli("apikey create --key-file " + apiKeys)["api_key"];
    fleetKey =
        locusCli("apikey create --key-file " + apiKeys + " --scope read:fleet-7/")["api_key"];
    adminKey = locusCli("apikey create --key-file " + apiKeys + " --scope admin")["api_key"];
    fleetToken = token("fleet-7/");
    gateway = std::make_unique<RunningGateway>(
        std::vector<std::string>{unit.endpoint},
        std::vector<std::string>{"LOCUS_AUTH_KEYS=" + tokenKeys}, Http::kOn);
    server = std::make_unique<RunningServer>(std::vector<std::string>{unit.endpoint}, 1000,
                                             "127.0.0.1:0", Http::kOn,
                                             std::vector<std::string>{"--api-keys", apiKeys});
  }

  std::string token(const std::string& prefix, const std::string& ttl = "1h") {
    return locusCli("token issue --key-file " + tokenKeys + " --device-prefix '" + prefix +
                    "' --ttl " + ttl)["token"];
  }

  TempDir dir;
  std::string tokenKeys, apiKeys;
  std::string readKey, fleetKey, adminKey, fleetToken;
  RunningUnit unit;
  std::unique_ptr<RunningGateway> gateway;
  std::unique_ptr<RunningServer> server;
};

std::string reportLine(const std::string& id, double lat = 31.2, double lon = 121.4) {
  return reportToJsonLine(Report{.id = id, .lat = lat, .lon = lon, .tsMs = kTsMs});
}

// Sends `count` reports of ids "<prefix><i>" through a logged-in client;
// the outcome of each batch.
BatchOutcome sendAs(const std::string& gateway, const std::string& token,
                    const std::vector<std::string>& ids) {
  client::IngestClient ingest(gateway, client::IngestClient::Options{.token = token});
  BatchOutcome outcome;
  ingest.send(
      ids.size(),
      [&](size_t i, wire::Report::Builder out) {
        out.setId(ids[i]);
        out.setLat(31.2 + 0.001 * static_cast<double>(i));
        out.setLon(121.4);
        out.setTsMs(kTsMs);
      },
      [&](const BatchOutcome& o) { outcome = o; });
  ingest.flush();
  return outcome;
}

TEST_CASE("a gateway with --auth-keys takes only devices with a token, within its scope",
          "[cluster][auth]") {
  LockedCluster c;
  const std::string& gw = c.gateway->rpcAddress;

  SECTION("RPC: report without login, or login with a bad token: refused and closed") {
    client::RpcClient rpc(gw);
    auto ingest = rpc.getMain<wire::Ingest>();
    auto request = ingest.reportRequest();
    request.initBatch().initReports(1)[0].setId("fleet-7/a");
    try {
      request.send().wait(rpc.getWaitScope());
      FAIL("a report without login was answered");
    } catch (const kj::Exception& e) {
      CHECK(std::string(e.getDescription().cStr()).find("unauthenticated") != std::string::npos);
    }
    for (const std::string& bad :
         {std::string(""), std::string("garbage"), c.token("fleet-7/", "1ms"),
          c.fleetToken.substr(0, c.fleetToken.size() - 2) + "xx"}) {
      client::RpcClient fresh(gw);
      auto login = fresh.getMain<wire::Ingest>().loginRequest();
      login.setToken(bad);
      CHECK_THROWS_WITH(login.send().wait(fresh.getWaitScope()),
                        Catch::Contains("unauthenticated"));
    }
    // The client library gives up at once rather than resending.
    CHECK_THROWS_WITH(sendAs(gw, "garbage", {"fleet-7/a"}), Catch::Contains("not a JWT"));
  }

  SECTION("RPC: a token writes its ids, and each other id is refused with the reason") {
    const BatchOutcome outcome = sendAs(gw, c.fleetToken, {"fleet-7/a", "fleet-8/b", "fleet-7/c"});
    CHECK(outcome.accepted == 2);
    REQUIRE(outcome.rejected.size() == 1);
    CHECK(outcome.rejected[0].first == 1);
    CHECK(outcome.rejected[0].second.find("fleet-7/") != std::string::npos);
    Rpc server(c.server->address, c.readKey);
    CHECK(server.get("fleet-7/a").result.hits.size() == 1);
    CHECK(server.get("fleet-8/b").error->code == ErrorCode::kNotFound);
  }

  SECTION("NDJSON: the first line is the token, else the reason and a closed connection") {
    LineClient good(c.gateway->textAddress);
    const auto replies = good.exchange(
        {json{{"auth", c.fleetToken}}.dump(), reportLine("fleet-7/t1"), reportLine("other/t2")});
    CHECK(replies[0] == R"({"ok":true})");
    CHECK(replies[1] == R"({"ok":true})");
    CHECK(replies[2].find("outside this connection's token") != std::string::npos);

    LineClient none(c.gateway->textAddress);
    CHECK(none.send(reportLine("fleet-7/t3") + "\n"));
    const auto refused = none.readLines(1);
    REQUIRE(refused.size() == 1);
    CHECK(refused[0].find("log in first") != std::string::npos);
    CHECK(none.closedByPeer());

    LineClient forged(c.gateway->textAddress);
    CHECK(forged.send(json{{"auth", c.fleetToken + "x"}}.dump() + "\n" + reportLine("fleet-7/t4") +
                      "\n"));
    const auto forgedReply = forged.readLines(2);
    REQUIRE(forgedReply.size() == 1);
    CHECK(forgedReply[0].find("unauthenticated") != std::string::npos);
    CHECK(forged.closedByPeer());
  }

  SECTION("HTTP: POST /v1/reports needs a Bearer token; its scope holds per report") {
    const std::string body = reportLine("fleet-7/h1") + "\n" + reportLine("fleet-9/h2") + "\n";
    const auto none = httpPost(c.gateway->httpAddress, "/v1/reports", body);
    CHECK(none.status == 401);
    CHECK(json::parse(none.body)["error"].get<std::string>().find("token") != std::string::npos);
    CHECK(httpPost(c.gateway->httpAddress, "/v1/reports", body, "application/x-ndjson",
                   bearer("forged"))
              .status == 401);
    const auto ok = httpPost(c.gateway->httpAddress, "/v1/reports", body, "application/x-ndjson",
                             bearer(c.fleetToken));
    REQUIRE(ok.status == 200);
    CHECK(ok.body.find(R"({"ok":true})") == 0);
    CHECK(ok.body.find("outside this connection's token") != std::string::npos);
  }

  SECTION("keys rotate on SIGHUP: a retired key's tokens stop, a new key's start") {
    const std::string oldToken = c.fleetToken;
    CHECK(locusCli("token keygen --key-file " + c.tokenKeys + " --key-id k2")["key_id"] == "k2");
    const std::string newToken = c.token("fleet-7/");  // signed by the newest key, k2
    // Before the reload the gateway does not know k2.
    CHECK_THROWS(sendAs(gw, newToken, {"fleet-7/r0"}));
    // Retire k1: keep only k2's line.
    std::ifstream in(c.tokenKeys);
    std::string line, kept;
    while (std::getline(in, line))
      if (line.rfind("k2 ", 0) == 0) kept = line + "\n";
    std::ofstream(c.tokenKeys, std::ios::trunc) << kept;
    c.gateway->process.signal(SIGHUP);
    REQUIRE(c.gateway->process.waitForStderr(std::regex("SIGHUP: 1 device token key"),
                                             std::chrono::seconds(5)));
    CHECK(sendAs(gw, newToken, {"fleet-7/r1"}).accepted == 1);
    CHECK_THROWS_WITH(sendAs(gw, oldToken, {"fleet-7/r2"}), Catch::Contains("k1"));
    // A broken file keeps the keys in use, and says so.
    std::ofstream(c.tokenKeys, std::ios::trunc) << "not a key\n";
    c.gateway->process.signal(SIGHUP);
    REQUIRE(c.gateway->process.waitForStderr(std::regex("kept the 1 device token key"),
                                             std::chrono::seconds(5)));
    CHECK(sendAs(gw, newToken, {"fleet-7/r3"}).accepted == 1);
    const auto metrics = httpGet(c.gateway->httpAddress, "/metrics").body;
    CHECK(metricValue(metrics, R"(locus_gateway_key_reloads_total{outcome="ok"})") == 1);
    CHECK(metricValue(metrics, R"(locus_gateway_key_reloads_total{outcome="failed"})") == 1);
    CHECK(metricValue(metrics, R"(locus_gateway_logins_total{outcome="refused"})") >= 2);
  }
}

TEST_CASE("a server with --api-keys answers only keys, each within its scope", "[cluster][auth]") {
  LockedCluster c;
  // Two tenants, and devices of a third a "read:fleet-7/" key must not see.
  std::vector<std::string> ids;
  BruteForce everyone, fleet7;
  for (int i = 0; i < 600; ++i) {
    ids.push_back(fmt::format("fleet-{}/{}", 6 + i % 3, i));
  }
  {
    const std::string ops = c.token("");  // a token for every id
    client::IngestClient ingest(c.gateway->rpcAddress, client::IngestClient::Options{.token = ops});
    ingest.send(
        ids.size(),
        [&](size_t i, wire::Report::Builder out) {
          const Report r{.id = ids[i],
                         .lat = 31.0 + 0.0007 * static_cast<double>(i),
                         .lon = 121.2 + 0.0011 * static_cast<double>(i % 97),
                         .tsMs = kTsMs};
          writeReport(r, out);
          everyone.apply(r);
          if (ids[i].rfind("fleet-7/", 0) == 0) fleet7.apply(r);
        },
        [](const BatchOutcome& o) { REQUIRE(o.rejected.empty()); });
    ingest.flush();
  }
  const NearestQuery nearest{{31.2, 121.25}, 20};
  const AreaQuery box{.area = geo::Box{31.0, 121.2, 31.3, 121.35}};

  SECTION("RPC: without a key every method is unauthenticated; a bad key cannot log in") {
    Rpc open(c.server->address);
    CHECK(open.nearest(nearest).error->code == ErrorCode::kUnauthenticated);
    CHECK(open.within(box).error->code == ErrorCode::kUnauthenticated);
    CHECK(open.get(ids[0]).error->code == ErrorCode::kUnauthenticated);
    CHECK(open.stats().error().code == ErrorCode::kUnauthenticated);
    CHECK_THROWS_WITH(Rpc(c.server->address, "k1.wrong"), Catch::Contains("not valid"));
    CHECK_THROWS_WITH(Rpc(c.server->address, "garbage"), Catch::Contains("KEY_ID.SECRET"));
  }

  SECTION("RPC: read sees all, read:fleet-7/ only fleet-7 (exact), stats need admin") {
    Rpc all(c.server->address, c.readKey);
    REQUIRE_SAME_ANSWER(all.nearest(nearest).result, everyone.nearest(nearest, kTsMs));
    REQUIRE_SAME_ANSWER(all.within(box).result, everyone.within(box, kTsMs));
    CHECK(all.stats().error().code == ErrorCode::kForbidden);

    Rpc fleet(c.server->address, c.fleetKey);
    REQUIRE_SAME_ANSWER(fleet.nearest(nearest).result, fleet7.nearest(nearest, kTsMs));
    REQUIRE_SAME_ANSWER(fleet.within(box).result, fleet7.within(box, kTsMs));
    CHECK(fleet.get("fleet-7/1").result.hits.size() == 1);
    CHECK(fleet.get("fleet-6/0").error->code == ErrorCode::kForbidden);
    NearestQuery other = nearest;
    other.idPrefix = "fleet-8/";
    CHECK(fleet.nearest(other).error->code == ErrorCode::kForbidden);
    CHECK(fleet.stats().error().code == ErrorCode::kForbidden);

    Rpc admin(c.server->address, c.adminKey);
    auto stats = admin.stats();
    REQUIRE(stats);
    CHECK(stats->units.size() == 1);
  }

  SECTION("HTTP: 401 without a key on every /v1 route, scope as over RPC, health stays open") {
    const std::string& http = c.server->httpAddress;
    for (const std::string& path :
         {"/v1/nearest?lat=31.2&lon=121.25", "/v1/radius?lat=31.2&lon=121.25&radius_m=500",
          "/v1/box?south=31&west=121&north=32&east=122",
          "/v1/grid?bbox=121,31,122,32&columns=4&rows=4", "/v1/devices/fleet-7%2F1", "/v1/stats",
          "/v1/stream?bbox=121,31,122,32"}) {
      CAPTURE(path);
      const auto reply = httpGet(http, path);
      CHECK(reply.status == 401);
      CHECK(json::parse(reply.body)["error"].get<std::string>().find("API key") !=
            std::string::npos);
      CHECK(httpGet(http, path, bearer("k1.nope")).status == 401);
    }
    CHECK(httpPost(http, "/v1/polygon", R"({"type":"Polygon","coordinates":[]})").status == 401);
    CHECK(httpGet(http, "/healthz").status == 200);
    CHECK(httpGet(http, "/v1/openapi.json").status == 200);

    const auto scoped = httpGet(http, "/v1/nearest?lat=31.2&lon=121.25&k=20", bearer(c.fleetKey));
    REQUIRE(scoped.status == 200);
    const json j = json::parse(scoped.body);
    const auto want = fleet7.nearest(nearest, kTsMs);
    REQUIRE(j["results"].size() == want.hits.size());
    for (size_t i = 0; i < want.hits.size(); ++i) CHECK(j["results"][i]["id"] == want.hits[i].id);
    // access_token in the query, for EventSource.
    CHECK(httpGet(http, "/v1/devices/fleet-7%2F1?access_token=" + c.fleetKey).status == 200);
    CHECK(httpGet(http, "/v1/devices/fleet-6%2F0", bearer(c.fleetKey)).status == 403);
    CHECK(httpGet(http, "/v1/stats", bearer(c.readKey)).status == 403);
    CHECK(httpGet(http, "/v1/stats", bearer(c.adminKey)).status == 200);
  }

  SECTION("the CLI takes --api-key (or LOCUS_API_KEY)") {
    const auto without = runCommand(binary("locus") + " --server " + c.server->address +
                                    " nearest --lat 31.2 --lon 121.25");
    CHECK(without.code == 1);
    CHECK(without.err.find("unauthenticated") != std::string::npos);
    const json with = locusCli("--server " + c.server->address + " --api-key " + c.fleetKey +
                               " nearest --lat 31.2 --lon 121.25 -k 20");
    CHECK(with["count"] == fleet7.nearest(nearest, kTsMs).hits.size());
  }
}

TEST_CASE("units with CURVE admit only the client keys they list", "[cluster][auth][curve]") {
  TempDir dir;
  const auto keygen = [&](const std::string& name) {
    const std::string path = dir.path() + "/" + name + ".key";
    CHECK(locusCli("keygen --out " + path)["public_file"] == path + ".pub");
    return path;
  };
  const std::string unitKey = keygen("unit"), gatewayKey = keygen("gateway"),
                    serverKey = keygen("server"), strangerKey = keygen("stranger");
  const std::string unitPublic = unitKey + ".pub";
  const std::string clients = dir.path() + "/clients";
  runCommand("cat " + unitPublic + " " + gatewayKey + ".pub " + serverKey + ".pub > " + clients);

  // Two units with replicas: each starts serving nothing and copies its
  // partitions from the other (unit to unit, under the unit key).
  const std::vector<std::string> unitArgs{"--replicas",      "2",    "--curve-key", unitKey,
                                          "--curve-clients", clients};
  std::deque<RunningUnit> units;
  units.emplace_back(Http::kOn, unitArgs);
  units.emplace_back(Http::kOn, unitArgs);
  const std::vector<std::string> endpoints{units[0].endpoint, units[1].endpoint};
  RunningGateway gateway(endpoints, {"LOCUS_REPLICAS=2", "LOCUS_CURVE_KEY=" + gatewayKey,
                                     "LOCUS_UNIT_PUBLIC_KEY=" + unitPublic});
  RunningServer server(
      endpoints, 1000, "127.0.0.1:0", Http::kOff,
      {"--replicas", "2", "--curve-key", serverKey, "--unit-public-key", unitPublic});

  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back("curve-" + std::to_string(i));
  REQUIRE(sendAs(gateway.rpcAddress, "", ids).accepted == ids.size());
  Rpc rpc(server.address);
  Answer all;
  for (int attempt = 0; attempt < 100; ++attempt) {  // until both replicas serve
    all = rpc.within(AreaQuery{.area = geo::Box{-90, -180, 90, 180}, .countOnly = true});
    if (!all.error && !all.partial && all.result.count == ids.size()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_FALSE(all.error);
  CHECK_FALSE(all.partial);
  CHECK(all.result.count == ids.size());

  // Straight to a unit: plain, or CURVE with a key it does not list, gets
  // nothing at all; a listed key gets answers.
  const auto probe = [&](const std::string& keyFlags) {
    return runCommand(binary("locus-unit-probe") + " --unit " + units[0].endpoint +
                      " --timeout-ms 700 " + keyFlags + " get curve-1");
  };
  CHECK(probe("").err.find("no answer") != std::string::npos);
  CHECK(probe("--curve-key " + strangerKey + " --unit-public-key " + unitPublic)
            .err.find("no answer") != std::string::npos);
  CHECK(probe("--curve-key " + gatewayKey + " --unit-public-key " + unitPublic).code == 0);
  REQUIRE(units[0].process.waitForStderr(std::regex("refused a unit client .*not listed"),
                                         std::chrono::seconds(5)));
  const auto metrics = httpGet(units[0].httpAddress, "/metrics").body;
  CHECK(metrics.find("locus_unit_curve_refused_total") != std::string::npos);

  // A gateway without the keys cannot reach them: its reports are refused.
  RunningGateway plain(endpoints, {"LOCUS_REPLICAS=2"});
  CHECK(sendAs(plain.rpcAddress, "", {"curve-x"}).rejected.size() == 1);

  // SIGHUP re-reads the list: the stranger, added, gets in.
  runCommand("cat " + strangerKey + ".pub >> " + clients);
  units[0].process.signal(SIGHUP);
  REQUIRE(units[0].process.waitForStderr(std::regex("SIGHUP: 4 CURVE client key"),
                                         std::chrono::seconds(5)));
  CHECK(probe("--curve-key " + strangerKey + " --unit-public-key " + unitPublic).code == 0);
}

// A self-signed certificate for localhost and 127.0.0.1, made with the
// openssl command line as an operator would.
struct Certificate {
  explicit Certificate(const std::string& dir, const std::string& name = "tls") {
    cert = dir + "/" + name + ".crt";
    key = dir + "/" + name + ".key";
    const auto made = runCommand(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
        key + " -out " + cert + " && chmod 600 " + key);
    INFO(made.err);
    REQUIRE(made.code == 0);
  }
  std::string cert, key;
};

TEST_CASE("TLS on the external ports: RPC, NDJSON and HTTP; plain and untrusted are refused",
          "[cluster][auth][tls]") {
  TempDir dir;
  const Certificate tls(dir.path());
  const Certificate other(dir.path(), "other");  // a certificate the clients do not trust
  RunningUnit unit;
  RunningGateway gateway({unit.endpoint},
                         {"LOCUS_TLS_CERT=" + tls.cert, "LOCUS_TLS_KEY=" + tls.key}, Http::kOn);
  RunningServer server({unit.endpoint}, 1000, "127.0.0.1:0", Http::kOn,
                       {"--tls-cert", tls.cert, "--tls-key", tls.key});
  const transport::TlsClientOptions trusting{tls.cert, "localhost"};

  // RPC: devices over TLS are stored; a query over TLS finds them.
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.push_back("tls-" + std::to_string(i));
  {
    client::IngestClient ingest(gateway.rpcAddress, client::IngestClient::Options{.tls = trusting});
    BatchOutcome outcome;
    ingest.send(
        ids.size(),
        [&](size_t i, wire::Report::Builder out) {
          out.setId(ids[i]);
          out.setLat(31.2);
          out.setLon(121.4 + 0.001 * static_cast<double>(i));
          out.setTsMs(kTsMs);
        },
        [&](const BatchOutcome& o) { outcome = o; });
    ingest.flush();
    CHECK(outcome.accepted == ids.size());
  }
  client::QueryClient query(server.address, 5 * kj::SECONDS, "", trusting);
  auto near = query.nearest(NearestQuery{{31.2, 121.4}, 10});
  REQUIRE(near);
  CHECK(near->result.hits.size() == 10);
  CHECK(near->result.hits[0].id == "tls-0");

  // Plain TCP to a TLS port, or TLS with a certificate not trusted, or the
  // wrong name: no answer, and the handshake failures are counted.
  CHECK_THROWS(sendAs(gateway.rpcAddress, "", {"tls-plain"}));
  CHECK_THROWS(client::QueryClient(server.address, 2 * kj::SECONDS).nearest({{31.2, 121.4}, 1}));
  CHECK_THROWS(client::QueryClient(server.address, 2 * kj::SECONDS, "",
                                   transport::TlsClientOptions{other.cert, "localhost"})
                   .nearest({{31.2, 121.4}, 1}));
  CHECK_THROWS(client::QueryClient(server.address, 2 * kj::SECONDS, "",
                                   transport::TlsClientOptions{tls.cert, "elsewhere.example"})
                   .nearest({{31.2, 121.4}, 1}));

  // NDJSON over TLS, as `openssl s_client` speaks it.
  const std::string lineFile = dir.path() + "/line.ndjson";
  std::ofstream(lineFile) << reportLine("tls-text") << "\n";
  const auto line = runCommand(
      "sh -c '(cat " + lineFile + "; sleep 1) | timeout 5 openssl s_client -quiet -CAfile " +
      tls.cert + " -verify_return_error -connect " + gateway.textAddress + " 2>/dev/null'");
  CHECK(line.out.find(R"({"ok":true})") != std::string::npos);

  // HTTPS: the server's API and health; plain HTTP gets nothing.
  const auto port = [](const std::string& address) {
    return address.substr(address.rfind(':') + 1);
  };
  httplib::Client https("https://localhost:" + port(server.httpAddress));
  https.set_ca_cert_path(tls.cert.c_str());
  https.enable_server_certificate_verification(true);
  const auto answer = https.Get("/v1/devices/tls-text");
  REQUIRE(answer);
  CHECK(answer->status == 200);
  CHECK(httpGet(server.httpAddress, "/healthz").status == 0);
  const auto health = runCommand(binary("locus") + " --tls-ca " + tls.cert +
                                 " health localhost:" + port(gateway.httpAddress));
  CHECK(health.code == 0);
  CHECK(locusCli("--tls-ca " + tls.cert + " --tls-server-name localhost --server " +
                 server.address + " get tls-text")["count"] == 1);

  // The plain clients failed the server's handshakes; an untrusting client
  // completes one and then hangs up (its own check fails), as OpenSSL does.
  const std::string metrics = https.Get("/metrics")->body;
  CHECK(metricValue(metrics, R"(locus_listener_tls_handshake_failures_total{listener="rpc"})")
            .value_or(0) >= 1);
  CHECK(metricValue(metrics, R"(locus_listener_tls_handshake_failures_total{listener="http"})")
            .value_or(0) >= 1);
}

}  // namespace
}  // namespace locus