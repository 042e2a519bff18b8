// locus-bench --connections N: many devices on one gateway at once, as a
// city's phones and trackers hold it (issue 13's "ten thousand devices").
//
// N long-lived device connections, half NDJSON on the text port and half
// Cap'n Proto RPC, opened over --connection-ramp seconds; then each sends
// one report (its own device, a small move in the city) every
// 1/--connection-rate seconds on a fixed schedule, with one report in
// flight, for --connection-seconds. Each ack is timed from the report's
// scheduled send time, so a slow gateway cannot hide behind a client that
// waited. The gateway's resident memory is sampled every second when this
// run spawned it. One thread and one KJ event loop drive every connection.
//
// Checks: every connection opens and stays open, and every report is
// acknowledged `ok`; anything else fails the run with the first reason.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "backend.h"
#include "histogram.h"
#include "locus/transport/tls.h"

namespace locus::bench {

struct FleetOptions {
  std::string rpc;                  // HOST:PORT of the gateway's Ingest RPC
  std::string text;                 // HOST:PORT of its NDJSON port
  std::string token;                // device token, when the gateway has --auth-keys
  transport::TlsClientOptions tls;  // TLS to both ports
  int connections = 10'000;
  double rampSeconds = 10;  // to open them all
  double ratePerS = 1;      // reports per second per connection
  double seconds = 30;      // of reports, after the ramp
  pid_t gatewayPid = 0;     // > 0: sample its RSS
};

struct FleetResult {
  uint64_t opened = 0;  // connections that opened (and logged in)
  uint64_t sent = 0;    // reports sent
  uint64_t acked = 0;   // answered ok
  Histogram ackUs;      // scheduled send to ok, both protocols
  Histogram rpcAckUs, textAckUs;
  double rampSeconds = 0;       // until every connection was open
  double seconds = 0;           // of the report phase
  uint64_t rssBeforeBytes = 0;  // the gateway's, before the first connection
  uint64_t rssOpenBytes = 0;    // ... once every connection was open
  uint64_t rssPeakBytes = 0;    // ... at most, over the run
};

// Runs the fleet; throws std::runtime_error with the first failed check.
FleetResult runFleet(const FleetOptions& options, const Deadline& deadline);

// One JSON object ("system":"locus", "fleet":{...}), or an aligned table.
nlohmann::ordered_json toJson(const FleetOptions& options, const FleetResult& result);
void printFleet(std::ostream& out, const FleetOptions& options, const FleetResult& result);

}  // namespace locus::bench
