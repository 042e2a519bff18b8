// `locus local`: a whole Locus cluster in one process — N units, a gateway
// and a server, each on its own thread, talking over ZeroMQ's inproc://
// transport — optionally with a simulated fleet streaming into the gateway.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace locus::cli {

struct LocalOptions {
  uint32_t units = 4;
  uint64_t simulate = 0;       // devices moving around the city box; 0 = none
  uint64_t ratePerS = 50'000;  // simulated reports per second, all devices together
  std::string gatewayListen = "127.0.0.1:7700";      // Cap'n Proto Ingest; port 0 picks one
  std::string textListen = "127.0.0.1:7701";         // NDJSON
  std::string serverListen = "127.0.0.1:7800";       // Cap'n Proto LocationService
  std::string httpListen = "127.0.0.1:7880";         // the server's HTTP API; empty = off
  std::string gatewayHttpListen = "127.0.0.1:7702";  // POST /v1/reports; empty = off
  int64_t timeoutMs = 250;
  std::string dataDir;    // empty = memory-only; else unit i keeps its data in DIR/unit-<i>
  uint32_t replicas = 1;  // units each partition lives on (embedded: 1 unless asked)

  std::optional<std::string> validate() const;
};

// Runs until SIGINT/SIGTERM; returns the process exit code. Logs one line
// per event; prints a ready-to-paste query once the cluster answers.
int runLocal(const LocalOptions& options);

}  // namespace locus::cli
