// locus-unit: one shard of a Locus cluster, serving its LocationIndex on a
// ZeroMQ endpoint until SIGINT/SIGTERM.
#include "locus/common/daemon.h"
#include "locus/common/flags.h"
#include "locus/unit/unit_server.h"

namespace {

// Says where the unit's positions live, and what it recovered.
void logStorage(const locus::unit::UnitService& service) {
  const locus::unit::Storage* storage = service.storage();
  if (storage == nullptr) {
    spdlog::warn("memory-only (no --data-dir): the positions are lost when this unit stops");
    return;
  }
  const auto& r = storage->recovery();
  spdlog::info(
      "data in {} (fsync {}, incarnation {:016x}): {}, {} devices from {} snapshot positions and "
      "{} logged batches in {:.3f} s{}",
      storage->options().dir, locus::unit::toString(storage->options().fsync),
      storage->incarnation(), r.fresh ? "new" : "recovered", service.index().size(),
      r.snapshotReports, r.logRecords, r.seconds,
      r.cutBytes > 0 ? fmt::format(", {} torn bytes cut", r.cutBytes) : "");
}

}  // namespace

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
  locus::addFlag(app, "--data-dir", options.dataDir,
                 "keep a log and snapshots here and recover from them at start (empty = "
                 "memory-only: positions are lost when the unit stops)");
  std::string fsync = locus::unit::toString(options.fsync);
  locus::addFlag(app, "--fsync", fsync,
                 "when logged batches reach the disk: always (before each answer), interval "
                 "(within --fsync-interval), never (when the OS writes back)")
      ->check(CLI::IsMember({"always", "interval", "never"}));
  locus::addDurationFlag(app, "--fsync-interval", options.fsyncIntervalMs,
                         "with --fsync interval: the longest a batch waits for its sync");
  locus::addFlag(app, "--snapshot-after-bytes", options.snapshotAfterBytes,
                 "write a snapshot once the logs exceed this and the last snapshot's size");
  locus::addFlag(app, "--partitions", options.partitions,
                 "the cluster's partition count (the same on every role)");
  locus::addFlag(app, "--replicas", options.replicas,
                 "the cluster's replica count: above 1 the unit answers for a partition only "
                 "once it caught up from a live replica (a gateway orders it)");
  locus::addFlag(app, "--curve-key", options.curveKey,
                 "the unit key's keypair file (locus keygen): speak only CURVE (empty = plain)");
  locus::addFlag(app, "--curve-clients", options.curveClients,
                 "public keys of the clients admitted (gateway, server, the unit key), one a "
                 "line; re-read on SIGHUP");
  CLI11_PARSE(app, argc, argv);
  options.fsync = *locus::unit::parseFsyncPolicy(fsync);

  return locus::runDaemon("locus-unit", options, "cannot serve on " + options.listen,
                          [&](zmq::context_t& context, const locus::DaemonSignals& signals) {
                            locus::unit::UnitServer server(context, options);
                            logStorage(server.service());
                            spdlog::info("{} listening on {} (ttl {} s)", server.service().name(),
                                         server.endpoint(), options.ttlS);
                            if (!options.httpListen.empty()) {
                              spdlog::info("http listening on {}", server.httpAddress());
                            }
                            server.run(signals.stop, signals.reload);
                            const auto& c = server.service().counters();
                            spdlog::info(
                                "stopping: {} devices, {} reports applied, {} queries served",
                                server.service().index().size(), c.reportsApplied.value(),
                                c.queriesServed.value());
                          });
}
