#include "options.h"

#include <charconv>

#include "locus/common/flags.h"
#include "locus/common/query.h"
#include "postgis_backend.h"
#include "redis_backend.h"

namespace locus::bench {

std::optional<OpenLoopRate> parseOpenLoopRate(const std::string& text) {
  if (text == "half") return OpenLoopRate{.ofClosedLoop = 0.5};
  double perS = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), perS);
  if (ec != std::errc{} || end != text.data() + text.size() || !(perS >= 0) || perS > 1e6)
    return std::nullopt;
  return OpenLoopRate{.perS = perS};
}

std::optional<std::string> Options::validate() const {
  if (spawnUnits < 0 || spawnUnits > 64) return "--spawn-units must be in [0, 64]";
  if (replicas > 0 && (spawnUnits == 0 || replicas > static_cast<uint32_t>(spawnUnits)))
    return "--replicas needs --spawn-units N with N >= the replica count";
  if (!redis.empty() && (spawnUnits > 0 || !gateway.empty() || !server.empty()))
    return "--redis measures Redis GEO: drop --spawn-units, --gateway and --server";
  if (!postgis.empty() && (spawnUnits > 0 || !gateway.empty() || !server.empty() || !redis.empty()))
    return "--postgis measures PostGIS: drop --spawn-units, --gateway, --server and --redis";
  if (connections != 0) {
    if (connections < 2 || connections > 100'000) return "--connections must be in [2, 100000]";
    if (!redis.empty() || !postgis.empty())
      return "--connections measures a Locus gateway: drop --redis and --postgis";
    if (spawnUnits == 0 && (gateway.empty() || gatewayText.empty()))
      return "--connections needs --spawn-units N, or --gateway and --gateway-text";
    if (!(connectionSeconds > 0 && connectionSeconds <= 3600))
      return "--connection-seconds must be in (0, 3600]";
    if (!(connectionRamp >= 0 && connectionRamp <= 600))
      return "--connection-ramp must be in [0, 600]";
    if (!(connectionRate > 0 && connectionRate <= 1000))
      return "--connection-rate must be in (0, 1000] reports/s";
    if (!(maxSeconds > 0)) return "--max-seconds must be positive";
    return std::nullopt;
  }
  if (redis.empty() && postgis.empty() && spawnUnits == 0 && (gateway.empty() || server.empty()))
    return "give --gateway and --server of a running cluster, --spawn-units N, --redis "
           "HOST:PORT or --postgis CONNINFO";
  if (spawnUnits > 0 && (!gateway.empty() || !server.empty()))
    return "--spawn-units starts its own cluster: drop --gateway and --server";
  if (!cpuPids.empty() && server.empty())
    return "--cpu-pids measures a running cluster: give --gateway and --server";
  if (concurrency < 1 || concurrency > 256) return "--concurrency must be in [1, 256]";
  if (pipeline.empty()) return "--pipeline needs a depth";
  if (batch < 1 || static_cast<size_t>(batch) > kMaxBatchPoints)
    return "--batch must be in [1, " + std::to_string(kMaxBatchPoints) + "]";
  if (http && batch != 1) return "--http asks one point a call: drop --batch";
  for (int depth : pipeline) {
    if (depth < 1 || depth > 1024) return "--pipeline depths must be in [1, 1024]";
    if (http && depth != 1) return "--http asks one query at a time: drop --pipeline";
  }
  if (http && (!redis.empty() || !postgis.empty()))
    return "--http measures Locus's HTTP API: drop --redis and --postgis";
  if (http && spawnUnits == 0 && serverHttp.empty())
    return "--http needs --spawn-units N or --server-http HOST:PORT";
  if (http && openLoopRate != "0") return "--http runs the closed loop only: drop --open-loop-rate";
  if (devices < static_cast<uint64_t>(concurrency))
    return "--devices must be at least --concurrency";
  if (devices > 100'000'000) return "--devices must be at most 100,000,000";
  if (!(maxSeconds > 0)) return "--max-seconds must be positive";
  const auto rate = parseOpenLoopRate(openLoopRate);
  if (!rate) return "--open-loop-rate must be queries/s in [0, 1e6] or \"half\"";
  if (rate->ofClosedLoop > 0 && queries == 0)
    return "--open-loop-rate half needs the closed-loop queries (--queries > 0)";
  if (!(openLoopSeconds > 0 && openLoopSeconds <= 3600))
    return "--open-loop-seconds must be in (0, 3600]";
  if (!(openLoopUpdateRate >= 0 && openLoopUpdateRate <= 1e7))
    return "--open-loop-update-rate must be in [0, 1e7] reports/s";
  if (openLoopInFlight < 1 || openLoopInFlight > 100'000)
    return "--open-loop-in-flight must be in [1, 100000]";
  return std::nullopt;
}

void addFlags(CLI::App& app, Options& o) {
  addFlag(app, "--gateway", o.gateway, "HOST:PORT of a running gateway's Ingest RPC");
  addFlag(app, "--server", o.server, "HOST:PORT of a running server's LocationService");
  addFlag(
      app, "--spawn-units", o.spawnUnits,
      "start N units, a gateway and a server on 127.0.0.1 instead (0 = use --gateway/--server)");
  addFlag(app, "--redis", o.redis,
          "HOST:PORT of a scratch redis-server: run the same workload against Redis GEO "
          "(deletes the key " +
              std::string(bench::kRedisKey) + ")");
  addFlag(app, "--postgis", o.postgis,
          "libpq connection string of a scratch PostgreSQL with PostGIS (e.g. \"host=127.0.0.1 "
          "port=5432 user=postgres dbname=postgres\"): run the same workload against it (drops "
          "and recreates the table " +
              std::string(bench::kPostgisTable) + ")");
  addFlag(app, "--replicas", o.replicas,
          "with --spawn-units: units each partition lives on (0 = 2 from two units on)");
  app.add_flag("--http", o.http,
               "ask the nearest queries over the server's HTTP API (GET /v1/nearest, one "
               "keep-alive connection per worker) instead of Cap'n Proto RPC");
  addFlag(app, "--server-http", o.serverHttp, "HOST:PORT of a running server's --http-listen");
  addFlag(app, "--cpu-pids", o.cpuPids,
          "with --gateway/--server: the cluster's process ids (e.g. one `locus local`), whose "
          "CPU per query is reported")
      ->delimiter(',');
  addFlag(app, "--token", o.token, "device token, for a gateway with --auth-keys");
  addFlag(app, "--api-key", o.apiKey, "admin API key, for a server with --api-keys");
  addFlag(app, "--tls-ca", o.tlsCa, "PEM certificate(s) to trust: TLS to the gateway and server");
  addFlag(app, "--tls-server-name", o.tlsServerName,
          "the name their certificates carry (default: the address's host)");
  addFlag(app, "--devices", o.devices, "devices to load (phase 1)");
  addFlag(app, "--updates", o.updates, "position updates at full rate (phase 2)");
  addFlag(app, "--queries", o.queries, "nearest-10 queries (phase 3)");
  addFlag(app, "--concurrency", o.concurrency, "connections (threads) per phase");
  addFlag(app, "--pipeline", o.pipeline,
          "phase 3: nearest queries in flight per connection (1 = each waits for the one "
          "before; D > 1: the next is sent as soon as any is answered); a list (1,32) runs "
          "phase 3 once per depth")
      ->delimiter(',');
  addFlag(app, "--batch", o.batch,
          "phase 3: points per call (Locus: nearestMany; Redis and PostGIS: that many commands "
          "pipelined), 1 = one nearest a call");
  addFlag(app, "--seed", o.seed, "random seed");
  app.add_flag("--json", o.json, "print one JSON object instead of the table");
  addFlag(app, "--max-seconds", o.maxSeconds, "bound on the whole run, seconds");
  addFlag(app, "--open-loop-rate", o.openLoopRate,
          "phase 4: nearest-10 queries/s on a Poisson schedule while updates continue; \"half\" "
          "= half the queries/s of phase 3 (at its best depth); 0 = no phase 4");
  addFlag(app, "--open-loop-seconds", o.openLoopSeconds, "length of phase 4's query schedule");
  addFlag(app, "--open-loop-update-rate", o.openLoopUpdateRate,
          "reports/s sent during phase 4 (0 = none)");
  addFlag(app, "--open-loop-in-flight", o.openLoopInFlight,
          "bound on phase 4's queries in flight per connection; a query held back more than 1 s "
          "is dropped");
  addFlag(app, "--connections", o.connections,
          "instead of the phases: hold N device connections to the gateway (half NDJSON, half "
          "RPC), each reporting at --connection-rate, and time every ack (0 = off)");
  addFlag(app, "--gateway-text", o.gatewayText,
          "HOST:PORT of a running gateway's NDJSON port, with --connections");
  addFlag(app, "--connection-seconds", o.connectionSeconds,
          "with --connections: seconds of reports once every connection is open");
  addFlag(app, "--connection-ramp", o.connectionRamp,
          "with --connections: seconds over which the connections open");
  addFlag(app, "--connection-rate", o.connectionRate,
          "with --connections: reports per second per connection");
}

}  // namespace locus::bench
