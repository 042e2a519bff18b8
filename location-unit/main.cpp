// locus-unit: one shard of a Locus cluster, serving its LocationIndex on a
// ZeroMQ endpoint until SIGINT/SIGTERM.
#include "locus/common/daemon.h"
#include "locus/common/flags.h"
#include "locus/unit/unit_server.h"

int main(int argc, char** argv) {
  locus::unit::UnitOptions options;
  CLI::App app{"locus-unit: one shard of a Locus cluster (store + index + query executor)"};
  locus::addFlag(app, "--listen", options.listen, "ZeroMQ endpoint to bind (port 0 picks one)");
  locus::addFlag(app, "--name", options.name, "name in stats and logs (default: the endpoint)");
  locus::addFlag(app, "--ttl-s", options.ttlS,
                 "seconds a position lives after its ts (0 = forever)");
  locus::addDurationFlag(app, "--max-future-skew", options.maxFutureSkewMs,
                         "a report's ts may be at most this far ahead of the unit's clock");
  locus::addFlag(app, "--http-listen", options.httpListen,
                 "HOST:PORT for /healthz, /readyz and /metrics (empty = off)");
  CLI11_PARSE(app, argc, argv);

  return locus::runDaemon("locus-unit", options, "cannot serve on " + options.listen,
                          [&](zmq::context_t& context, int stopFd) {
                            locus::unit::UnitServer server(context, options);
                            spdlog::info("{} listening on {} (ttl {} s)", server.service().name(),
                                         server.endpoint(), options.ttlS);
                            if (!options.httpListen.empty()) {
                              spdlog::info("http listening on {}", server.httpAddress());
                            }
                            server.run(stopFd);
                            const auto& c = server.service().counters();
                            spdlog::info(
                                "stopping: {} devices, {} reports applied, {} queries served",
                                server.service().index().size(), c.reportsApplied.value(),
                                c.queriesServed.value());
                          });
}
