// A small Locus inside the fuzz process, for the targets of the RPC
// interfaces and the HTTP path: one real unit on inproc:// (a thread of
// its own) holding devices under fleet/ and other/ all over the globe, the
// server's ScatterGather and the gateway's Router over it, API keys and
// device-token keys required (credentials.h), and one HTTP server with
// every route of both daemons but the endless /v1/stream. Header-only.
//
// Thread-affinity: the fuzzing thread (it runs the KJ event loop).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "credentials.h"
#include "device_auth.h"  // gateway/src
#include "http_ingest.h"  // gateway/src
#include "ingest_service.h"
#include "locus/common/auth.h"
#include "locus/common/metrics.h"
#include "locus/gateway/router.h"
#include "locus/server/access.h"
#include "locus/server/http_api.h"
#include "locus/server/location_service.h"
#include "locus/server/scatter_gather.h"
#include "locus/testkit/inproc.h"
#include "locus/testkit/temp_dir.h"
#include "locus/transport/http_server.h"
#include "locus/transport/unit_client.h"

namespace locus::fuzz {

inline int64_t wallMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Writes a key file readable by its owner only (as key files must be).
inline std::string writeKeyFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    throw std::runtime_error("cannot write " + path);
  }
  ::close(fd);
  return path;
}

struct Cluster {
  static constexpr int kDevices = 1000;  // half under fleet/, half under other/

  Cluster()
      : io(kj::setupAsyncIo()),
        unit(context, "fuzz-unit-" + std::to_string(generation++)),
        scatter(context, io.unixEventPort, io.provider->getTimer(), {unit.endpoint()}, 250),
        clientAuth(writeKeyFile(dir / "api-keys", kApiKeyLines)),
        deviceAuth(writeKeyFile(dir / "auth-keys", kTokenKeyLine)),
        tokenKeys(*auth::TokenKeys::parse(kTokenKeyLine, "fuzz")),
        deviceToken(*auth::issueToken(
            tokenKeys.newest(),
            auth::DeviceScope{"fuzz", kTokenPrefix, kTokenExpiresMs, tokenKeys.newest().id},
            kTokenIssuedMs)),
        router(gateway::RouterOptions{.batchReports = 1, .flushDelayUs = 0}, context,
               io.unixEventPort, io.provider->getTimer(), {unit.endpoint()}),
        ingest{router, protocolCounters, deviceAuth, kDefaultMaxFutureSkewMs, limits, refused},
        connectionLimit(16) {
    preload();
    serviceCounters.expose(registry);
    clientAuth.expose(registry);
    auto routes = transport::operatorRoutes(registry, [] { return transport::Readiness{true}; });
    // Every route of both daemons but /v1/stream, which never ends.
    const auto api = server::httpApi(scatter, serviceCounters, clientAuth, io.provider->getTimer());
    for (const auto& r : api.routes()) {
      if (r.handler) routes.add(r.method, r.path, r.handler);
    }
    routes.merge(gateway::httpIngest(ingest));
    http = std::make_unique<transport::HttpServer>(io, "127.0.0.1:0", std::move(routes),
                                                   connectionLimit);
  }

  // Stores the devices the queries find: ids fleet/N and other/N, spread
  // over the globe with some at the poles and on the antimeridian.
  void preload() {
    std::vector<std::string> ids;
    std::vector<Report> reports;
    ids.reserve(kDevices);
    uint64_t x = 88172645463325252ULL;
    const auto next = [&x] {  // xorshift64: the same devices every run
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      return x;
    };
    const int64_t now = wallMs();
    for (int i = 0; i < kDevices; ++i) {
      ids.push_back((i % 2 ? "other/" : "fleet/") + std::to_string(i));
      double lat = -90 + static_cast<double>(next() % 18'001) / 100;
      double lon = -180 + static_cast<double>(next() % 36'001) / 100;
      if (i % 50 == 0) lat = i % 100 == 0 ? 90 : -90;
      if (i % 50 == 1) lon = i % 100 == 1 ? 180 : -180;
      reports.push_back(Report{.lat = lat, .lon = lon, .tsMs = now - i});
    }
    for (int i = 0; i < kDevices; ++i) reports[i].id = ids[i];
    transport::UnitClient client(context, unit.endpoint());
    if (!client.apply(reports)) throw std::runtime_error("the fuzz unit refused its devices");
  }

  static inline int generation = 0;

  kj::AsyncIoContext io;
  zmq::context_t context;
  testkit::TempDir dir{"locus-fuzz"};
  testkit::InprocUnit unit;
  server::ScatterGather scatter;
  server::ServiceCounters serviceCounters;
  server::ClientAuth clientAuth;
  gateway::DeviceAuth deviceAuth;
  auth::TokenKeys tokenKeys;
  std::string deviceToken;  // writes ids under kTokenPrefix
  gateway::Router router;
  gateway::ProtocolCounters protocolCounters;
  gateway::ClientLimits limits;
  gateway::Refusals refused;
  gateway::IngestContext ingest;
  metrics::Registry registry;
  transport::ConnectionLimit connectionLimit;
  std::unique_ptr<transport::HttpServer> http;  // declared last: stops first
};

// Runs `copy` (parameters from the input into a request); false when the
// input's struct is malformed, which the RPC system refuses the same way.
template <typename Copy>
bool copied(Copy&& copy) {
  try {
    copy();
    return true;
  } catch (const kj::Exception&) {
    return false;
  }
}

// The fixture for this run: a fresh one every `every` runs, so that what
// the runs store (devices written through the gateway) stays bounded.
inline Cluster& clusterFor(uint64_t every) {
  static std::unique_ptr<Cluster> cluster;
  static uint64_t runs = 0;
  if (runs++ % every == 0) {
    cluster.reset();  // one KJ event loop per thread: the old one goes first
    cluster = std::make_unique<Cluster>();
  }
  return *cluster;
}

}  // namespace locus::fuzz
