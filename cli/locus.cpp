// locus: the command-line client of a Locus cluster. Asks the server's
// LocationService over Cap'n Proto RPC and prints exactly one JSON object on
// stdout; on failure {"error":"..."} on stderr and a non-zero exit.
#include <fmt/format.h>
#include <httplib.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "keys.h"
#include "local.h"
#include "locus/client/ingest_client.h"
#include "locus/client/query_client.h"
#include "locus/common/flags.h"
#include "locus/common/geojson.h"
#include "locus/common/json.h"
#include "locus/common/log.h"
#include "locus/common/wire.h"
#include "locus/transport/net.h"
#include "points.h"
#include "query_flags.h"
#include "send.h"

namespace {

using namespace locus;
using json = nlohmann::ordered_json;

constexpr auto kCallTimeout = 30 * kj::SECONDS;
// The exit status of a partial answer under --require-complete (errors: 1).
constexpr int kPartialExit = 2;

int fail(const std::string& message) {
  std::cerr << errorJson(message).dump() << "\n";
  return 1;
}

// A partial answer is printed as it is, and said on stderr: some units did
// not answer in time, so devices may be missing. Its exit status.
int partialAnswer(uint32_t answered, uint32_t total, bool requireComplete) {
  std::cerr << json{{"warning", fmt::format("partial answer: {} of {} units answered in time; "
                                            "devices they hold are missing",
                                            answered, total)}}
                   .dump()
            << "\n";
  return requireComplete ? kPartialExit : 0;
}

// GETs `path` from a daemon's HTTP endpoint: prints the body, and succeeds
// only on 200 (a container health check needs nothing else in the image).
int checkHealth(const std::string& address, const std::string& path, const std::string& tlsCa) {
  httplib::Client client((tlsCa.empty() ? "http://" : "https://") + address);
  if (!tlsCa.empty()) {
    client.set_ca_cert_path(tlsCa.c_str());
    client.enable_server_certificate_verification(true);
  }
  client.set_connection_timeout(2);
  client.set_read_timeout(2);
  const auto res = client.Get(path.c_str());
  if (!res) {
    return fail("cannot reach " + address + path + ": " + httplib::to_string(res.error()));
  }
  std::cout << res->body;
  if (res->body.empty() || res->body.back() != '\n') std::cout << "\n";
  return res->status == 200 ? 0 : 1;
}

// Prints an answer as the SPEC shows it, or the error the server returned
// instead; returns the exit status.
int printAnswer(const Result<client::Answer>& answer, bool requireComplete) {
  if (!answer) return fail(answer.error().message);
  std::cout << toJson(answer->result, answer->shards, answer->tookUs).dump() << "\n";
  if (answer->partial)
    return partialAnswer(answer->shards.answered, answer->shards.total, requireComplete);
  return 0;
}

int printStats(const Result<ClusterStats>& stats, bool requireComplete) {
  if (!stats) return fail(stats.error().message);
  const Coverage& shards = stats->shards;
  std::cout << toJson(*stats).dump() << "\n";
  if (stats->partial()) return partialAnswer(shards.answered, shards.total, requireComplete);
  return 0;
}

Result<std::string> readAll(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), {});
  }
  std::ifstream in(path);
  if (!in) return badRequest("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every command and flag of `locus`, bound to one set of variables.
struct Commands {
  std::string server = "127.0.0.1:7800";
  std::string gateway = "127.0.0.1:7700";
  bool requireComplete = false;
  cli::QueryCommands q;
  std::string pointsPath;  // nearest / radius --points FILE
  AreaQuery polygonQuery;
  std::string geojsonPath;
  CLI::App* polygonCmd = nullptr;
  cli::LocalOptions local;
  CLI::App* localCmd = nullptr;
  std::string healthAddress;
  bool live = false;
  CLI::App* healthCmd = nullptr;
  std::string sendPath = "-";
  CLI::App* sendCmd = nullptr;
  cli::KeyCommands keys;
  std::string token;   // a device token for send (locus token issue)
  std::string apiKey;  // a client key for queries (locus apikey create)
  transport::TlsClientOptions tls;

  void addTo(CLI::App& app);
  void addLocal(CLI::App& app);
  void addPoints(CLI::App* cmd);
};

// `--points FILE` instead of --lat/--lon: the query at every point of a file.
void Commands::addPoints(CLI::App* cmd) {
  auto* points = cmd->add_option(
      "--points", pointsPath,
      "instead of --lat/--lon: an NDJSON FILE (- for stdin) of {\"lat\":..,\"lon\":..} lines; "
      "prints one answer line per point, in order (asked as nearestMany/withinMany, many "
      "points a call)");
  for (const char* name : {"--lat", "--lon"}) {
    CLI::Option* o = cmd->get_option(name);
    o->required(false);
    o->excludes(points);
  }
}

void Commands::addTo(CLI::App& app) {
  addFlag(app, "--server", server, "the location server, HOST:PORT");
  addFlag(app, "--gateway", gateway, "the gateway's Cap'n Proto port, HOST:PORT (for send)");
  app.add_flag("--require-complete", requireComplete,
               "exit 2 when an answer is partial (some unit did not answer in time)")
      ->envname(envNameForFlag("--require-complete"));
  app.require_subcommand(1);
  app.fallthrough();  // --server / --gateway may follow the command too

  cli::addQueryCommands(app, q, "per unit: name, devices, reports, queries");
  addPoints(q.nearestCmd);
  addPoints(q.radiusCmd);
  polygonCmd = app.add_subcommand(
      "polygon", "devices inside a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection");
  polygonCmd->add_option("--geojson", geojsonPath, "FILE, or - for stdin")->required();
  cli::addAreaFlags(polygonCmd, polygonQuery);
  addLocal(app);
  healthCmd =
      app.add_subcommand("health", "a daemon's /readyz (exit 0 when ready), for health checks");
  healthCmd->add_option("address", healthAddress, "HOST:PORT of its --http-listen")->required();
  healthCmd->add_flag("--live", live, "ask /healthz (alive) instead of /readyz (ready)");
  sendCmd = app.add_subcommand("send", "stream NDJSON reports to the gateway");
  sendCmd->add_option("file", sendPath, "NDJSON file, or - for stdin")->capture_default_str();
  addFlag(app, "--token", token, "device token for send, when the gateway has --auth-keys");
  addFlag(app, "--api-key", apiKey, "API key for queries, when the server has --api-keys");
  addFlag(app, "--tls-ca", tls.caFile,
          "PEM certificate(s) to trust: TLS to the server, the gateway and health (empty = plain)");
  addFlag(app, "--tls-server-name", tls.serverName,
          "the name the server's certificate must carry (default: the address's host)");
  cli::addKeyCommands(app, keys);
}

void Commands::addLocal(CLI::App& app) {
  localCmd = app.add_subcommand("local", "run a whole cluster in this process");
  localCmd->add_option("--units", local.units, "location units")->capture_default_str();
  localCmd
      ->add_option("--simulate", local.simulate, "simulated devices moving in the city (0 = none)")
      ->capture_default_str();
  localCmd->add_option("--rate", local.ratePerS, "simulated reports per second")
      ->capture_default_str();
  localCmd->add_option("--gateway-listen", local.gatewayListen, "Cap'n Proto ingest HOST:PORT")
      ->capture_default_str();
  localCmd->add_option("--text-listen", local.textListen, "NDJSON ingest HOST:PORT")
      ->capture_default_str();
  localCmd->add_option("--server-listen", local.serverListen, "query HOST:PORT")
      ->capture_default_str();
  localCmd
      ->add_option("--http-listen", local.httpListen,
                   "the server's HTTP API HOST:PORT (empty: off)")
      ->capture_default_str();
  localCmd
      ->add_option("--gateway-http-listen", local.gatewayHttpListen,
                   "the gateway's HTTP ingest HOST:PORT (empty: off)")
      ->capture_default_str();
  localCmd->add_option("--timeout-ms", local.timeoutMs, "per-query deadline for the units")
      ->capture_default_str();
  localCmd->add_option("--data-dir", local.dataDir,
                       "keep each unit's log and snapshots in DIR/unit-<i> and recover them at "
                       "start (default: memory-only)");
  localCmd
      ->add_option("--replicas", local.replicas,
                   "units each partition lives on (answers stay complete while a unit is down)")
      ->capture_default_str();
}

// The query the command line asks, checked before anything touches the
// network: nothing when the command is not a query, else the area query
// (radius, box, polygon) or null for nearest/get/stats.
Result<AreaQuery*> checkQuery(Commands& c) {
  for (CLI::App* cmd : {c.q.nearestCmd, c.q.radiusCmd}) {
    if (*cmd && c.pointsPath.empty() && (cmd->count("--lat") == 0 || cmd->count("--lon") == 0))
      return badRequest(cmd->get_name() + " needs --lat and --lon, or --points FILE");
  }
  if (!c.pointsPath.empty()) {
    // Checked at a valid point: what remains is the query's own bounds.
    const auto e =
        *c.q.nearestCmd
            ? validate(NearestMany{.points = {{0, 0}}, .each = c.q.nearest})
            : validate(WithinMany{
                  .points = {{0, 0}}, .radiusM = c.q.circle.radiusM, .each = c.q.radius});
    if (e) return badRequest(e->starts_with("point 0: ") ? e->substr(9) : *e);
    return nullptr;
  }
  if (*c.q.nearestCmd) {
    if (auto e = validate(c.q.nearest)) return badRequest(*e);
  }
  AreaQuery* area = c.q.area();
  if (*c.polygonCmd) {
    auto text = readAll(c.geojsonPath);
    if (!text) return text.error();
    auto polygon = geojson::readArea(*text);
    if (!polygon) return polygon.error();
    (area = &c.polygonQuery)->area = std::move(*polygon);
  }
  if (area) {
    if (auto e = validate(*area)) return badRequest(*e);
  }
  if (*c.q.getCmd) {
    if (auto e = validateId(c.q.id)) return badRequest(*e);
  }
  return area;
}

int runSend(const Commands& c) {
  std::ifstream file;
  if (c.sendPath != "-") {
    file.open(c.sendPath);
    if (!file) return fail("cannot read " + c.sendPath);
  }
  try {
    const auto summary =
        cli::sendReports(c.sendPath == "-" ? std::cin : file, c.gateway,
                         client::IngestClient::Options{.token = c.token, .tls = c.tls}, std::cerr);
    std::cout << summary.dump() << "\n";
    return summary["rejected"].get<uint64_t>() == 0 ? 0 : 1;
  } catch (const kj::Exception& e) {
    return fail("cannot send to the gateway at " + c.gateway + ": " + e.getDescription().cStr());
  }
}

int runPoints(const Commands& c, client::QueryClient& server) {
  std::ifstream file;
  if (c.pointsPath != "-") {
    file.open(c.pointsPath);
    if (!file) return fail("cannot read " + c.pointsPath);
  }
  const cli::PointsQuery query{.nearest = static_cast<bool>(*c.q.nearestCmd),
                               .each = c.q.nearest,
                               .eachArea = c.q.radius,
                               .radiusM = c.q.circle.radiusM,
                               .requireComplete = c.requireComplete};
  return cli::askPoints(c.pointsPath == "-" ? std::cin : file, server, query, std::cout, std::cerr);
}

int runQuery(Commands& c, AreaQuery* area) {
  try {
    client::QueryClient server(c.server, kCallTimeout, c.apiKey, c.tls);
    if (!c.pointsPath.empty()) return runPoints(c, server);
    if (*c.q.nearestCmd) return printAnswer(server.nearest(c.q.nearest), c.requireComplete);
    if (area) return printAnswer(server.within(*area), c.requireComplete);
    if (*c.q.getCmd) return printAnswer(server.get(c.q.id), c.requireComplete);
    if (*c.q.statsCmd) return printStats(server.stats(), c.requireComplete);
  } catch (const kj::Exception& e) {
    return fail("cannot get an answer from the server at " + c.server + ": " +
                e.getDescription().cStr());
  }
  return fail("unknown command");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locus: ask a Locus cluster who is near"};
  Commands c;
  c.addTo(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return fail(e.what());
  }

  auto area = checkQuery(c);
  if (!area) return fail(area.error().message);
  if (*c.healthCmd) {
    if (auto e = transport::checkListen("address", c.healthAddress, "127.0.0.1:7880"))
      return fail(*e);
    return checkHealth(c.healthAddress, c.live ? "/healthz" : "/readyz", c.tls.caFile);
  }
  if (*c.localCmd) {
    if (auto e = c.local.validate()) return fail(*e);
    initLogging("locus-local");
    return cli::runLocal(c.local);
  }
  if (*c.sendCmd) return runSend(c);
  if (auto status = cli::runKeyCommand(c.keys)) return *status;
  return runQuery(c, *area);
}
