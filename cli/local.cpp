#include "local.h"

#include <fmt/format.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "locus/client/ingest_client.h"
#include "locus/client/query_client.h"
#include "locus/common/city.h"
#include "locus/common/json.h"
#include "locus/common/shutdown.h"
#include "locus/common/wire.h"
#include "locus/gateway/gateway.h"
#include "locus/server/server.h"
#include "locus/unit/unit_server.h"

namespace locus::cli {
namespace {

bool stopRequested(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Streams a simulated fleet into the gateway: first every device once, as
// fast as the gateway takes them, then moves at `ratePerS`.
class Simulator {
 public:
  Simulator(const LocalOptions& options, std::string gateway, int stopFd)
      : options_(options), gateway_(std::move(gateway)), stopFd_(stopFd), rng_(7) {}

  void run(std::promise<void>& loaded) {
    client::IngestClient ingest(gateway_);
    ids_.reserve(options_.simulate);
    positions_.reserve(options_.simulate);
    for (uint64_t i = 0; i < options_.simulate; ++i) {
      ids_.push_back("sim-" + std::to_string(i));
      positions_.push_back(city::randomPoint(rng_));
    }
    for (size_t first = 0; first < ids_.size() && !stopRequested(stopFd_);
         first += client::kBatchReports) {
      send(ingest, first, std::min(client::kBatchReports, ids_.size() - first));
    }
    ingest.flush();
    loaded.set_value();

    // Moves: every 100 ms a tenth of the rate, round-robin over the fleet.
    const size_t perTick = std::max<uint64_t>(1, options_.ratePerS / 10);
    size_t next = 0;
    while (!stopRequested(stopFd_)) {
      auto tick = ingest.timer().afterDelay(100 * kj::MILLISECONDS);
      for (size_t sentNow = 0; sentNow < perTick; sentNow += client::kBatchReports) {
        const size_t count = std::min(client::kBatchReports, perTick - sentNow);
        for (size_t i = 0; i < count; ++i) {
          auto& p = positions_[(next + i) % ids_.size()];
          p = city::step(p, rng_);
        }
        send(ingest, next, count);
        next = (next + count) % ids_.size();
      }
      tick.wait(ingest.waitScope());
    }
    ingest.flush();
  }

 private:
  // Devices first .. first + count - 1 (round the fleet) at their positions.
  void send(client::IngestClient& ingest, size_t first, size_t count) {
    ingest.send(
        count,
        [&](size_t i, wire::Report::Builder out) {
          const size_t d = (first + i) % ids_.size();
          writeReport(Report{ids_[d], positions_[d].lat, positions_[d].lon, 0}, out);
        },
        nullptr);
  }

  const LocalOptions& options_;
  std::string gateway_;
  int stopFd_;
  std::mt19937_64 rng_;
  std::vector<std::string> ids_;
  std::vector<geo::LatLon> positions_;
};

// Waits (at most `limit`) until the units hold `devices` devices: the
// gateway acknowledges reports once buffered, a moment before units apply
// them. Returns how many they hold.
uint64_t awaitDevices(const std::string& server, uint64_t devices, std::chrono::seconds limit) {
  client::QueryClient client(server);
  const auto giveUp = std::chrono::steady_clock::now() + limit;
  uint64_t held = 0;
  while (std::chrono::steady_clock::now() < giveUp) {
    auto stats = client.stats();
    held = 0;
    if (stats) {
      for (const auto& unit : stats->units) held += unit.devices;
    }
    if (held >= devices) break;
    client.timer().afterDelay(20 * kj::MILLISECONDS).wait(client.waitScope());
  }
  return held;
}

// One nearest query through the server, as the user will ask it.
std::string sampleQuery(const std::string& server) try {
  client::QueryClient client(server);
  auto answer = client.nearest(NearestQuery{{31.23, 121.47}, 3});
  if (!answer) return errorJson(answer.error().message).dump();
  return toJson(answer->result, answer->shards, answer->tookUs).dump();
} catch (const kj::Exception& e) {
  return errorJson(e.getDescription().cStr()).dump();
}

// The roles, each on its own thread, over inproc:// units. Every thread
// stops at `stop`; the addresses are set once startAll() returns.
class Roles {
 public:
  Roles(const LocalOptions& options, zmq::context_t& context, int stopFd)
      : options_(options), context_(context), stopFd_(stopFd) {
    for (uint32_t i = 0; i < options.units; ++i) {
      unitEndpoints_.push_back(fmt::format("inproc://locus-unit-{}", i));
    }
  }

  // Starts every role; returns why any of them could not start.
  std::vector<std::string> startAll() {
    std::vector<std::string> failures;
    for (uint32_t i = 0; i < options_.units; ++i) {
      threads_.push_back(startRole(
          fmt::format("unit-{}", i), [this, i](const Serving& serving) { runUnit(i, serving); },
          failures));
    }
    threads_.push_back(startRole(
        "server", [this](const Serving& serving) { runServer(serving); }, failures));
    threads_.push_back(startRole(
        "gateway", [this](const Serving& serving) { runGateway(serving); }, failures));
    return failures;
  }

  // Runs `body` on a thread of its own, joined with the roles.
  void spawn(std::function<void()> body) { threads_.emplace_back(std::move(body)); }
  void joinAll() {
    for (auto& t : threads_) t.join();
  }

  std::string serverAddress, gatewayAddress, textAddress;  // as bound
  std::string httpAddress, gatewayHttpAddress;             // as bound; empty = off

 private:
  // Tells startRole() that a role serves.
  using Serving = std::function<void()>;

  // Starts `serve` on a thread and waits until it calls serving() or
  // throws (why it could not start). A failure after that is logged.
  std::thread startRole(const std::string& role, std::function<void(const Serving&)> serve,
                        std::vector<std::string>& failures) {
    std::promise<std::string> started;
    auto ready = started.get_future();
    std::thread t([role, serve = std::move(serve), started = std::move(started)]() mutable {
      bool serving = false;
      const auto failed = [&](const std::string& why) {
        if (serving) {
          spdlog::error("{} stopped: {}", role, why);
        } else {
          started.set_value(why);
        }
      };
      try {
        serve([&] {
          serving = true;
          started.set_value("");
        });
      } catch (const kj::Exception& e) {
        failed(e.getDescription().cStr());
      } catch (const std::exception& e) {
        failed(e.what());
      }
    });
    if (std::string error = ready.get(); !error.empty()) failures.push_back(role + ": " + error);
    return t;
  }

  void runUnit(uint32_t i, const Serving& serving) {
    unit::UnitOptions o;
    o.listen = unitEndpoints_[i];
    o.name = fmt::format("unit-{}", i);
    if (!options_.dataDir.empty()) o.dataDir = fmt::format("{}/unit-{}", options_.dataDir, i);
    o.replicas = options_.replicas;
    unit::UnitServer unit(context_, o);
    serving();
    unit.run(stopFd_);
  }

  void runServer(const Serving& serving) {
    auto io = kj::setupAsyncIo();
    server::ServerOptions o;
    o.units = unitEndpoints_;
    o.listen = options_.serverListen;
    o.timeoutMs = options_.timeoutMs;
    o.replication.replicas = options_.replicas;
    o.httpListen = options_.httpListen;
    server::Server server(o, context_, io);
    serverAddress = server.address();
    httpAddress = server.httpAddress();
    spdlog::info("server listening on {}", serverAddress);
    if (!httpAddress.empty()) spdlog::info("server HTTP API on http://{}/v1/", httpAddress);
    serving();
    server.run(stopFd_);
  }

  void runGateway(const Serving& serving) {
    auto io = kj::setupAsyncIo();
    gateway::GatewayOptions o;
    o.units = unitEndpoints_;
    o.listen = options_.gatewayListen;
    o.listenText = options_.textListen;
    o.routing.replicas = options_.replicas;
    o.httpListen = options_.gatewayHttpListen;
    gateway::Gateway gateway(o, context_, io);
    gatewayAddress = gateway.rpcAddress();
    textAddress = gateway.textAddress();
    gatewayHttpAddress = gateway.httpAddress();
    spdlog::info("gateway listening on {} (rpc) and {} (text)", gatewayAddress, textAddress);
    if (!gatewayHttpAddress.empty()) {
      spdlog::info("gateway HTTP ingest on http://{}/v1/reports", gatewayHttpAddress);
    }
    serving();
    gateway.run(stopFd_);
  }

  const LocalOptions& options_;
  zmq::context_t& context_;
  int stopFd_;
  std::vector<std::string> unitEndpoints_;
  std::vector<std::thread> threads_;
};

// Starts the simulator and waits until its fleet is loaded and held by the
// units (or a signal arrives).
void loadFleet(const LocalOptions& options, Roles& roles, Simulator& simulator, int shutdownFd) {
  auto loaded = std::make_shared<std::promise<void>>();
  auto loadedFuture = loaded->get_future();
  roles.spawn([&simulator, loaded] {
    try {
      simulator.run(*loaded);
    } catch (const kj::Exception& e) {
      spdlog::error("simulator stopped: {}", e.getDescription().cStr());
      try {
        loaded->set_value();
      } catch (const std::future_error&) {
      }
    }
  });
  spdlog::info("loading {} simulated devices", options.simulate);
  while (loadedFuture.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
    if (stopRequested(shutdownFd)) return;
  }
  try {
    const uint64_t held =
        awaitDevices(roles.serverAddress, options.simulate, std::chrono::seconds(30));
    if (held < options.simulate) {
      spdlog::warn("the units hold {} of {} simulated devices", held, options.simulate);
    }
  } catch (const kj::Exception& e) {
    spdlog::error("cannot read the units' stats: {}", e.getDescription().cStr());
  }
}

// What the user sees once the cluster answers: where it is and how to ask.
void printWelcome(const LocalOptions& options, const Roles& roles) {
  const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string& text = roles.textAddress;
  const std::string textPort = text.substr(text.rfind(':') + 1);
  const std::string textHost = text.substr(0, text.rfind(':'));
  std::cout << "Locus is running: " << options.units << " units, gateway " << roles.gatewayAddress
            << " (Cap'n Proto) and " << text << " (NDJSON), server " << roles.serverAddress
            << ".\nThe 3 devices nearest (31.23, 121.47) now:\n  "
            << sampleQuery(roles.serverAddress) << "\nAsk it yourself:\n  " << self << " --server "
            << roles.serverAddress << " nearest --lat 31.23 --lon 121.47 -k 5\n"
            << "  echo '{\"id\":\"me\",\"lat\":31.23,\"lon\":121.47}' | nc -q1 " << textHost << " "
            << textPort << "\n";
  if (!roles.httpAddress.empty()) {
    std::cout << "Or over HTTP:\n  curl 'http://" << roles.httpAddress
              << "/v1/nearest?lat=31.23&lon=121.47&k=5'\n";
  }
  if (!roles.gatewayHttpAddress.empty()) {
    std::cout << "  curl --data-binary '{\"id\":\"me\",\"lat\":31.23,\"lon\":121.47}' http://"
              << roles.gatewayHttpAddress << "/v1/reports\n";
  }
  if (!roles.httpAddress.empty()) {
    std::cout << "The live map: http://" << roles.httpAddress << "/\n";
  }
  std::cout << "Press Ctrl-C to stop.\n" << std::flush;
}

}  // namespace

std::optional<std::string> LocalOptions::validate() const {
  if (units < 1 || units > 256) return fmt::format("--units {} must be in [1, 256]", units);
  if (simulate > 50'000'000) return fmt::format("--simulate {} is more than 50,000,000", simulate);
  if (simulate > 0 && ratePerS == 0) return "--rate must be at least 1 report per second";
  if (timeoutMs < 1) return "--timeout-ms must be at least 1";
  if (replicas < 1 || replicas > units || replicas > kMaxReplicas)
    return fmt::format("--replicas {} must be in [1, {}]", replicas,
                       std::min<uint32_t>(units, kMaxReplicas));
  return std::nullopt;
}

int runLocal(const LocalOptions& options) {
  ShutdownSignal shutdown;  // before any thread starts: they inherit the blocked signals
  StopEvent stop;
  zmq::context_t context;
  Roles roles(options, context, stop.fd());
  std::optional<Simulator> simulator;  // outlives its thread, joined with the roles

  int exitCode = 0;
  if (const auto failures = roles.startAll(); !failures.empty()) {
    for (const auto& f : failures) spdlog::error("cannot start {}", f);
    exitCode = 1;
  } else {
    simulator.emplace(options, roles.gatewayAddress, stop.fd());
    if (options.simulate > 0) loadFleet(options, roles, *simulator, shutdown.fd());
    if (!stopRequested(shutdown.fd())) {
      spdlog::info("ready: {} units, {} simulated devices loaded", options.units, options.simulate);
      printWelcome(options, roles);
    }
    pollfd p{shutdown.fd(), POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    spdlog::info("stopping");
  }
  stop.notify();
  roles.joinAll();
  return exitCode;
}

}  // namespace locus::cli
