// Running a Locus cluster as a user would, for tests: each role a real
// process on loopback (port 0, bound addresses read back from its log), and
// a Cap'n Proto RPC client of the server whose every call is bounded.
#pragma once

#include <capnp/ez-rpc.h>
#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <kj/exception.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "locus.capnp.h"
#include "locus/common/wire.h"
#include "support/process.h"

namespace locus::test {

using namespace std::chrono_literals;

// Every wait on a process or an RPC is bounded by this.
inline constexpr auto kWait = 5000ms;
inline constexpr int64_t kTsMs = 1'763'000'000'000;

inline std::string binary(const std::string& name) {
  return std::string(LOCUS_BIN_DIR) + "/" + name;
}

// ------------------------------------------------------------ processes

inline const std::regex kUnitListening(R"(listening on (tcp://[0-9.]+:[0-9]+) \()");
inline const std::regex kServerListening(R"(listening on ([0-9.]+:[0-9]+))");
inline const std::regex kGatewayRpcListening(R"(rpc listening on ([0-9.]+:[0-9]+))");
inline const std::regex kGatewayTextListening(R"(text listening on ([0-9.]+:[0-9]+))");
inline const std::regex kHttpListening(R"(http listening on ([0-9.]+:[0-9]+))");

// Turns on a role's HTTP endpoint (/healthz, /readyz, /metrics) on a free port.
enum class Http { kOff, kOn };

inline std::vector<std::string> withHttp(std::vector<std::string> args, Http http) {
  if (http == Http::kOn) {
    args.push_back("--http-listen");
    args.push_back("127.0.0.1:0");
  }
  return args;
}

// The HTTP address a role logged, when Http::kOn.
inline std::string httpAddressOf(ChildProcess& process, Http http) {
  if (http == Http::kOff) return "";
  auto bound = process.waitForStderr(kHttpListening, kWait);
  INFO("stderr:\n" << process.stderrText());
  REQUIRE(bound);
  return *bound;
}

struct RunningUnit {
  explicit RunningUnit(Http http = Http::kOff)
      : process(binary("locus-unit"), withHttp({"--listen", "tcp://127.0.0.1:0"}, http)) {
    auto bound = process.waitForStderr(kUnitListening, kWait);
    INFO("locus-unit stderr:\n" << process.stderrText());
    REQUIRE(bound);
    endpoint = *bound;
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string endpoint;
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

struct RunningServer {
  RunningServer(const std::vector<std::string>& units, int64_t timeoutMs,
                const std::string& listen = "127.0.0.1:0", Http http = Http::kOff)
      : process(binary("locus-server"),
                withHttp({"--units", fmt::format("{}", fmt::join(units, ",")), "--listen", listen,
                          "--timeout-ms", std::to_string(timeoutMs)},
                         http)) {
    auto bound = process.waitForStderr(kServerListening, kWait);
    INFO("locus-server stderr:\n" << process.stderrText());
    REQUIRE(bound);
    address = *bound;
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string address;      // HOST:PORT
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

struct RunningGateway {
  // `env` adds "NAME=value" entries, e.g. LOCUS_* settings.
  explicit RunningGateway(const std::vector<std::string>& units,
                          const std::vector<std::string>& env = {}, Http http = Http::kOff)
      : process(binary("locus-gateway"),
                withHttp({"--units", fmt::format("{}", fmt::join(units, ",")), "--listen",
                          "127.0.0.1:0", "--listen-text", "127.0.0.1:0"},
                         http),
                env) {
    auto rpc = process.waitForStderr(kGatewayRpcListening, kWait);
    auto text = process.waitForStderr(kGatewayTextListening, kWait);
    INFO("locus-gateway stderr:\n" << process.stderrText());
    REQUIRE(rpc);
    REQUIRE(text);
    rpcAddress = *rpc;
    textAddress = *text;
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string rpcAddress;   // HOST:PORT, Cap'n Proto Ingest
  std::string textAddress;  // HOST:PORT, NDJSON
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

// ------------------------------------------------------------------ data

// Devices everywhere the answers are hard: a dense city, the whole globe,
// both sides of the antimeridian and around the north pole. `ids` keeps the
// strings the reports view.
inline std::vector<Report> worldReports(std::mt19937_64& rng, size_t n,
                                        std::vector<std::string>& ids) {
  std::uniform_real_distribution<double> unit(0, 1);
  ids.reserve(ids.size() + n);
  std::vector<Report> out;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back("dev-" + std::to_string(i));
    double lat = 0, lon = 0;
    switch (i % 10) {
      case 0:
      case 1:  // whole globe
        lat = -90 + 180 * unit(rng);
        lon = -180 + 360 * unit(rng);
        break;
      case 2:  // astride the antimeridian
        lat = -30 + 60 * unit(rng);
        lon = 170 + 20 * unit(rng);
        if (lon > 180) lon -= 360;
        break;
      case 3:  // near the north pole
        lat = 85 + 5 * unit(rng);
        lon = -180 + 360 * unit(rng);
        break;
      default:  // the city
        lat = 31.0 + 0.5 * unit(rng);
        lon = 121.2 + 0.6 * unit(rng);
    }
    out.push_back(
        Report{.id = ids.back(), .lat = lat, .lon = lon, .tsMs = kTsMs + static_cast<int64_t>(i)});
  }
  return out;
}

// --------------------------------------------------------------- RPC side

struct Answer {
  std::optional<Error> error;
  QueryResult result;
  bool partial = false;
  uint32_t total = 0;
  uint32_t answered = 0;
};

template <typename Results>
Answer answerOf(const Results& r) {
  Answer a;
  if (r.hasError()) a.error = readError(r.getError());
  if (r.hasResult()) {
    auto result = r.getResult();
    a.result = readQueryResult(result);
    a.partial = result.getPartial();
    a.total = result.getShards().getTotal();
    a.answered = result.getShards().getAnswered();
  }
  return a;
}

// A Cap'n Proto RPC client of the server. Every call waits at most kWait.
class Rpc {
 public:
  explicit Rpc(const std::string& address)
      : client_(address), service_(client_.getMain<wire::LocationService>()) {}

  template <typename T>
  T await(kj::Promise<T> promise) {
    auto timeout = client_.getIoProvider().getTimer().afterDelay(
        std::chrono::duration_cast<std::chrono::milliseconds>(kWait).count() * kj::MILLISECONDS);
    return promise
        .exclusiveJoin(timeout.then(
            []() -> T { kj::throwFatalException(KJ_EXCEPTION(FAILED, "no RPC answer in time")); }))
        .wait(client_.getWaitScope());
  }

  template <typename Request>
  Answer send(Request& request) {
    return await(request.send().then([](auto&& response) { return answerOf(response); }));
  }

  Answer nearest(const NearestQuery& q) {
    auto request = service_.nearestRequest();
    writeNearestQuery(q, request.initQuery());
    return send(request);
  }
  // All the queries sent at once (pipelined on the one connection), then
  // their answers, in order: the server sees them in one event-loop turn.
  std::vector<Answer> nearestAll(const std::vector<NearestQuery>& queries) {
    auto calls = kj::heapArrayBuilder<kj::Promise<Answer>>(queries.size());
    for (const auto& q : queries) {
      auto request = service_.nearestRequest();
      writeNearestQuery(q, request.initQuery());
      calls.add(request.send().then([](auto&& response) { return answerOf(response); }));
    }
    auto answers = await(kj::joinPromises(calls.finish()));
    return std::vector<Answer>(answers.begin(), answers.end());
  }
  Answer within(const AreaQuery& q) {
    auto request = service_.withinRequest();
    writeAreaQuery(q, request.initQuery());
    return send(request);
  }
  Answer get(const std::string& id) {
    auto request = service_.getRequest();
    request.setId(id);
    return send(request);
  }

  // Runs the client's event loop (sending and receiving) for `duration`.
  void runFor(std::chrono::milliseconds duration) {
    client_.getIoProvider()
        .getTimer()
        .afterDelay(duration.count() * kj::MILLISECONDS)
        .wait(client_.getWaitScope());
  }

  wire::LocationService::Client& service() { return service_; }
  kj::WaitScope& waitScope() { return client_.getWaitScope(); }

 private:
  capnp::EzRpcClient client_;
  wire::LocationService::Client service_;
};

}  // namespace locus::test
