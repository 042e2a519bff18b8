// locus-unit-probe: talk to one location unit directly over ZeroMQ — load a
// simulated city fleet, ask queries, read stats. Prints one JSON object on
// stdout; on failure {"error":"..."} on stderr and exit 1. For operators and
// `make run`; clients of a cluster use `locus` against the server.
#include <chrono>
#include <iostream>
#include <memory>
#include <random>

#include "locus/common/flags.h"
#include "locus/common/json.h"
#include "locus/transport/curve.h"
#include "locus/transport/unit_client.h"
#include "query_flags.h"

namespace {

using namespace locus;
using json = nlohmann::ordered_json;

int fail(const std::string& message) {
  std::cerr << errorJson(message).dump() << "\n";
  return 1;
}

template <typename T>
int printOr(const Result<T>& result, const std::function<json(const T&)>& toJsonFn) {
  if (!result) return fail(result.error().message);
  std::cout << toJsonFn(*result).dump() << "\n";
  return 0;
}

json queryJson(const QueryResult& r, std::chrono::steady_clock::time_point started) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - started);
  return toJson(r, Coverage{}, static_cast<uint64_t>(us.count()));
}

// Loads `devices` simulated devices uniform over the SPEC's city box.
Result<json> loadCity(transport::UnitClient& client, size_t devices, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> lat(geo::kCityBox.south, geo::kCityBox.north),
      lon(geo::kCityBox.west, geo::kCityBox.east);
  constexpr size_t kBatch = 5000;
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::string> ids;
  std::vector<Report> batch;
  json out = {{"loaded", 0}, {"accepted", 0}, {"rejected", 0}};
  for (size_t first = 0; first < devices; first += kBatch) {
    ids.clear();
    batch.clear();
    for (size_t i = first; i < std::min(devices, first + kBatch); ++i) {
      ids.push_back("sim-" + std::to_string(i));
    }
    for (const std::string& id : ids) batch.push_back(Report{id, lat(rng), lon(rng), 0});
    auto outcome = client.apply(batch);
    if (!outcome) return outcome.error();
    out["loaded"] = out["loaded"].get<size_t>() + batch.size();
    out["accepted"] = out["accepted"].get<size_t>() + outcome->accepted;
    out["rejected"] = out["rejected"].get<size_t>() + outcome->rejected.size();
  }
  out["took_ms"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locus-unit-probe: ask one location unit directly"};
  std::string endpoint = "tcp://127.0.0.1:7900";
  int timeoutMs = 5000;
  addFlag(app, "--unit", endpoint, "the unit's ZeroMQ endpoint");
  addFlag(app, "--timeout-ms", timeoutMs, "how long to wait for an answer");
  std::string curveKey, unitPublicKey;
  addUnitLinkFlags(app, curveKey, unitPublicKey, "a");
  app.require_subcommand(1);

  size_t devices = 100'000;
  uint64_t seed = 1;
  auto* load = app.add_subcommand("load", "load simulated devices uniform over the city box");
  load->add_option("--devices", devices, "how many")->capture_default_str();
  load->add_option("--seed", seed, "random seed")->capture_default_str();

  cli::QueryCommands q;
  cli::addQueryCommands(app, q, "the unit's counters");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (auto e = transport::checkUnitLinkFlags(curveKey, unitPublicKey)) return fail(*e);
  zmq::context_t context;
  std::unique_ptr<transport::UnitLinkCredentials> links;
  try {
    links = transport::unitLinksFromFiles(context, curveKey, unitPublicKey);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  transport::UnitClient client(context, endpoint, std::chrono::milliseconds(timeoutMs));
  const auto started = std::chrono::steady_clock::now();
  const auto asQuery = [&](const QueryResult& r) { return queryJson(r, started); };

  if (*load) return printOr<json>(loadCity(client, devices, seed), [](const json& j) { return j; });
  if (*q.nearestCmd) {
    if (auto e = validate(q.nearest)) return fail(*e);
    return printOr<QueryResult>(client.nearest(q.nearest), asQuery);
  }
  if (AreaQuery* area = q.area()) {
    if (auto e = validate(*area)) return fail(*e);
    return printOr<QueryResult>(client.within(*area), asQuery);
  }
  if (*q.getCmd) {
    return printOr<Hit>(client.get(q.id), [](const Hit& h) { return toJson(h); });
  }
  if (*q.statsCmd) {
    return printOr<UnitStats>(client.stats(), [](const UnitStats& s) { return toJson(s); });
  }
  return fail("unknown command");
}
