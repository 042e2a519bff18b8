// Running a Locus cluster as a user would, for tests and the bench: each
// role a real process on loopback (port 0, bound addresses read back from
// its log), and a Cap'n Proto RPC client of the server whose every call is
// bounded. A role that does not start throws std::runtime_error with its
// stderr. No test framework here: locus-bench uses it too.
#pragma once

#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <kj/exception.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "locus.capnp.h"
#include "locus/client/query_client.h"
#include "locus/common/wire.h"
#include "locus/testkit/process.h"

namespace locus::testkit {

using namespace std::chrono_literals;

// Every wait on a process or an RPC is bounded by this.
inline constexpr auto kWait = 5000ms;
inline constexpr int64_t kTsMs = 1'763'000'000'000;

// The folder of the running executable: tests, the bench and the daemons
// are all built into the same one.
inline std::string binDir() {
  std::vector<char> path(4096);
  const ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  const std::string exe(path.data(), static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

inline std::string binary(const std::string& name) {
  return binDir() + "/" + name;
}

// Resident set size of a process in bytes (VmRSS), 0 when unknown.
inline uint64_t rssBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "... kB"
  }
  return 0;
}

// The fields of /proc/PID/stat by their number in man 5 proc (1 = pid,
// 2 = the command's name, 3 = state, ...); empty when `pid` is gone.
inline std::vector<std::string> procStat(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto open = text.find('('), close = text.rfind(')');  // the name may hold anything
  if (open == std::string::npos || close == std::string::npos || close < open) return {};
  std::vector<std::string> fields{"", text.substr(0, open - 1),
                                  text.substr(open + 1, close - open - 1)};
  std::istringstream rest(text.substr(close + 1));
  for (std::string field; rest >> field;) fields.push_back(field);
  return fields;
}

// CPU seconds (user + system, every thread) process `pid` has used, and
// with `withReapedChildren` those of its children it has waited for; 0
// when unknown.
inline double cpuSeconds(pid_t pid, bool withReapedChildren = false) {
  const auto f = procStat(pid);
  if (f.size() <= 17) return 0;
  unsigned long long ticks = std::stoull(f[14]) + std::stoull(f[15]);        // utime, stime
  if (withReapedChildren) ticks += std::stoull(f[16]) + std::stoull(f[17]);  // cutime, cstime
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The parent of process `pid`, or -1 when it is gone.
inline pid_t parentPid(pid_t pid) {
  const auto f = procStat(pid);
  return f.size() > 4 ? static_cast<pid_t>(std::stol(f[4])) : -1;
}

// What `pattern` captured in the role's log once it started, or throws
// with the role's stderr.
inline std::string boundAddress(ChildProcess& process, const std::regex& pattern,
                                const std::string& role) {
  auto bound = process.waitForStderr(pattern, kWait);
  if (!bound)
    throw std::runtime_error(role + " did not start; its stderr:\n" + process.stderrText());
  return *bound;
}

// ------------------------------------------------------------ processes

inline const std::regex kUnitListening(R"(listening on (tcp://[0-9.]+:[0-9]+) \()");
inline const std::regex kServerListening(R"(listening on ([0-9.]+:[0-9]+))");
inline const std::regex kGatewayRpcListening(R"(rpc listening on ([0-9.]+:[0-9]+))");
inline const std::regex kGatewayTextListening(R"(text listening on ([0-9.]+:[0-9]+))");
inline const std::regex kHttpListening(R"(http listening on ([0-9.]+:[0-9]+))");

// Turns on a role's HTTP endpoint (/healthz, /readyz, /metrics) on a free port.
enum class Http { kOff, kOn };

inline std::vector<std::string> withArgs(std::vector<std::string> args,
                                         const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

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
  return boundAddress(process, kHttpListening, "its HTTP endpoint");
}

struct RunningUnit {
  // `listen` as bound before, to restart a unit where its peers look for it.
  explicit RunningUnit(Http http = Http::kOff, const std::vector<std::string>& args = {},
                       const std::string& listen = "tcp://127.0.0.1:0")
      : process(binary("locus-unit"), withHttp(withArgs({"--listen", listen}, args), http)) {
    endpoint = boundAddress(process, kUnitListening, "locus-unit");
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string endpoint;
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

struct RunningServer {
  // `args` adds flags, e.g. {"--replicas", "1"}.
  RunningServer(const std::vector<std::string>& units, int64_t timeoutMs,
                const std::string& listen = "127.0.0.1:0", Http http = Http::kOff,
                const std::vector<std::string>& args = {})
      : process(binary("locus-server"),
                withHttp(withArgs({"--units", fmt::format("{}", fmt::join(units, ",")), "--listen",
                                   listen, "--timeout-ms", std::to_string(timeoutMs)},
                                  args),
                         http)) {
    address = boundAddress(process, kServerListening, "locus-server");
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string address;      // HOST:PORT
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

struct RunningGateway {
  // `env` adds "NAME=value" entries, e.g. LOCUS_* settings.
  // `listen` as bound before, to restart a gateway where its clients look.
  explicit RunningGateway(const std::vector<std::string>& units,
                          const std::vector<std::string>& env = {}, Http http = Http::kOff,
                          const std::string& listen = "127.0.0.1:0")
      : process(binary("locus-gateway"),
                withHttp({"--units", fmt::format("{}", fmt::join(units, ",")), "--listen", listen,
                          "--listen-text", "127.0.0.1:0"},
                         http),
                env) {
    rpcAddress = boundAddress(process, kGatewayRpcListening, "locus-gateway");
    textAddress = boundAddress(process, kGatewayTextListening, "locus-gateway");
    httpAddress = httpAddressOf(process, http);
  }
  ChildProcess process;
  std::string rpcAddress;   // HOST:PORT, Cap'n Proto Ingest
  std::string textAddress;  // HOST:PORT, NDJSON
  std::string httpAddress;  // HOST:PORT with Http::kOn
};

// Everything a user starts, in the order a user would start it: `units`
// units, a gateway and a server in front of them.
struct SpawnedCluster {
  // `replicas` 0: the cluster's default (2 from two units on).
  explicit SpawnedCluster(size_t unitCount, Http http = Http::kOff, int64_t timeoutMs = 250,
                          uint32_t replicas = 0) {
    const uint32_t r = replicas != 0 ? replicas : (unitCount >= 2 ? 2 : 1);
    const std::vector<std::string> args{"--replicas", std::to_string(r)};
    for (size_t i = 0; i < unitCount; ++i) units.emplace_back(http, args);
    for (const auto& u : units) endpoints.push_back(u.endpoint);
    gateway = std::make_unique<RunningGateway>(
        endpoints, std::vector<std::string>{"LOCUS_REPLICAS=" + std::to_string(r)}, http);
    server = std::make_unique<RunningServer>(endpoints, timeoutMs, "127.0.0.1:0", http, args);
  }
  uint64_t unitsRssBytes() const {
    uint64_t total = 0;
    for (const auto& u : units) total += rssBytes(u.process.pid());
    return total;
  }
  // CPU seconds every process of the cluster has used so far.
  double cpuSeconds() const {
    double total =
        testkit::cpuSeconds(gateway->process.pid()) + testkit::cpuSeconds(server->process.pid());
    for (const auto& u : units) total += testkit::cpuSeconds(u.process.pid());
    return total;
  }

  // The warning and error lines each role has logged so far, the last
  // `perRole` of each, every line prefixed with its role ("unit 2: ...");
  // empty when none logged any. For a run that failed to say what the
  // cluster saw.
  std::string warnings(size_t perRole = 20) const {
    std::string out;
    const auto add = [&](const std::string& role, const ChildProcess& p) {
      std::vector<std::string> lines;
      std::istringstream in(p.stderrText());
      for (std::string line; std::getline(in, line);) {
        if (line.find(" warning ") != std::string::npos ||
            line.find(" error ") != std::string::npos ||
            line.find(" critical ") != std::string::npos) {
          lines.push_back(std::move(line));
        }
      }
      const size_t from = lines.size() > perRole ? lines.size() - perRole : 0;
      if (from > 0) out += role + ": (" + std::to_string(from) + " earlier lines left out)\n";
      for (size_t i = from; i < lines.size(); ++i) out += role + ": " + lines[i] + "\n";
    };
    for (size_t i = 0; i < units.size(); ++i) add("unit " + std::to_string(i), units[i].process);
    add("gateway", gateway->process);
    add("server", server->process);
    return out;
  }

  std::deque<RunningUnit> units;  // not movable: a deque grows in place
  std::vector<std::string> endpoints;
  std::unique_ptr<RunningGateway> gateway;
  std::unique_ptr<RunningServer> server;
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

// An answer or the server's error, flattened for CHECKs.
struct Answer {
  std::optional<Error> error;
  QueryResult result;
  bool partial = false;
  uint32_t total = 0;     // units asked
  uint32_t answered = 0;  // ... and those that answered
  uint32_t partitions = 0;
  uint32_t partitionsAnswered = 0;
};

inline Answer flatten(const Result<client::Answer>& r) {
  Answer a;
  if (!r) {
    a.error = r.error();
    return a;
  }
  a.result = r->result;
  a.partial = r->partial;
  a.total = r->shards.total;
  a.answered = r->shards.answered;
  a.partitions = r->shards.partitions;
  a.partitionsAnswered = r->shards.partitionsAnswered;
  return a;
}

inline Result<std::vector<Answer>> flattenAll(const Result<std::vector<client::Answer>>& r) {
  if (!r) return r.error();
  std::vector<Answer> out;
  for (const auto& a : *r) out.push_back(flatten(a));
  return out;
}

template <typename Results>
Answer answerOf(const Results& r) {
  return flatten(client::readAnswer(r));
}

// A Cap'n Proto RPC client of the server. Every call waits at most kWait.
class Rpc {
 public:
  // `apiKey`: log in with it first (the server's --api-keys).
  explicit Rpc(const std::string& address, const std::string& apiKey = "")
      : client_(
            address,
            std::chrono::duration_cast<std::chrono::milliseconds>(kWait).count() * kj::MILLISECONDS,
            apiKey) {}

  template <typename T>
  T await(kj::Promise<T> promise) {
    return client_.wait(kj::mv(promise));
  }

  template <typename Request>
  Answer send(Request& request) {
    return await(request.send().then([](auto&& response) { return answerOf(response); }));
  }

  Answer nearest(const NearestQuery& q) { return flatten(client_.nearest(q)); }
  // All the queries sent at once (pipelined on the one connection), then
  // their answers, in order: the server sees them in one event-loop turn.
  std::vector<Answer> nearestAll(const std::vector<NearestQuery>& queries) {
    auto calls = kj::heapArrayBuilder<kj::Promise<Answer>>(queries.size());
    for (const auto& q : queries)
      calls.add(
          client_.startNearest(q).then([](Result<client::Answer>&& r) { return flatten(r); }));
    auto answers = await(kj::joinPromises(calls.finish()));
    return std::vector<Answer>(answers.begin(), answers.end());
  }
  Answer within(const AreaQuery& q) { return flatten(client_.within(q)); }
  // One call for many points: the call's error, or an answer per point.
  Result<std::vector<Answer>> nearestMany(const NearestMany& q) {
    return flattenAll(client_.nearestMany(q));
  }
  Result<std::vector<Answer>> withinMany(const WithinMany& q) {
    return flattenAll(client_.withinMany(q));
  }
  Answer get(const std::string& id) { return flatten(client_.get(id)); }
  Result<ClusterStats> stats() { return client_.stats(); }

  // Runs the client's event loop (sending and receiving) for `duration`.
  void runFor(std::chrono::milliseconds duration) {
    client_.rpc().afterDelay(duration.count() * kj::MILLISECONDS).wait(client_.waitScope());
  }

  wire::LocationService::Client& service() { return client_.service(); }
  kj::WaitScope& waitScope() { return client_.waitScope(); }

 private:
  client::QueryClient client_;
};

}  // namespace locus::testkit
