// locus-server: the query front end of a Locus cluster. Serves
// LocationService over Cap'n Proto RPC, scattering each query to every unit
// and reducing their answers, until SIGINT/SIGTERM.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <spdlog/spdlog.h>

#include "locus/common/daemon.h"
#include "locus/common/flags.h"
#include "locus/server/server.h"

int main(int argc, char** argv) {
  locus::server::ServerOptions options;
  CLI::App app{"locus-server: query front end of a Locus cluster (scatter, gather, reduce)"};
  locus::addFlag(app, "--units", options.units,
                 "ZeroMQ endpoints of the units, comma-separated, in shard order")
      ->delimiter(',')
      ->required();
  locus::addFlag(app, "--listen", options.listen,
                 "HOST:PORT for Cap'n Proto RPC (port 0 picks one)");
  locus::addFlag(app, "--timeout-ms", options.timeoutMs, "per-query deadline for the units, ms");
  locus::addFlag(app, "--max-connections", options.maxConnections,
                 "client connections open at once (0 = the fd limit less 128)");
  locus::addFlag(app, "--http-listen", options.httpListen,
                 "HOST:PORT for /healthz, /readyz and /metrics (empty = off)");
  locus::addFlag(app, "--api-keys", options.apiKeys,
                 "client API keys (locus apikey create); set, every call must present one "
                 "(empty = keys not checked)");
  locus::addUnitLinkFlags(app, options.curveKey, options.unitPublicKey, "this server's");
  locus::addTlsFlags(app, options.tlsCert, options.tlsKey, "the RPC and HTTP ports");
  locus::addFlag(app, "--partitions", options.replication.partitions,
                 "the cluster's partition count (the same on every role)");
  locus::addFlag(app, "--replicas", options.replication.replicas,
                 "units each partition lives on (0 = 2 with two or more units, else 1)");
  CLI11_PARSE(app, argc, argv);

  return locus::runDaemon(
      "locus-server", options,
      fmt::format("cannot serve on {} for units {}", options.listen, fmt::join(options.units, ",")),
      [&](zmq::context_t& context, const locus::DaemonSignals& signals) {
        auto io = kj::setupAsyncIo();
        locus::server::Server server(options, context, io);
        spdlog::info("listening on {} ({} units, timeout {} ms)", server.address(),
                     options.units.size(), options.timeoutMs);
        if (!options.httpListen.empty()) spdlog::info("http listening on {}", server.httpAddress());
        server.run(signals.stop, signals.reload);
        spdlog::info("stopping");
      });
}
