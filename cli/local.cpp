#include "local.h"

#include <capnp/ez-rpc.h>
#include <fmt/format.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <filesystem>
#include <future>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "locus.capnp.h"
#include "locus/common/city.h"
#include "locus/common/json.h"
#include "locus/common/shutdown.h"
#include "locus/common/wire.h"
#include "locus/gateway/gateway.h"
#include "locus/server/server.h"
#include "locus/unit/unit_server.h"

namespace locus::cli {
namespace {

constexpr size_t kBatch = 1000;
constexpr size_t kCallsInFlight = 8;

bool stopRequested(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

// Starts `body` on a thread and waits until it reports that it is serving
// (an empty string) or why it could not start.
std::thread startRole(const std::string& role, std::function<void(std::promise<std::string>&)> body,
                      std::vector<std::string>& failures) {
  std::promise<std::string> started;
  auto ready = started.get_future();
  std::thread t(
      [body = std::move(body), started = std::move(started)]() mutable { body(started); });
  if (std::string error = ready.get(); !error.empty()) failures.push_back(role + ": " + error);
  return t;
}

// Streams a simulated fleet into the gateway: first every device once, as
// fast as the gateway takes them, then moves at `ratePerS`.
class Simulator {
 public:
  Simulator(const LocalOptions& options, std::string gateway, int stopFd)
      : options_(options), gateway_(std::move(gateway)), stopFd_(stopFd) {}

  void run(std::promise<void>& loaded) {
    capnp::EzRpcClient client(gateway_);
    auto ingest = client.getMain<wire::Ingest>();
    auto& waitScope = client.getWaitScope();
    auto& timer = client.getIoProvider().getTimer();
    std::mt19937_64 rng(7);

    ids_.reserve(options_.simulate);
    positions_.reserve(options_.simulate);
    for (uint64_t i = 0; i < options_.simulate; ++i) {
      ids_.push_back("sim-" + std::to_string(i));
      positions_.push_back(city::randomPoint(rng));
    }

    std::deque<kj::Promise<capnp::Response<wire::Ingest::ReportResults>>> inFlight;
    const auto send = [&](size_t first, size_t count) {
      auto request = ingest.reportRequest();
      auto out = request.initBatch().initReports(static_cast<unsigned>(count));
      for (size_t i = 0; i < count; ++i) {
        const size_t d = (first + i) % ids_.size();
        writeReport(Report{ids_[d], positions_[d].lat, positions_[d].lon, 0},
                    out[static_cast<unsigned>(i)]);
      }
      inFlight.push_back(request.send());
      while (inFlight.size() >= kCallsInFlight) {
        inFlight.front().wait(waitScope);
        inFlight.pop_front();
      }
    };

    for (size_t first = 0; first < ids_.size() && !stopRequested(stopFd_); first += kBatch) {
      send(first, std::min(kBatch, ids_.size() - first));
    }
    while (!inFlight.empty()) {
      inFlight.front().wait(waitScope);
      inFlight.pop_front();
    }
    loaded.set_value();

    // Moves: every 100 ms a tenth of the rate, round-robin over the fleet.
    const size_t perTick = std::max<uint64_t>(1, options_.ratePerS / 10);
    size_t next = 0;
    while (!stopRequested(stopFd_)) {
      auto tick = timer.afterDelay(100 * kj::MILLISECONDS);
      for (size_t sentNow = 0; sentNow < perTick; sentNow += kBatch) {
        const size_t count = std::min(kBatch, perTick - sentNow);
        for (size_t i = 0; i < count; ++i) {
          auto& p = positions_[(next + i) % ids_.size()];
          p = city::step(p, rng);
        }
        send(next, count);
        next = (next + count) % ids_.size();
      }
      tick.wait(waitScope);
    }
    while (!inFlight.empty()) {
      inFlight.front().wait(waitScope);
      inFlight.pop_front();
    }
  }

 private:
  const LocalOptions& options_;
  std::string gateway_;
  int stopFd_;
  std::vector<std::string> ids_;
  std::vector<geo::LatLon> positions_;
};

// Waits (at most `limit`) until the units hold `devices` devices: the
// gateway acknowledges reports once buffered, a moment before units apply
// them. Returns how many they hold.
uint64_t awaitDevices(const std::string& server, uint64_t devices, std::chrono::seconds limit) {
  capnp::EzRpcClient client(server);
  auto service = client.getMain<wire::LocationService>();
  auto& timer = client.getIoProvider().getTimer();
  const auto giveUp = std::chrono::steady_clock::now() + limit;
  uint64_t held = 0;
  while (std::chrono::steady_clock::now() < giveUp) {
    auto response = service.statsRequest().send().wait(client.getWaitScope());
    held = 0;
    for (auto unit : response.getStats().getUnits()) held += unit.getDevices();
    if (held >= devices) break;
    timer.afterDelay(20 * kj::MILLISECONDS).wait(client.getWaitScope());
  }
  return held;
}

// One nearest query through the server, as the user will ask it.
std::string sampleQuery(const std::string& server) try {
  capnp::EzRpcClient client(server);
  auto request = client.getMain<wire::LocationService>().nearestRequest();
  writeNearestQuery(NearestQuery{{31.23, 121.47}, 3}, request.initQuery());
  auto response = request.send().wait(client.getWaitScope());
  if (response.hasError()) return errorJson(readError(response.getError()).message).dump();
  auto r = response.getResult();
  return toJson(readQueryResult(r), Coverage{r.getShards().getTotal(), r.getShards().getAnswered()},
                r.getTookUs())
      .dump();
} catch (const kj::Exception& e) {
  return errorJson(e.getDescription().cStr()).dump();
}

}  // namespace

std::optional<std::string> LocalOptions::validate() const {
  if (units < 1 || units > 256) return fmt::format("--units {} must be in [1, 256]", units);
  if (simulate > 50'000'000) return fmt::format("--simulate {} is more than 50,000,000", simulate);
  if (simulate > 0 && ratePerS == 0) return "--rate must be at least 1 report per second";
  if (timeoutMs < 1) return "--timeout-ms must be at least 1";
  return std::nullopt;
}

int runLocal(const LocalOptions& options) {
  ShutdownSignal shutdown;  // before any thread starts: they inherit the blocked signals
  StopEvent stop;
  zmq::context_t context;

  std::vector<std::string> unitEndpoints;
  for (uint32_t i = 0; i < options.units; ++i) {
    unitEndpoints.push_back(fmt::format("inproc://locus-unit-{}", i));
  }

  std::vector<std::thread> threads;
  std::vector<std::string> failures;
  std::string serverAddress, gatewayAddress, textAddress;  // as bound, set before "started"
  for (uint32_t i = 0; i < options.units; ++i) {
    threads.push_back(startRole(
        fmt::format("unit-{}", i),
        [&, i](std::promise<std::string>& started) {
          try {
            unit::UnitOptions o;
            o.listen = unitEndpoints[i];
            o.name = fmt::format("unit-{}", i);
            unit::UnitServer unit(context, o);
            started.set_value("");
            unit.run(stop.fd());
          } catch (const std::exception& e) {
            started.set_value(e.what());
          }
        },
        failures));
  }
  threads.push_back(startRole(
      "server",
      [&](std::promise<std::string>& started) {
        try {
          auto io = kj::setupAsyncIo();
          server::ServerOptions o;
          o.units = unitEndpoints;
          o.listen = options.serverListen;
          o.timeoutMs = options.timeoutMs;
          server::Server server(o, context, io);
          serverAddress = server.address();
          spdlog::info("server listening on {}", serverAddress);
          started.set_value("");
          server.run(stop.fd());
        } catch (const kj::Exception& e) {
          started.set_value(e.getDescription().cStr());
        } catch (const std::exception& e) {
          started.set_value(e.what());
        }
      },
      failures));
  threads.push_back(startRole(
      "gateway",
      [&](std::promise<std::string>& started) {
        try {
          auto io = kj::setupAsyncIo();
          gateway::GatewayOptions o;
          o.units = unitEndpoints;
          o.listen = options.gatewayListen;
          o.listenText = options.textListen;
          gateway::Gateway gateway(o, context, io);
          gatewayAddress = gateway.rpcAddress();
          textAddress = gateway.textAddress();
          spdlog::info("gateway listening on {} (rpc) and {} (text)", gatewayAddress, textAddress);
          started.set_value("");
          gateway.run(stop.fd());
        } catch (const kj::Exception& e) {
          started.set_value(e.getDescription().cStr());
        } catch (const std::exception& e) {
          started.set_value(e.what());
        }
      },
      failures));

  int exitCode = 0;
  if (!failures.empty()) {
    for (const auto& f : failures) spdlog::error("cannot start {}", f);
    exitCode = 1;
  } else {
    std::promise<void> loaded;
    auto loadedFuture = loaded.get_future();
    Simulator simulator(options, gatewayAddress, stop.fd());
    if (options.simulate > 0) {
      threads.emplace_back([&] {
        try {
          simulator.run(loaded);
        } catch (const kj::Exception& e) {
          spdlog::error("simulator stopped: {}", e.getDescription().cStr());
          try {
            loaded.set_value();
          } catch (const std::future_error&) {
          }
        }
      });
      spdlog::info("loading {} simulated devices", options.simulate);
      while (loadedFuture.wait_for(std::chrono::milliseconds(100)) != std::future_status::ready) {
        if (stopRequested(shutdown.fd())) break;
      }
      try {
        const uint64_t held =
            awaitDevices(serverAddress, options.simulate, std::chrono::seconds(30));
        if (held < options.simulate) {
          spdlog::warn("the units hold {} of {} simulated devices", held, options.simulate);
        }
      } catch (const kj::Exception& e) {
        spdlog::error("cannot read the units' stats: {}", e.getDescription().cStr());
      }
    } else {
      loaded.set_value();
    }
    if (!stopRequested(shutdown.fd())) {
      spdlog::info("ready: {} units, {} simulated devices loaded", options.units, options.simulate);
      const auto self = std::filesystem::read_symlink("/proc/self/exe").string();
      const std::string textPort = textAddress.substr(textAddress.rfind(':') + 1);
      const std::string textHost = textAddress.substr(0, textAddress.rfind(':'));
      std::cout << "Locus is running: " << options.units << " units, gateway " << gatewayAddress
                << " (Cap'n Proto) and " << textAddress << " (NDJSON), server " << serverAddress
                << ".\nThe 3 devices nearest (31.23, 121.47) now:\n  " << sampleQuery(serverAddress)
                << "\nAsk it yourself:\n  " << self << " --server " << serverAddress
                << " nearest --lat 31.23 --lon 121.47 -k 5\n"
                << "  echo '{\"id\":\"me\",\"lat\":31.23,\"lon\":121.47}' | nc -q1 " << textHost
                << " " << textPort << "\nPress Ctrl-C to stop.\n"
                << std::flush;
    }
    pollfd p{shutdown.fd(), POLLIN, 0};
    while (::poll(&p, 1, -1) < 0 && errno == EINTR) {
    }
    spdlog::info("stopping");
  }
  stop.notify();
  for (auto& t : threads) t.join();
  return exitCode;
}

}  // namespace locus::cli
