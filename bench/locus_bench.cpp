// locus-bench: a load generator for a running Locus cluster, on the SPEC's
// city workload (devices uniform in lat 31.0–31.5, lon 121.2–121.8).
//
//   phase 1  load D devices ("bench-<i>") over the gateway's Ingest RPC
//   phase 2  U updates, each moving a random device 1..50 m, at full rate
//   phase 3  Q nearest-10 queries at uniform random points, one at a time
//            per client, latency measured per query (the closed loop: its
//            rate is the maximum throughput at this concurrency)
//   phase 4  with --open-loop-rate only: nearest-10 queries on a fixed
//            Poisson schedule (a rate, or "half" of phase 3's) for
//            --open-loop-seconds, each timed from its scheduled send time,
//            while one more connection streams updates at
//            --open-loop-update-rate
//
// The pieces: options.h (flags), run.h (the phases and their checks),
// workload.h (devices, moves, query drivers, brute force), backend.h (the
// system under test: locus_backend.h, redis_backend.h, postgis_backend.h),
// report.h (JSON and table).
//
// C threads per phase, each with its own KJ event loop and connection.
// Device i belongs to thread i * C / D, so every thread knows the latest
// position of its own devices and the run knows all of them: after the run
// 100 answers of phase 3 are checked against a brute-force scan, and the
// cluster's device count against D; phase 4's answers must hold k hits,
// nearest first. Any failed check exits non-zero with a reason.
//
// The same driver runs against Redis GEO with --redis HOST:PORT (see
// redis_backend.h): the phases, sizes, moves and query points are identical;
// only the Backend (backend.h) that carries them differs. Redis answers are
// not checked against the scan (52-bit geohash positions, a 500 m radius).
// And against PostGIS with --postgis CONNINFO (postgis_backend.h), whose
// planar KNN is not checked either.
//
// With --connections N it runs the fleet instead (fleet.h): N device
// connections held open and reporting, every ack timed.
//
// Prints an aligned table (or one JSON object with --json, whose "system" is
// "locus", "redis" or "postgis") on stdout and progress lines on stderr.
#include <kj/exception.h>
#include <sys/resource.h>

#include <iostream>
#include <memory>
#include <string>
#include <thread>

#include "fleet.h"
#include "locus/testkit/cluster.h"
#include "locus_backend.h"
#include "options.h"
#include "postgis_backend.h"
#include "redis_backend.h"
#include "report.h"
#include "run.h"

namespace {

using namespace locus::bench;

int fail(const std::string& message, const locus::testkit::SpawnedCluster* cluster = nullptr) {
  std::cerr << "locus-bench: FAILED: " << message << "\n";
  // What the spawned daemons warned of is often the why (a unit taken for
  // stalled, a replica asked instead); they log to pipes no one else reads.
  if (cluster != nullptr) {
    if (const std::string w = cluster->warnings(); !w.empty()) {
      std::cerr << "locus-bench: the spawned cluster's warnings:\n" << w;
    }
  }
  return 1;
}

// Beyond the deadline and a grace period, stops hard: a wait that ignores
// the deadline must not hang the run. Spawned processes die with us.
void exitAfter(double limitS) {
  std::thread([limitS] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limitS + 30));
    std::cerr << "locus-bench: FAILED: still running " << limitS + 30 << " s after start\n";
    std::_Exit(3);
  }).detach();
}

// Raises the soft limit on open files to the hard one, for this process and
// the daemons it spawns (they inherit it): a fleet needs one descriptor a
// connection on both sides.
void raiseFileLimit(int needed) {
  rlimit fds{};
  if (getrlimit(RLIMIT_NOFILE, &fds) != 0) return;
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);
  if (fds.rlim_cur != RLIM_INFINITY && fds.rlim_cur < static_cast<rlim_t>(needed)) {
    std::cerr << "locus-bench: warning: the open-file limit (" << fds.rlim_cur << ") is below the "
              << needed << " a side that --connections needs\n";
  }
}

// --connections: the fleet against the spawned cluster or a running gateway.
int runFleetMode(const Options& o, const Deadline& deadline) {
  raiseFileLimit(o.connections + 256);
  std::unique_ptr<locus::testkit::SpawnedCluster> cluster;
  FleetOptions f{.rpc = o.gateway,
                 .text = o.gatewayText,
                 .token = o.token,
                 .tls = {o.tlsCa, o.tlsServerName},
                 .connections = o.connections,
                 .rampSeconds = o.connectionRamp,
                 .ratePerS = o.connectionRate,
                 .seconds = o.connectionSeconds};
  if (o.spawnUnits > 0) {
    cluster = std::make_unique<locus::testkit::SpawnedCluster>(
        o.spawnUnits, locus::testkit::Http::kOff, 250, o.replicas);
    f.rpc = cluster->gateway->rpcAddress;
    f.text = cluster->gateway->textAddress;
    f.gatewayPid = cluster->gateway->process.pid();
  }
  std::cerr << "locus-bench: " << o.connections << " device connections to " << f.rpc << " and "
            << f.text << ", opened over " << o.connectionRamp << " s\n";
  const FleetResult result = runFleet(f, deadline);
  if (o.json) {
    std::cout << toJson(f, result).dump() << "\n";
  } else {
    printFleet(std::cout, f, result);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locus-bench: load a Locus cluster with the SPEC's city workload and measure it"};
  Options o;
  addFlags(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (auto e = o.validate()) return fail(*e);
  const Deadline deadline(o.maxSeconds);
  exitAfter(o.maxSeconds);

  std::unique_ptr<locus::testkit::SpawnedCluster> cluster;
  try {
    if (o.connections > 0) return runFleetMode(o, deadline);
    std::string gateway = o.gateway, server = o.server;
    if (o.spawnUnits > 0) {
      cluster = std::make_unique<locus::testkit::SpawnedCluster>(
          o.spawnUnits, o.http ? locus::testkit::Http::kOn : locus::testkit::Http::kOff, 250,
          o.replicas);
      gateway = cluster->gateway->rpcAddress;
      server = cluster->server->address;
      if (o.http) o.serverHttp = cluster->server->httpAddress;
      std::cerr << "locus-bench: started " << o.spawnUnits << " units ("
                << (o.replicas != 0 ? o.replicas : (o.spawnUnits >= 2 ? 2 : 1))
                << " replicas), gateway " << gateway << ", server " << server << "\n";
    }
    std::unique_ptr<Backend> backend;
    if (!o.redis.empty()) {
      backend = makeRedisBackend(o.redis, deadline);
    } else if (!o.postgis.empty()) {
      backend = makePostgisBackend(o.postgis, deadline);
    } else {
      backend = makeLocusBackend(
          gateway, server, cluster.get(), deadline, o.http ? o.serverHttp : std::string(),
          Credentials{o.token, o.apiKey, {o.tlsCa, o.tlsServerName}}, o.cpuPids);
    }
    const RunResult result = run(o, *backend, deadline);
    if (o.json) {
      std::cout << toJson(o, backend->name(), result).dump() << "\n";
    } else {
      printTable(std::cout, o, backend->name(), result);
    }
    return 0;
  } catch (const kj::Exception& e) {
    return fail(e.getDescription().cStr(), cluster.get());
  } catch (const std::exception& e) {
    return fail(e.what(), cluster.get());
  }
}
