// locus: the command-line client of a Locus cluster. Asks the server's
// LocationService over Cap'n Proto RPC and prints exactly one JSON object on
// stdout; on failure {"error":"..."} on stderr and a non-zero exit.
#include <capnp/ez-rpc.h>
#include <fmt/format.h>
#include <httplib.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "geojson.h"
#include "local.h"
#include "locus.capnp.h"
#include "locus/common/flags.h"
#include "locus/common/json.h"
#include "locus/common/log.h"
#include "locus/common/wire.h"
#include "locus/transport/net.h"
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
int checkHealth(const std::string& address, const std::string& path) {
  httplib::Client client("http://" + address);
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

// The JSON of a QueryResult as the SPEC prints it, or the error the server
// returned instead.
template <typename Response>
int printResult(Response response, bool requireComplete) {
  if (response.hasError()) return fail(readError(response.getError()).message);
  auto r = response.getResult();
  const auto shards = r.getShards();
  std::cout << toJson(readQueryResult(r), Coverage{shards.getTotal(), shards.getAnswered()},
                      r.getTookUs())
                   .dump()
            << "\n";
  if (r.getPartial())
    return partialAnswer(shards.getAnswered(), shards.getTotal(), requireComplete);
  return 0;
}

template <typename Response>
int printStats(Response response, bool requireComplete) {
  if (response.hasError()) return fail(readError(response.getError()).message);
  auto stats = response.getStats();
  json units = json::array();
  for (auto u : stats.getUnits()) units.push_back(toJson(readUnitStats(u)));
  const auto shards = stats.getShards();
  std::cout << json{{"units", std::move(units)},
                    {"partial", shards.getAnswered() < shards.getTotal()},
                    {"shards", {{"total", shards.getTotal()}, {"answered", shards.getAnswered()}}}}
                   .dump()
            << "\n";
  if (shards.getAnswered() < shards.getTotal()) {
    return partialAnswer(shards.getAnswered(), shards.getTotal(), requireComplete);
  }
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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locus: ask a Locus cluster who is near"};
  std::string server = "127.0.0.1:7800";
  std::string gateway = "127.0.0.1:7700";
  addFlag(app, "--server", server, "the location server, HOST:PORT");
  addFlag(app, "--gateway", gateway, "the gateway's Cap'n Proto port, HOST:PORT (for send)");
  bool requireComplete = false;
  app.add_flag("--require-complete", requireComplete,
               "exit 2 when an answer is partial (some unit did not answer in time)")
      ->envname(envNameForFlag("--require-complete"));
  app.require_subcommand(1);
  app.fallthrough();  // --server / --gateway may follow the command too

  cli::QueryCommands q;
  cli::addQueryCommands(app, q, "per unit: name, devices, reports, queries");
  AreaQuery polygonQuery;
  std::string geojsonPath;
  auto* polygonCmd = app.add_subcommand("polygon", "devices inside a GeoJSON Polygon");
  polygonCmd->add_option("--geojson", geojsonPath, "FILE, or - for stdin")->required();
  cli::addAreaFlags(polygonCmd, polygonQuery);

  cli::LocalOptions local;
  auto* localCmd = app.add_subcommand("local", "run a whole cluster in this process");
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
  localCmd->add_option("--timeout-ms", local.timeoutMs, "per-query deadline for the units")
      ->capture_default_str();
  std::string healthAddress;
  bool live = false;
  auto* healthCmd =
      app.add_subcommand("health", "a daemon's /readyz (exit 0 when ready), for health checks");
  healthCmd->add_option("address", healthAddress, "HOST:PORT of its --http-listen")->required();
  healthCmd->add_flag("--live", live, "ask /healthz (alive) instead of /readyz (ready)");
  std::string sendPath = "-";
  auto* sendCmd = app.add_subcommand("send", "stream NDJSON reports to the gateway");
  sendCmd->add_option("file", sendPath, "NDJSON file, or - for stdin")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    return fail(e.what());
  }

  // Check arguments here too, so a bad one never needs the network.
  if (*q.nearestCmd) {
    if (auto e = validate(q.nearest)) return fail(*e);
  }
  AreaQuery* area = q.area();
  if (*polygonCmd) {
    auto text = readAll(geojsonPath);
    if (!text) return fail(text.error().message);
    auto polygon = cli::polygonFromGeoJson(*text);
    if (!polygon) return fail(polygon.error().message);
    (area = &polygonQuery)->area = std::move(*polygon);
  }
  if (area) {
    if (auto e = validate(*area)) return fail(*e);
  }
  if (*q.getCmd) {
    if (auto e = validateId(q.id)) return fail(*e);
  }

  if (*healthCmd) {
    if (auto e = transport::checkListen("address", healthAddress, "127.0.0.1:7880"))
      return fail(*e);
    return checkHealth(healthAddress, live ? "/healthz" : "/readyz");
  }
  if (*localCmd) {
    if (auto e = local.validate()) return fail(*e);
    initLogging("locus-local");
    return cli::runLocal(local);
  }
  if (*sendCmd) {
    std::ifstream file;
    if (sendPath != "-") {
      file.open(sendPath);
      if (!file) return fail("cannot read " + sendPath);
    }
    try {
      const auto summary = cli::sendReports(sendPath == "-" ? std::cin : file, gateway, std::cerr);
      std::cout << summary.dump() << "\n";
      return summary["rejected"].get<uint64_t>() == 0 ? 0 : 1;
    } catch (const kj::Exception& e) {
      return fail("cannot send to the gateway at " + gateway + ": " + e.getDescription().cStr());
    }
  }

  try {
    capnp::EzRpcClient client(server);
    auto service = client.getMain<wire::LocationService>();
    auto& waitScope = client.getWaitScope();
    auto& timer = client.getIoProvider().getTimer();
    const auto wait = [&](auto promise) {
      return timer.timeoutAfter(kCallTimeout, kj::mv(promise)).wait(waitScope);
    };
    if (*q.nearestCmd) {
      auto request = service.nearestRequest();
      writeNearestQuery(q.nearest, request.initQuery());
      return printResult(wait(request.send()), requireComplete);
    }
    if (area) {
      auto request = service.withinRequest();
      writeAreaQuery(*area, request.initQuery());
      return printResult(wait(request.send()), requireComplete);
    }
    if (*q.getCmd) {
      auto request = service.getRequest();
      request.setId(q.id);
      return printResult(wait(request.send()), requireComplete);
    }
    if (*q.statsCmd) return printStats(wait(service.statsRequest().send()), requireComplete);
  } catch (const kj::Exception& e) {
    return fail("cannot get an answer from the server at " + server + ": " +
                e.getDescription().cStr());
  }
  return fail("unknown command");
}
