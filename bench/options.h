// locus-bench's command line: what to run against, how big, how long.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace locus::bench {

// --open-loop-rate: a fixed rate, or a fraction of the closed loop's.
struct OpenLoopRate {
  double perS = 0;          // fixed queries/s; 0 = no open loop
  double ofClosedLoop = 0;  // > 0: this fraction of phase 3's queries/s
  bool on() const { return perS > 0 || ofClosedLoop > 0; }
};

// "half", or queries/s in [0, 1e6]; nothing when it is neither.
std::optional<OpenLoopRate> parseOpenLoopRate(const std::string& text);

struct Options {
  std::string gateway;       // HOST:PORT of the gateway's Ingest RPC
  std::string server;        // HOST:PORT of the server's LocationService
  int spawnUnits = 0;        // > 0: start a cluster of this many units instead
  uint32_t replicas = 0;     // of the spawned cluster; 0 = its default (2 from two units on)
  std::string redis;         // HOST:PORT: run the workload against Redis GEO instead
  std::string postgis;       // libpq connection string: ... against PostGIS instead
  bool http = false;         // queries over the server's HTTP API (keep-alive) instead of RPC
  std::string serverHttp;    // HOST:PORT of a running server's --http-listen, with --http
  std::string token;         // device token, for a gateway with --auth-keys
  std::string apiKey;        // admin API key, for a server with --api-keys
  std::vector<int> cpuPids;  // with --gateway/--server: the processes whose CPU to count
  std::string tlsCa;         // PEM to trust: TLS to the gateway and the server
  std::string tlsServerName;
  uint64_t devices = 1'000'000;
  uint64_t updates = 2'000'000;
  uint64_t queries = 100'000;
  int concurrency = 4;  // connections (threads) per phase
  // Phase 3: queries in flight per connection; phase 3 runs once per depth.
  std::vector<int> pipeline{1};
  int batch = 1;  // phase 3: points per call (nearestMany), 1 = nearest
  uint64_t seed = 1;
  bool json = false;
  double maxSeconds = 600;  // bound on the whole run
  // Phase 4, the open loop (off unless openLoopRate is given).
  std::string openLoopRate = "0";       // queries/s, or "half" of phase 3's
  double openLoopSeconds = 10;          // length of the query schedule
  double openLoopUpdateRate = 100'000;  // reports/s meanwhile (1M devices, every 10 s)
  int openLoopInFlight = 128;           // queries in flight per connection
  // The fleet (fleet.h), instead of the phases: device connections to hold.
  int connections = 0;
  std::string gatewayText;        // HOST:PORT of a running gateway's NDJSON port
  double connectionSeconds = 30;  // of reports, once every connection is open
  double connectionRamp = 10;     // seconds to open them
  double connectionRate = 1;      // reports/s per connection

  // Why the options cannot run, or nothing.
  std::optional<std::string> validate() const;
};

// Binds every flag of locus-bench to `o`.
void addFlags(CLI::App& app, Options& o);

}  // namespace locus::bench
