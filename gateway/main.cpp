// locus-gateway: the device-facing ingest of a Locus cluster. Serves Ingest
// over Cap'n Proto RPC and NDJSON lines over TCP, routing every valid report
// to the unit that owns its device, until SIGINT/SIGTERM.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <spdlog/spdlog.h>

#include "locus/common/daemon.h"
#include "locus/common/flags.h"
#include "locus/gateway/gateway.h"

int main(int argc, char** argv) {
  locus::gateway::GatewayOptions options;
  CLI::App app{"locus-gateway: device-facing ingest of a Locus cluster (validate, route, batch)"};
  locus::addFlag(app, "--units", options.units,
                 "ZeroMQ endpoints of the units, comma-separated, in shard order")
      ->delimiter(',')
      ->required();
  locus::addFlag(app, "--listen", options.listen,
                 "HOST:PORT for Cap'n Proto RPC Ingest (port 0 picks one)");
  locus::addFlag(app, "--listen-text", options.listenText,
                 "HOST:PORT for NDJSON report lines (port 0 picks one)");
  locus::addFlag(app, "--batch-timeout-ms", options.routing.batchTimeoutMs,
                 "deadline for a unit to answer a batch, ms (then it is counted lost)");
  locus::addDurationFlag(app, "--max-future-skew", options.maxFutureSkewMs,
                         "a report's ts may be at most this far ahead of the gateway's clock");
  locus::addFlag(app, "--max-connections", options.maxConnections,
                 "client connections open at once, both protocols (0 = the fd limit less 128)");
  locus::addDurationFlag(app, "--idle-timeout", options.clients.idleTimeoutMs,
                         "close a client connection that sends nothing this long (0 = never)");
  locus::addFlag(app, "--max-reports-per-s", options.clients.maxReportsPerS,
                 "reports a second one connection may send; beyond, each is refused as "
                 "retryable (0 = no limit)");
  locus::addFlag(app, "--max-buffered-bytes", options.clients.maxBufferedBytes,
                 "bytes read from one connection and not yet answered; past it the gateway "
                 "stops reading from it");
  locus::addFlag(app, "--http-listen", options.httpListen,
                 "HOST:PORT for /healthz, /readyz and /metrics (empty = off)");
  locus::addFlag(app, "--auth-keys", options.authKeys,
                 "device token keys (locus token keygen); set, every connection must present a "
                 "token (empty = tokens not checked)");
  locus::addUnitLinkFlags(app, options.curveKey, options.unitPublicKey, "this gateway's");
  locus::addTlsFlags(app, options.tlsCert, options.tlsKey, "the RPC, text and HTTP ports");
  locus::addFlag(app, "--partitions", options.routing.partitions,
                 "the cluster's partition count (the same on every role)");
  locus::addFlag(app, "--replicas", options.routing.replicas,
                 "units each partition lives on (0 = 2 with two or more units, else 1)");
  std::string acks = locus::gateway::toString(options.routing.acks);
  locus::addFlag(app, "--acks", acks,
                 "replicas that must store a report before its ok: 1, or all (every replica "
                 "that is up, i.e. not stalled past --batch-timeout-ms)")
      ->check(CLI::IsMember({"1", "all"}));
  CLI11_PARSE(app, argc, argv);
  options.routing.acks = *locus::gateway::parseAckPolicy(acks);

  return locus::runDaemon("locus-gateway", options,
                          fmt::format("cannot serve on {} / {} for units {}", options.listen,
                                      options.listenText, fmt::join(options.units, ",")),
                          [&](zmq::context_t& context, const locus::DaemonSignals& signals) {
                            auto io = kj::setupAsyncIo();
                            locus::gateway::Gateway gateway(options, context, io);
                            spdlog::info("rpc listening on {}", gateway.rpcAddress());
                            spdlog::info("text listening on {} ({} units)", gateway.textAddress(),
                                         options.units.size());
                            if (!options.httpListen.empty()) {
                              spdlog::info("http listening on {}", gateway.httpAddress());
                            }
                            gateway.run(signals.stop, signals.reload);
                            spdlog::info("stopped");
                          });
}
