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
//
// Prints an aligned table (or one JSON object with --json, whose "system" is
// "locus" or "redis") on stdout and progress lines on stderr.
#include <capnp/ez-rpc.h>
#include <fmt/ranges.h>
#include <kj/async-io.h>
#include <kj/timer.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backend.h"
#include "histogram.h"
#include "locus.capnp.h"
#include "locus/common/city.h"
#include "locus/common/clock.h"
#include "locus/common/flags.h"
#include "locus/common/geo.h"
#include "locus/common/json.h"
#include "locus/common/wire.h"
#include "redis_backend.h"
#include "support/process.h"  // tests/support: one ChildProcess for tests and bench

namespace {

using namespace locus;
using bench::Answered;
using bench::Backend;
using bench::Clock;
using bench::Deadline;
using bench::Fleet;
using bench::Move;
using bench::NearestAnswer;
using bench::Session;
using bench::Totals;
using json = nlohmann::ordered_json;

constexpr double kMaxMoveM = 50;
constexpr double kMetresPerDegree = geo::kEarthRadiusM * geo::kPi / 180;
constexpr uint32_t kBatchReports = 1000;
constexpr size_t kCallsInFlight = 8;
constexpr uint32_t kK = 10;
constexpr size_t kSampleQueries = 100;
constexpr auto kCallTimeout = 60 * kj::SECONDS;
constexpr auto kProgressEvery = std::chrono::seconds(2);
constexpr auto kStartTimeout = std::chrono::milliseconds(10000);
constexpr auto kSettleTimeout = std::chrono::seconds(60);
// Open loop: a query held back by the in-flight bound longer than this
// after its scheduled time is dropped; answers are awaited this long after
// the schedule ends, then abandoned; the updater sends every kUpdateTick.
constexpr auto kMaxSendLag = std::chrono::seconds(1);
constexpr auto kOpenLoopDrain = std::chrono::seconds(2);
constexpr auto kHeldPoll = std::chrono::microseconds(100);
constexpr auto kDrainStep = std::chrono::milliseconds(1);
constexpr auto kUpdateTick = std::chrono::milliseconds(10);

// --open-loop-rate: a fixed rate, or a fraction of the closed loop's.
struct OpenLoopRate {
  double perS = 0;          // fixed queries/s; 0 = no open loop
  double ofClosedLoop = 0;  // > 0: this fraction of phase 3's queries/s
  bool on() const { return perS > 0 || ofClosedLoop > 0; }
};

std::optional<OpenLoopRate> parseOpenLoopRate(const std::string& text) {
  if (text == "half") return OpenLoopRate{.ofClosedLoop = 0.5};
  double perS = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), perS);
  if (ec != std::errc{} || end != text.data() + text.size() || !(perS >= 0) || perS > 1e6)
    return std::nullopt;
  return OpenLoopRate{.perS = perS};
}

struct Options {
  std::string gateway;  // HOST:PORT of the gateway's Ingest RPC
  std::string server;   // HOST:PORT of the server's LocationService
  int spawnUnits = 0;   // > 0: start a cluster of this many units instead
  std::string redis;    // HOST:PORT: run the workload against Redis GEO instead
  uint64_t devices = 1'000'000;
  uint64_t updates = 2'000'000;
  uint64_t queries = 100'000;
  int concurrency = 4;  // connections (threads) per phase
  uint64_t seed = 1;
  bool json = false;
  double maxSeconds = 600;  // bound on the whole run
  // Phase 4, the open loop (off unless openLoopRate is given).
  std::string openLoopRate = "0";       // queries/s, or "half" of phase 3's
  double openLoopSeconds = 10;          // length of the query schedule
  double openLoopUpdateRate = 100'000;  // reports/s meanwhile (1M devices, every 10 s)
  int openLoopInFlight = 128;           // queries in flight per connection

  std::optional<std::string> validate() const {
    if (spawnUnits < 0 || spawnUnits > 64) return "--spawn-units must be in [0, 64]";
    if (!redis.empty() && (spawnUnits > 0 || !gateway.empty() || !server.empty()))
      return "--redis measures Redis GEO: drop --spawn-units, --gateway and --server";
    if (redis.empty() && spawnUnits == 0 && (gateway.empty() || server.empty()))
      return "give --gateway and --server of a running cluster, --spawn-units N or --redis "
             "HOST:PORT";
    if (spawnUnits > 0 && (!gateway.empty() || !server.empty()))
      return "--spawn-units starts its own cluster: drop --gateway and --server";
    if (concurrency < 1 || concurrency > 256) return "--concurrency must be in [1, 256]";
    if (devices < static_cast<uint64_t>(concurrency))
      return "--devices must be at least --concurrency";
    if (devices > 100'000'000) return "--devices must be at most 100,000,000";
    if (!(maxSeconds > 0)) return "--max-seconds must be positive";
    const auto rate = parseOpenLoopRate(openLoopRate);
    if (!rate) return "--open-loop-rate must be queries/s in [0, 1e6] or \"half\"";
    if (rate->ofClosedLoop > 0 && queries == 0)
      return "--open-loop-rate half needs the closed-loop queries (--queries > 0)";
    if (!(openLoopSeconds > 0 && openLoopSeconds <= 3600))
      return "--open-loop-seconds must be in (0, 3600]";
    if (!(openLoopUpdateRate >= 0 && openLoopUpdateRate <= 1e7))
      return "--open-loop-update-rate must be in [0, 1e7] reports/s";
    if (openLoopInFlight < 1 || openLoopInFlight > 100'000)
      return "--open-loop-in-flight must be in [1, 100000]";
    return std::nullopt;
  }
};

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ------------------------------------------------------------- the cluster

const std::regex kUnitListening(R"(listening on (tcp://[0-9.]+:[0-9]+) \()");
const std::regex kServerListening(R"(listening on ([0-9.]+:[0-9]+))");
const std::regex kGatewayRpcListening(R"(rpc listening on ([0-9.]+:[0-9]+))");

std::string binDir() {
  std::vector<char> path(4096);
  const ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  std::string exe(path.data(), static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

// Resident set size of a process in bytes (VmRSS), 0 when unknown.
uint64_t rssBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "... kB"
  }
  return 0;
}

// A cluster of real processes on 127.0.0.1 with ports chosen by the kernel.
// Destroying it kills every process (they also die with this process).
class SpawnedCluster {
 public:
  SpawnedCluster(int units, const Deadline& deadline) {
    const std::string dir = binDir();
    std::vector<std::string> endpoints;
    for (int i = 0; i < units; ++i) {
      units_.push_back(std::make_unique<test::ChildProcess>(
          dir + "/locus-unit", std::vector<std::string>{"--listen", "tcp://127.0.0.1:0", "--name",
                                                        "bench-unit-" + std::to_string(i)}));
      endpoints.push_back(waitBound(*units_.back(), kUnitListening, "locus-unit"));
      deadline.check("cluster start");
    }
    gateway_ = std::make_unique<test::ChildProcess>(
        dir + "/locus-gateway",
        std::vector<std::string>{"--units", fmt::format("{}", fmt::join(endpoints, ",")),
                                 "--listen", "127.0.0.1:0", "--listen-text", "127.0.0.1:0"});
    gatewayAddress_ = waitBound(*gateway_, kGatewayRpcListening, "locus-gateway");
    server_ = std::make_unique<test::ChildProcess>(
        dir + "/locus-server",
        std::vector<std::string>{"--units", fmt::format("{}", fmt::join(endpoints, ",")),
                                 "--listen", "127.0.0.1:0"});
    serverAddress_ = waitBound(*server_, kServerListening, "locus-server");
  }

  const std::string& gatewayAddress() const { return gatewayAddress_; }
  const std::string& serverAddress() const { return serverAddress_; }

  uint64_t unitsRssBytes() const {
    uint64_t total = 0;
    for (const auto& u : units_) total += rssBytes(u->pid());
    return total;
  }

 private:
  static std::string waitBound(test::ChildProcess& process, const std::regex& pattern,
                               const std::string& name) {
    auto bound = process.waitForStderr(pattern, kStartTimeout);
    if (!bound)
      throw std::runtime_error(name + " did not start; its stderr:\n" + process.stderrText());
    return *bound;
  }

  std::vector<std::unique_ptr<test::ChildProcess>> units_;
  std::unique_ptr<test::ChildProcess> gateway_;
  std::unique_ptr<test::ChildProcess> server_;
  std::string gatewayAddress_;
  std::string serverAddress_;
};

// ----------------------------------------------------------------- stats

Totals clusterTotals(const std::string& server) {
  capnp::EzRpcClient client(server);
  auto request = client.getMain<wire::LocationService>().statsRequest();
  auto response = client.getIoProvider()
                      .getTimer()
                      .timeoutAfter(kCallTimeout, request.send())
                      .wait(client.getWaitScope());
  if (response.hasError())
    throw std::runtime_error("stats: " + readError(response.getError()).message);
  Totals totals;
  auto stats = response.getStats();
  for (auto u : stats.getUnits()) {
    const UnitStats s = readUnitStats(u);
    totals.devices += s.devices;
    totals.reportsSeen += s.reportsApplied + s.reportsStale + s.reportsRejected;
    totals.memoryBytes += s.memoryBytes;
  }
  totals.shardsTotal = stats.getShards().getTotal();
  totals.shardsAnswered = stats.getShards().getAnswered();
  return totals;
}

// Polls stats until the units have seen `reportsSeen` reports in all (the
// gateway acknowledges before the units apply). Returns the totals then.
Totals waitForReports(const std::string& server, uint64_t reportsSeen, const Deadline& deadline,
                      const std::string& phase) {
  const auto until = std::min(Clock::now() + kSettleTimeout, deadline.at());
  for (;;) {
    Totals totals = clusterTotals(server);
    if (totals.shardsAnswered == totals.shardsTotal && totals.reportsSeen >= reportsSeen)
      return totals;
    if (Clock::now() >= until) {
      throw std::runtime_error(phase + ": the units saw " + std::to_string(totals.reportsSeen) +
                               " of " + std::to_string(reportsSeen) + " reports (" +
                               std::to_string(totals.shardsAnswered) + "/" +
                               std::to_string(totals.shardsTotal) + " units answered) after " +
                               std::to_string(kSettleTimeout.count()) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// ------------------------------------------------------------ the workload

std::string deviceId(uint64_t i) {
  return "bench-" + std::to_string(i);
}

geo::LatLon randomPoint(std::mt19937_64& rng) {
  const geo::LatLon p = city::randomPoint(rng);
  return {geo::quantize(p.lat), geo::quantize(p.lon)};
}

// `p` moved 1..kMaxMoveM metres in a random direction, quantized.
geo::LatLon moved(geo::LatLon p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> metres(1, kMaxMoveM), bearing(0, 2 * geo::kPi);
  const double d = metres(rng), b = bearing(rng);
  const double dLat = d * std::cos(b) / kMetresPerDegree;
  const double dLon = d * std::sin(b) / (kMetresPerDegree * std::cos(p.lat * geo::kPi / 180));
  return {geo::quantize(p.lat + dLat), geo::quantize(p.lon + dLon)};
}

// A worker's failure, reported by the phase after all workers ended.
class Failures {
 public:
  void note(const std::string& what) {
    std::lock_guard lock(mutex_);
    if (first_.empty()) first_ = what;
  }
  void throwIfAny() {
    std::lock_guard lock(mutex_);
    if (!first_.empty()) throw std::runtime_error(first_);
  }

 private:
  std::mutex mutex_;
  std::string first_;
};

// Runs `body(worker)` on `workers` threads and prints progress of `done`
// every kProgressEvery until they end. Returns the seconds taken.
double runPhase(const std::string& name, int workers, uint64_t total,
                const std::atomic<uint64_t>& done, const std::function<void(int)>& body,
                Failures& failures) {
  const auto start = Clock::now();
  std::atomic<int> running{workers};
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        body(w);
      } catch (const kj::Exception& e) {
        failures.note(name + ": " + e.getDescription().cStr());
      } catch (const std::exception& e) {
        failures.note(name + ": " + e.what());
      }
      --running;
    });
  }
  auto nextProgress = start + kProgressEvery;
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (Clock::now() >= nextProgress) {
      nextProgress += kProgressEvery;
      const uint64_t n = done.load();
      std::cerr << "locus-bench: " << name << " " << n << "/" << total << ", "
                << static_cast<uint64_t>(static_cast<double>(n) / secondsSince(start)) << "/s\n";
    }
  }
  for (auto& t : threads) t.join();
  const double seconds = secondsSince(start);
  failures.throwIfAny();
  return seconds;
}

// One worker's connections to the gateway's Ingest and the server's
// LocationService, on one KJ event loop: create and use it on one thread.
class LocusSession final : public Session {
 public:
  LocusSession(const std::string& gateway, const std::string& server, const Deadline& deadline)
      : gateway_(gateway), server_(server), deadline_(deadline) {}

  // Batches of kBatchReports with up to kCallsInFlight calls pipelined.
  void send(uint64_t count, const bench::NextMove& moves, const Fleet& fleet,
            std::atomic<uint64_t>& done) override {
    capnp::EzRpcClient& client = connected(ingestClient_, gateway_);
    auto ingest = client.getMain<wire::Ingest>();
    auto& waitScope = client.getWaitScope();
    auto& timer = client.getIoProvider().getTimer();
    struct InFlight {
      kj::Promise<capnp::Response<wire::Ingest::ReportResults>> reply;
      uint32_t size;
    };
    std::deque<InFlight> inFlight;
    const auto settleOldest = [&] {
      InFlight call = kj::mv(inFlight.front());
      inFlight.pop_front();
      auto response = timer.timeoutAfter(kCallTimeout, kj::mv(call.reply)).wait(waitScope);
      const BatchOutcome outcome = readBatchOutcome(response.getResult());
      if (!outcome.rejected.empty())
        throw std::runtime_error("the gateway rejected a report: " + outcome.rejected[0].second);
      if (outcome.accepted != call.size)
        throw std::runtime_error("the gateway accepted " + std::to_string(outcome.accepted) +
                                 " of " + std::to_string(call.size) + " reports");
      done += call.size;
    };
    for (uint64_t k = 0; k < count;) {
      deadline_.check("ingest");
      const auto n = static_cast<uint32_t>(std::min<uint64_t>(kBatchReports, count - k));
      auto request = ingest.reportRequest();
      auto reports = request.initBatch().initReports(n);
      for (uint32_t j = 0; j < n; ++j) writeDevice(fleet, moves(k + j), reports[j]);
      inFlight.push_back(InFlight{request.send(), n});
      k += n;
      if (inFlight.size() >= kCallsInFlight) settleOldest();
    }
    while (!inFlight.empty()) settleOldest();
  }

  NearestAnswer nearest(geo::LatLon center, uint32_t k) override {
    deadline_.check("queries");
    capnp::EzRpcClient& client = connected(queryClient_, server_);
    auto request = client.getMain<wire::LocationService>().nearestRequest();
    writeNearestQuery(NearestQuery{.center = center, .k = k}, request.initQuery());
    auto response = client.getIoProvider()
                        .getTimer()
                        .timeoutAfter(kCallTimeout, request.send())
                        .wait(client.getWaitScope());
    if (response.hasError())
      throw std::runtime_error("nearest: " + readError(response.getError()).message);
    return readAnswer(response.getResult());
  }

  void startNearest(geo::LatLon center, uint32_t k, Answered answered) override {
    capnp::EzRpcClient& client = connected(queryClient_, server_);
    auto request = client.getMain<wire::LocationService>().nearestRequest();
    writeNearestQuery(NearestQuery{.center = center, .k = k}, request.initQuery());
    openLoop().tasks.add(
        request.send().then([answered = std::move(answered)](
                                capnp::Response<wire::LocationService::NearestResults>&& response) {
          if (response.hasError())
            throw std::runtime_error("nearest: " + readError(response.getError()).message);
          answered(readAnswer(response.getResult()));
        }));
  }

  void awaitAnswers(Clock::time_point until) override {
    OpenLoop& loop = openLoop();
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count();
    itimerspec at{};
    at.it_value = {static_cast<time_t>(ns / 1'000'000'000),
                   std::max(1L, static_cast<long>(ns % 1'000'000'000))};  // zero disarms
    if (timerfd_settime(loop.timerFd, TFD_TIMER_ABSTIME, &at, nullptr) != 0)
      throw std::runtime_error("timerfd_settime failed");
    uint64_t expirations = 0;
    loop.timer->read(&expirations, sizeof expirations).wait(queryClient_->getWaitScope());
    if (loop.failure) {
      kj::Exception failure = kj::mv(*loop.failure);
      loop.failure.reset();
      kj::throwFatalException(kj::mv(failure));
    }
  }

 private:
  // The open loop's state on this thread's event loop: its queries in
  // flight, and a timerfd read through the loop, which wakes it to the
  // microsecond where KJ's own timer rounds up to milliseconds.
  struct OpenLoop final : kj::TaskSet::ErrorHandler {
    explicit OpenLoop(capnp::EzRpcClient& client)
        : timerFd(newTimerFd()),
          timer(client.getLowLevelIoProvider().wrapInputFd(
              timerFd, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                           kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK |
                           kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC)) {}
    static int newTimerFd() {
      const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
      if (fd < 0) throw std::runtime_error("timerfd_create failed");
      return fd;
    }
    void taskFailed(kj::Exception&& exception) override {
      if (!failure) failure.emplace(kj::mv(exception));
    }
    int timerFd;
    kj::Own<kj::AsyncInputStream> timer;
    std::optional<kj::Exception> failure;  // the first query that failed
    kj::TaskSet tasks{*this};              // destroyed first: abandons the queries in flight
  };

  OpenLoop& openLoop() {
    if (!openLoop_) openLoop_ = std::make_unique<OpenLoop>(connected(queryClient_, server_));
    return *openLoop_;
  }

  static NearestAnswer readAnswer(wire::QueryResult::Reader result) {
    NearestAnswer answer;
    answer.partial = result.getPartial();
    answer.hits = readQueryResult(result).hits;
    return answer;
  }

  static void writeDevice(const Fleet& fleet, Move m, wire::Report::Builder r) {
    char id[32] = "bench-";
    const auto end = std::to_chars(id + 6, id + sizeof id, m.device).ptr;
    r.setId(capnp::Text::Reader(id, static_cast<size_t>(end - id)));
    r.setLat(fleet.positions[m.device].lat);
    r.setLon(fleet.positions[m.device].lon);
    r.setTsMs(m.tsMs);
  }

  // The first client made on this thread owns the event loop; a second one
  // shares it (EzRpcClient reuses the thread's EzRpc context).
  static capnp::EzRpcClient& connected(std::unique_ptr<capnp::EzRpcClient>& client,
                                       const std::string& address) {
    if (!client) client = std::make_unique<capnp::EzRpcClient>(address);
    return *client;
  }

  std::string gateway_, server_;
  const Deadline& deadline_;
  std::unique_ptr<capnp::EzRpcClient> ingestClient_, queryClient_;
  std::unique_ptr<OpenLoop> openLoop_;  // after the clients: destroyed before them
};

// A running Locus cluster, or one this process spawned (`spawned`, then its
// units' RSS is measured too).
class LocusBackend final : public Backend {
 public:
  LocusBackend(std::string gateway, std::string server, const SpawnedCluster* spawned,
               const Deadline& deadline)
      : gateway_(std::move(gateway)),
        server_(std::move(server)),
        spawned_(spawned),
        deadline_(deadline) {}

  std::string name() const override { return "locus"; }
  std::unique_ptr<Session> connect() override {
    return std::make_unique<LocusSession>(gateway_, server_, deadline_);
  }
  Totals totals() override { return clusterTotals(server_); }
  Totals waitForReports(uint64_t reportsSeen, const std::string& phase) override {
    return ::waitForReports(server_, reportsSeen, deadline_, phase);
  }
  uint64_t rssBytes() override { return spawned_ != nullptr ? spawned_->unitsRssBytes() : 0; }
  bool exact() const override { return true; }

 private:
  std::string gateway_, server_;
  const SpawnedCluster* spawned_;
  const Deadline& deadline_;
};

struct Sample {
  geo::LatLon center;
  std::vector<Hit> hits;
};

struct QueryOutcome {
  bench::Histogram latencyNs;
  uint64_t partial = 0;
  std::vector<Sample> samples;
};

// Nearest-kK queries one at a time over one session, each timed from request
// to answer; keeps the first `keep` whole answers for the brute-force check.
QueryOutcome runQueries(Backend& backend, uint64_t count, size_t keep, uint64_t seed,
                        std::atomic<uint64_t>& done) {
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  QueryOutcome out;
  for (uint64_t n = 0; n < count; ++n) {
    const geo::LatLon center = randomPoint(rng);
    const auto start = Clock::now();
    NearestAnswer answer = session->nearest(center, kK);
    out.latencyNs.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
    if (answer.partial) ++out.partial;
    if (out.samples.size() < keep && !answer.partial)
      out.samples.push_back(Sample{center, std::move(answer.hits)});
    ++done;
  }
  return out;
}

uint64_t nanos(Clock::duration d) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// One connection's share of the open loop. A query is "late" when the
// in-flight bound held it back; "dropped" when held past kMaxSendLag;
// "unanswered" when still in flight kOpenLoopDrain after the schedule.
struct OpenLoopOutcome {
  bench::Histogram latencyNs;  // scheduled send time to answer, answered queries
  bench::Histogram sendLagNs;  // scheduled to actual send time, sent queries
  uint64_t scheduled = 0, sent = 0, answered = 0, late = 0, dropped = 0, unanswered = 0,
           partial = 0;

  void merge(const OpenLoopOutcome& o) {
    latencyNs.merge(o.latencyNs);
    sendLagNs.merge(o.sendLagNs);
    scheduled += o.scheduled;
    sent += o.sent;
    answered += o.answered;
    late += o.late;
    dropped += o.dropped;
    unanswered += o.unanswered;
    partial += o.partial;
  }
};

// Nearest-kK queries over one session at Poisson arrivals of `ratePerS` for
// `windowS` seconds, whether or not earlier ones have been answered, each
// timed from its scheduled send time (so a slow answer that holds back
// later queries shows in their latency too: no coordinated omission). At
// most `maxInFlight` in flight. Answers must hold `wantHits` hits (when not
// 0), nearest first.
OpenLoopOutcome runOpenLoopQueries(Backend& backend, double ratePerS, double windowS,
                                   size_t maxInFlight, uint64_t seed, size_t wantHits,
                                   std::atomic<uint64_t>& done) {
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake at the due time, not up to 50 us after
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  session->nearest(randomPoint(rng), kK);  // connect before the schedule starts
  OpenLoopOutcome out;
  std::optional<std::string> problem;
  size_t inFlight = 0;
  const auto answered = [&](Clock::time_point due) {
    return [&, due](NearestAnswer&& answer) {
      out.latencyNs.record(nanos(Clock::now() - due));
      --inFlight;
      ++out.answered;
      ++done;
      if (answer.partial) {
        ++out.partial;
        return;
      }
      if (wantHits > 0 && answer.hits.size() != wantHits && !problem)
        problem = "an open-loop answer held " + std::to_string(answer.hits.size()) +
                  " hits, expected " + std::to_string(wantHits);
      for (size_t j = 1; j < answer.hits.size(); ++j) {
        if (answer.hits[j].distanceM < answer.hits[j - 1].distanceM && !problem)
          problem = "an open-loop answer is not nearest first";
      }
    };
  };

  std::exponential_distribution<double> gapS(ratePerS);
  const auto start = Clock::now(), end = start + seconds(windowS);
  double dueS = gapS(rng);
  bool held = false;                           // the next query has waited for a free slot
  auto releasedAt = Clock::time_point::min();  // the bound last let a held query go
  while (dueS < windowS) {
    const auto due = start + seconds(dueS);
    const auto now = Clock::now();
    if (due > now) {
      session->awaitAnswers(due);
      continue;
    }
    if (inFlight >= maxInFlight && now - due < kMaxSendLag) {
      held = true;
      session->awaitAnswers(now + kHeldPoll);
      continue;
    }
    ++out.scheduled;
    if (inFlight >= maxInFlight) {
      ++out.dropped;
    } else {
      if (held) releasedAt = now;
      out.late += held || due < releasedAt ? 1 : 0;
      out.sendLagNs.record(nanos(now - due));
      ++inFlight;
      ++out.sent;
      session->startNearest(randomPoint(rng), kK, answered(due));
    }
    held = false;
    dueS += gapS(rng);
  }
  const auto drainUntil = std::max(Clock::now(), end) + kOpenLoopDrain;
  while (inFlight > 0 && Clock::now() < drainUntil)
    session->awaitAnswers(std::min(Clock::now() + kDrainStep, drainUntil));
  out.unanswered = inFlight;  // abandoned with the session
  if (problem) throw std::runtime_error(*problem);
  return out;
}

struct UpdateOutcome {
  uint64_t reports = 0;  // acknowledged
  double seconds = 0;    // from the first tick to the last acknowledgement
};

// Moves random devices at `ratePerS` reports/s for `windowS` seconds over
// one session, in a batch every kUpdateTick (catching up when behind), with
// tsMs counting up from `firstTsMs`. The only writer of `fleet` meanwhile.
UpdateOutcome runOpenLoopUpdates(Backend& backend, Fleet& fleet, double ratePerS, double windowS,
                                 int64_t firstTsMs, uint64_t seed, std::atomic<uint64_t>& done) {
  const std::unique_ptr<Session> session = backend.connect();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<uint64_t> pick(0, fleet.positions.size() - 1);
  const auto start = Clock::now(), end = start + seconds(windowS);
  uint64_t sent = 0;
  for (auto tick = start; Clock::now() < end;) {
    tick += kUpdateTick;
    std::this_thread::sleep_until(std::min(tick, end));
    const double elapsedS = std::min(windowS, secondsSince(start));
    const auto due = static_cast<uint64_t>(ratePerS * elapsedS);
    if (due <= sent) continue;
    session->send(
        due - sent,
        [&](uint64_t k) {
          const uint64_t i = pick(rng);
          fleet.positions[i] = moved(fleet.positions[i], rng);
          return Move{i, firstTsMs + static_cast<int64_t>(sent + k)};
        },
        fleet, done);
    sent = due;
  }
  return UpdateOutcome{.reports = sent, .seconds = secondsSince(start)};
}

// The k nearest devices of `center` by (distance, id), by scanning all.
std::vector<Hit> bruteForceNearest(const Fleet& fleet, geo::LatLon center, uint32_t k) {
  const geo::DistanceFrom from(center);
  std::vector<std::pair<double, uint64_t>> all(fleet.positions.size());
  for (uint64_t i = 0; i < all.size(); ++i) all[i] = {from.metres(fleet.positions[i]), i};
  const auto take = std::min<size_t>(k, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(take), all.end(),
                    [](const auto& a, const auto& b) {
                      if (a.first != b.first) return a.first < b.first;
                      return deviceId(a.second) < deviceId(b.second);
                    });
  std::vector<Hit> hits;
  for (size_t j = 0; j < take; ++j) {
    const auto& [distanceM, i] = all[j];
    hits.push_back(Hit{.id = deviceId(i),
                       .lat = fleet.positions[i].lat,
                       .lon = fleet.positions[i].lon,
                       .distanceM = distanceM});
  }
  return hits;
}

// Why `got` is not the exact answer `want`, or nothing.
std::optional<std::string> compareHits(const std::vector<Hit>& got, const std::vector<Hit>& want) {
  if (got.size() != want.size())
    return std::to_string(got.size()) + " hits, expected " + std::to_string(want.size());
  for (size_t j = 0; j < got.size(); ++j) {
    const Hit& g = got[j];
    const Hit& w = want[j];
    const bool same = g.id == w.id && g.lat == w.lat && g.lon == w.lon &&
                      std::abs(g.distanceM - w.distanceM) <= 1e-6;
    if (!same) {
      std::ostringstream why;
      why.precision(10);
      why << "hit " << j << " is " << g.id << " (" << g.lat << ", " << g.lon << ") at "
          << g.distanceM << " m, expected " << w.id << " (" << w.lat << ", " << w.lon << ") at "
          << w.distanceM << " m";
      return why.str();
    }
  }
  return std::nullopt;
}

// ------------------------------------------------------------------ report

struct PhaseResult {
  uint64_t count = 0;
  double ackedSeconds = 0;    // until the last call was answered
  double appliedSeconds = 0;  // until the units' counters showed every report
};

struct OpenLoopResult {
  bool ran = false;
  double targetPerS = 0;      // queries/s asked for
  double closedLoopPerS = 0;  // phase 3's rate it is a fraction of; 0 for a fixed rate
  double seconds = 0;         // length of the schedule
  OpenLoopOutcome queries;
  double updateTargetPerS = 0;
  UpdateOutcome updates;
};

struct RunResult {
  PhaseResult load, updates;
  OpenLoopResult openLoop;
  double querySeconds = 0;
  QueryOutcome queries;
  Totals totals;
  uint64_t rssBytes = 0;  // spawned units' sum, Redis' growth; 0 for an external cluster
  size_t checkedSamples = 0;
};

double perSecond(double count, double seconds) {
  return seconds > 0 ? count / seconds : 0;
}

double us(uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

json toJson(const Options& o, const std::string& system, const RunResult& r) {
  const auto& h = r.queries.latencyNs;
  const auto perDevice = [&](uint64_t bytes) {
    return r.totals.devices > 0 ? static_cast<double>(bytes) / static_cast<double>(r.totals.devices)
                                : 0.0;
  };
  const auto phase = [](const PhaseResult& p) {
    return json{
        {"reports", p.count},
        {"acked_seconds", p.ackedSeconds},
        {"reports_per_s", perSecond(static_cast<double>(p.count), p.ackedSeconds)},
        {"applied_seconds", p.appliedSeconds},
        {"applied_reports_per_s", perSecond(static_cast<double>(p.count), p.appliedSeconds)}};
  };
  json memory{{"units", r.totals.shardsTotal},
              {"index_bytes", r.totals.memoryBytes},
              {"index_bytes_per_device", perDevice(r.totals.memoryBytes)}};
  if (r.rssBytes > 0) {
    memory["rss_bytes"] = r.rssBytes;
    memory["rss_bytes_per_device"] = perDevice(r.rssBytes);
  }
  const auto latency = [](const bench::Histogram& h) {
    return json{{"p50", us(h.percentile(50))}, {"p90", us(h.percentile(90))},
                {"p99", us(h.percentile(99))}, {"p99_9", us(h.percentile(99.9))},
                {"max", us(h.max())},          {"mean", h.mean() / 1000.0}};
  };
  json openLoop = nullptr;  // null: no phase 4
  if (r.openLoop.ran) {
    const OpenLoopResult& ol = r.openLoop;
    const OpenLoopOutcome& q = ol.queries;
    openLoop = json{
        {"seconds", ol.seconds},
        {"target_queries_per_s", ol.targetPerS},
        {"closed_loop_queries_per_s", ol.closedLoopPerS},
        {"in_flight_per_connection", o.openLoopInFlight},
        {"scheduled", q.scheduled},
        {"sent", q.sent},
        {"answered", q.answered},
        {"late", q.late},
        {"dropped", q.dropped},
        {"unanswered", q.unanswered},
        {"partial", q.partial},
        {"queries_per_s", perSecond(static_cast<double>(q.answered), ol.seconds)},
        {"latency_us", latency(q.latencyNs)},
        {"send_lag_us", {{"p99", us(q.sendLagNs.percentile(99))}, {"max", us(q.sendLagNs.max())}}},
        {"updates",
         {{"target_reports_per_s", ol.updateTargetPerS},
          {"reports", ol.updates.reports},
          {"seconds", ol.updates.seconds},
          {"reports_per_s",
           perSecond(static_cast<double>(ol.updates.reports), ol.updates.seconds)}}}};
  }
  return json{
      {"system", system},
      {"devices", o.devices},
      {"concurrency", o.concurrency},
      {"seed", o.seed},
      {"load", phase(r.load)},
      {"updates", phase(r.updates)},
      {"queries",
       {{"count", h.count()},
        {"seconds", r.querySeconds},
        {"queries_per_s", perSecond(static_cast<double>(h.count()), r.querySeconds)},
        {"partial", r.queries.partial},
        {"latency_us", latency(h)}}},
      {"open_loop", openLoop},
      {"memory", memory},
      {"checks", {{"device_count", r.totals.devices}, {"nearest_checked", r.checkedSamples}}}};
}

std::string fixed(double v, int decimals) {
  std::ostringstream s;
  s.setf(std::ios::fixed);
  s.precision(decimals);
  s << v;
  return s.str();
}

void printTable(std::ostream& out, const Options& o, const std::string& system,
                const RunResult& r) {
  const auto& h = r.queries.latencyNs;
  std::vector<std::pair<std::string, std::string>> rows;
  const auto phase = [&](const std::string& name, const PhaseResult& p) {
    rows.emplace_back(name + " reports", std::to_string(p.count));
    rows.emplace_back(name + " acked reports/s",
                      fixed(perSecond(static_cast<double>(p.count), p.ackedSeconds), 0) + "  (" +
                          fixed(p.ackedSeconds, 2) + " s)");
    rows.emplace_back(name + " applied reports/s",
                      fixed(perSecond(static_cast<double>(p.count), p.appliedSeconds), 0) + "  (" +
                          fixed(p.appliedSeconds, 2) + " s)");
  };
  rows.emplace_back("system", system);
  rows.emplace_back("units / concurrency",
                    std::to_string(r.totals.shardsTotal) + " / " + std::to_string(o.concurrency));
  phase("load", r.load);
  phase("update", r.updates);
  rows.emplace_back("nearest-10 queries", std::to_string(h.count()) + "  (" +
                                              std::to_string(r.queries.partial) + " partial)");
  rows.emplace_back("queries/s",
                    fixed(perSecond(static_cast<double>(h.count()), r.querySeconds), 0) + "  (" +
                        fixed(r.querySeconds, 2) + " s)");
  rows.emplace_back("latency p50 / p90 (us)",
                    fixed(us(h.percentile(50)), 1) + " / " + fixed(us(h.percentile(90)), 1));
  rows.emplace_back("latency p99 / p99.9 (us)",
                    fixed(us(h.percentile(99)), 1) + " / " + fixed(us(h.percentile(99.9)), 1));
  rows.emplace_back("latency max (us)", fixed(us(h.max()), 1));
  if (r.openLoop.ran) {
    const OpenLoopResult& ol = r.openLoop;
    const OpenLoopOutcome& q = ol.queries;
    const auto& l = q.latencyNs;
    rows.emplace_back(
        "open loop target queries/s",
        fixed(ol.targetPerS, 0) + (ol.closedLoopPerS > 0
                                       ? "  (" + fixed(100 * ol.targetPerS / ol.closedLoopPerS, 0) +
                                             "% of " + fixed(ol.closedLoopPerS, 0) + " closed loop)"
                                       : ""));
    rows.emplace_back("open loop queries/s",
                      fixed(perSecond(static_cast<double>(q.answered), ol.seconds), 0) + "  (" +
                          std::to_string(q.answered) + " answered in " + fixed(ol.seconds, 2) +
                          " s)");
    rows.emplace_back("open loop late / dropped",
                      std::to_string(q.late) + " / " + std::to_string(q.dropped) + "  (" +
                          std::to_string(q.unanswered) + " unanswered, " +
                          std::to_string(q.partial) + " partial)");
    rows.emplace_back("open loop p50 / p90 (us)",
                      fixed(us(l.percentile(50)), 1) + " / " + fixed(us(l.percentile(90)), 1));
    rows.emplace_back("open loop p99 / p99.9 (us)",
                      fixed(us(l.percentile(99)), 1) + " / " + fixed(us(l.percentile(99.9)), 1));
    rows.emplace_back("open loop max / send lag p99 (us)",
                      fixed(us(l.max()), 1) + " / " + fixed(us(q.sendLagNs.percentile(99)), 1));
    rows.emplace_back(
        "open loop updates/s",
        fixed(perSecond(static_cast<double>(ol.updates.reports), ol.updates.seconds), 0) +
            "  (target " + fixed(ol.updateTargetPerS, 0) + ")");
  }
  rows.emplace_back("devices (stats)", std::to_string(r.totals.devices));
  rows.emplace_back(system == "redis" ? "used_memory growth bytes/device" : "index bytes/device",
                    fixed(static_cast<double>(r.totals.memoryBytes) /
                              static_cast<double>(std::max<uint64_t>(1, r.totals.devices)),
                          1));
  if (r.rssBytes > 0) {
    rows.emplace_back(system == "redis" ? "RSS growth bytes/device" : "units RSS bytes/device",
                      fixed(static_cast<double>(r.rssBytes) /
                                static_cast<double>(std::max<uint64_t>(1, r.totals.devices)),
                            1) +
                          "  (" + fixed(static_cast<double>(r.rssBytes) / (1 << 20), 1) + " MiB)");
  }
  rows.emplace_back("nearest answers checked", std::to_string(r.checkedSamples) + " exact");
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, value] : rows)
    out << name << std::string(width + 2 - name.size(), ' ') << value << "\n";
}

// ------------------------------------------------------------------- run

RunResult run(const Options& o, Backend& backend, const Deadline& deadline) {
  RunResult r;
  Failures failures;
  const int workers = o.concurrency;

  std::mt19937_64 rng(o.seed);
  Fleet fleet;
  fleet.workers = workers;
  fleet.positions.resize(o.devices);
  for (auto& p : fleet.positions) p = randomPoint(rng);
  // Every report of a device carries a newer tsMs than the one before; all
  // are in the past.
  const uint64_t updatesPerWorker =
      (o.updates + static_cast<uint64_t>(workers) - 1) / static_cast<uint64_t>(workers);
  const auto openLoopRate = *parseOpenLoopRate(o.openLoopRate);
  const auto openLoopUpdates =
      openLoopRate.on() ? static_cast<uint64_t>(o.openLoopUpdateRate * o.openLoopSeconds) + 1 : 0;
  fleet.baseTsMs = wallClockMs() - static_cast<int64_t>(updatesPerWorker + openLoopUpdates) - 1000;

  const Totals before = backend.totals();

  // Phase 1: load.
  std::atomic<uint64_t> loaded{0};
  auto start = Clock::now();
  r.load.count = o.devices;
  r.load.ackedSeconds = runPhase(
      "load", workers, o.devices, loaded,
      [&](int w) {
        const uint64_t first = fleet.firstOf(w), last = fleet.firstOf(w + 1);
        backend.connect()->send(
            last - first,
            [&](uint64_t k) {
              return Move{first + k, fleet.baseTsMs};
            },
            fleet, loaded);
      },
      failures);
  r.totals = backend.waitForReports(before.reportsSeen + o.devices, "load");
  r.load.appliedSeconds = secondsSince(start);
  const uint64_t expectedDevices = before.devices == 0 ? o.devices : before.devices;
  const auto checkDevices = [&](const Totals& totals, const std::string& when) {
    const bool ok = before.devices == 0 ? totals.devices == o.devices : totals.devices >= o.devices;
    if (!ok)
      throw std::runtime_error("after " + when + " the cluster holds " +
                               std::to_string(totals.devices) + " devices, expected " +
                               std::to_string(expectedDevices));
  };
  checkDevices(r.totals, "loading");

  // Phase 2: updates. Worker w moves only its own devices.
  std::atomic<uint64_t> updated{0};
  start = Clock::now();
  r.updates.count = o.updates;
  r.updates.ackedSeconds = runPhase(
      "updates", workers, o.updates, updated,
      [&](int w) {
        const uint64_t first = fleet.firstOf(w), last = fleet.firstOf(w + 1);
        const uint64_t mine =
            std::min(updatesPerWorker, o.updates - std::min(o.updates, updatesPerWorker * w));
        std::mt19937_64 local(o.seed * 7919 + static_cast<uint64_t>(w) + 1);
        std::uniform_int_distribution<uint64_t> pick(first, last - 1);
        backend.connect()->send(
            mine,
            [&](uint64_t k) {
              const uint64_t i = pick(local);
              fleet.positions[i] = moved(fleet.positions[i], local);
              return Move{i, fleet.baseTsMs + 1 + static_cast<int64_t>(k)};
            },
            fleet, updated);
      },
      failures);
  r.totals = backend.waitForReports(before.reportsSeen + o.devices + o.updates, "updates");
  r.updates.appliedSeconds = secondsSince(start);
  checkDevices(r.totals, "the updates");

  // Phase 3: queries, one at a time per client.
  std::atomic<uint64_t> queried{0};
  std::vector<QueryOutcome> outcomes(static_cast<size_t>(workers));
  const size_t keepPerWorker =
      (kSampleQueries + static_cast<size_t>(workers) - 1) / static_cast<size_t>(workers);
  r.querySeconds = runPhase(
      "queries", workers, o.queries, queried,
      [&](int w) {
        const uint64_t count = o.queries * static_cast<uint64_t>(w + 1) / workers -
                               o.queries * static_cast<uint64_t>(w) / workers;
        outcomes[static_cast<size_t>(w)] = runQueries(
            backend, count, keepPerWorker, o.seed * 104729 + static_cast<uint64_t>(w), queried);
      },
      failures);
  std::vector<Sample> samples;
  for (auto& outcome : outcomes) {
    r.queries.latencyNs.merge(outcome.latencyNs);
    r.queries.partial += outcome.partial;
    for (auto& s : outcome.samples) {
      if (samples.size() < kSampleQueries) samples.push_back(std::move(s));
    }
  }
  if (r.queries.partial > 0)
    throw std::runtime_error(std::to_string(r.queries.partial) +
                             " nearest answers were partial (a unit missed the deadline)");

  // Memory, while the system still holds everything.
  r.totals = backend.totals();
  r.rssBytes = backend.rssBytes();

  // Self-check: sampled answers against a brute-force scan, only valid when
  // the system holds nothing but this run's devices and answers exactly.
  if (!backend.exact()) {
    std::cerr << "locus-bench: " << backend.name()
              << " answers approximately: skipping the brute-force check\n";
  } else if (before.devices == 0) {
    std::vector<std::optional<std::string>> problems(samples.size());
    std::vector<std::thread> checkers;
    for (int w = 0; w < workers; ++w) {
      checkers.emplace_back([&, w] {
        for (size_t s = static_cast<size_t>(w); s < samples.size();
             s += static_cast<size_t>(workers)) {
          if (deadline.passed()) {
            problems[s] = "--max-seconds passed during the check";
            continue;
          }
          problems[s] =
              compareHits(samples[s].hits, bruteForceNearest(fleet, samples[s].center, kK));
        }
      });
    }
    for (auto& t : checkers) t.join();
    for (size_t s = 0; s < samples.size(); ++s) {
      if (problems[s]) {
        std::ostringstream why;
        why.precision(10);
        why << "nearest at (" << samples[s].center.lat << ", " << samples[s].center.lon
            << ") is wrong: " << *problems[s];
        throw std::runtime_error(why.str());
      }
    }
    r.checkedSamples = samples.size();
  } else {
    std::cerr << "locus-bench: the cluster held " << before.devices
              << " devices before the run: skipping the brute-force check\n";
  }
  if (!openLoopRate.on()) return r;

  // Phase 4: the open loop. Queries on a Poisson schedule from every
  // connection, one more connection streaming updates at a fixed rate.
  OpenLoopResult& ol = r.openLoop;
  ol.ran = true;
  ol.seconds = o.openLoopSeconds;
  ol.closedLoopPerS =
      openLoopRate.ofClosedLoop > 0
          ? perSecond(static_cast<double>(r.queries.latencyNs.count()), r.querySeconds)
          : 0;
  ol.targetPerS = openLoopRate.ofClosedLoop > 0 ? openLoopRate.ofClosedLoop * ol.closedLoopPerS
                                                : openLoopRate.perS;
  ol.updateTargetPerS = o.openLoopUpdateRate;
  if (!(ol.targetPerS > 0)) throw std::runtime_error("the open loop's query rate came out 0");
  if (Clock::now() + seconds(ol.seconds) + kOpenLoopDrain > deadline.at())
    throw std::runtime_error(
        "--max-seconds would pass during the open loop: raise it or lower "
        "--open-loop-seconds");
  std::cerr << "locus-bench: open loop at " << fixed(ol.targetPerS, 0) << " queries/s and "
            << fixed(ol.updateTargetPerS, 0) << " reports/s for " << ol.seconds << " s\n";
  std::atomic<uint64_t> answered{0}, openLoopUpdated{0};
  std::vector<OpenLoopOutcome> openOutcomes(static_cast<size_t>(workers));
  const bool updating = ol.updateTargetPerS > 0;
  const int64_t firstTsMs = fleet.baseTsMs + static_cast<int64_t>(updatesPerWorker) + 1;
  const size_t wantHits = backend.exact() ? std::min<size_t>(kK, o.devices) : 0;
  runPhase(
      "open loop", workers + (updating ? 1 : 0), static_cast<uint64_t>(ol.targetPerS * ol.seconds),
      answered,
      [&](int w) {
        if (w == workers) {
          ol.updates = runOpenLoopUpdates(backend, fleet, ol.updateTargetPerS, ol.seconds,
                                          firstTsMs, o.seed * 15485863, openLoopUpdated);
          return;
        }
        openOutcomes[static_cast<size_t>(w)] = runOpenLoopQueries(
            backend, ol.targetPerS / workers, ol.seconds, static_cast<size_t>(o.openLoopInFlight),
            o.seed * 1299709 + static_cast<uint64_t>(w), wantHits, answered);
      },
      failures);
  for (const auto& outcome : openOutcomes) ol.queries.merge(outcome);
  const Totals after = backend.waitForReports(
      before.reportsSeen + o.devices + o.updates + ol.updates.reports, "the open loop");
  checkDevices(after, "the open loop");
  const OpenLoopOutcome& q = ol.queries;
  if (q.late + q.dropped + q.unanswered + q.partial > 0)
    std::cerr << "locus-bench: open loop: " << q.late << " queries late, " << q.dropped
              << " dropped, " << q.unanswered << " unanswered, " << q.partial
              << " partial: the rate is beyond what the system sustains here\n";
  return r;
}

int fail(const std::string& message) {
  std::cerr << "locus-bench: FAILED: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"locus-bench: load a Locus cluster with the SPEC's city workload and measure it"};
  Options o;
  addFlag(app, "--gateway", o.gateway, "HOST:PORT of a running gateway's Ingest RPC");
  addFlag(app, "--server", o.server, "HOST:PORT of a running server's LocationService");
  addFlag(
      app, "--spawn-units", o.spawnUnits,
      "start N units, a gateway and a server on 127.0.0.1 instead (0 = use --gateway/--server)");
  addFlag(app, "--redis", o.redis,
          "HOST:PORT of a scratch redis-server: run the same workload against Redis GEO "
          "(deletes the key " +
              std::string(bench::kRedisKey) + ")");
  addFlag(app, "--devices", o.devices, "devices to load (phase 1)");
  addFlag(app, "--updates", o.updates, "position updates at full rate (phase 2)");
  addFlag(app, "--queries", o.queries, "nearest-10 queries (phase 3)");
  addFlag(app, "--concurrency", o.concurrency, "connections (threads) per phase");
  addFlag(app, "--seed", o.seed, "random seed");
  app.add_flag("--json", o.json, "print one JSON object instead of the table");
  addFlag(app, "--max-seconds", o.maxSeconds, "bound on the whole run, seconds");
  addFlag(app, "--open-loop-rate", o.openLoopRate,
          "phase 4: nearest-10 queries/s on a Poisson schedule while updates continue; \"half\" "
          "= half the queries/s of phase 3; 0 = no phase 4");
  addFlag(app, "--open-loop-seconds", o.openLoopSeconds, "length of phase 4's query schedule");
  addFlag(app, "--open-loop-update-rate", o.openLoopUpdateRate,
          "reports/s sent during phase 4 (0 = none)");
  addFlag(app, "--open-loop-in-flight", o.openLoopInFlight,
          "bound on phase 4's queries in flight per connection; a query held back more than 1 s "
          "is dropped");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (auto e = o.validate()) return fail(*e);

  const Deadline deadline(o.maxSeconds);
  // Beyond the deadline and a grace period, stop hard: a wait that ignores
  // the deadline must not hang the run. Spawned processes die with us.
  std::thread([limit = o.maxSeconds] {
    std::this_thread::sleep_for(std::chrono::duration<double>(limit + 30));
    std::cerr << "locus-bench: FAILED: still running " << limit + 30 << " s after start\n";
    std::_Exit(3);
  }).detach();

  try {
    std::unique_ptr<SpawnedCluster> cluster;
    std::string gateway = o.gateway, server = o.server;
    if (o.spawnUnits > 0) {
      cluster = std::make_unique<SpawnedCluster>(o.spawnUnits, deadline);
      gateway = cluster->gatewayAddress();
      server = cluster->serverAddress();
      std::cerr << "locus-bench: started " << o.spawnUnits << " units, gateway " << gateway
                << ", server " << server << "\n";
    }
    std::unique_ptr<Backend> backend;
    if (!o.redis.empty()) {
      backend = bench::makeRedisBackend(o.redis, deadline);
    } else {
      backend = std::make_unique<LocusBackend>(gateway, server, cluster.get(), deadline);
    }
    const RunResult result = run(o, *backend, deadline);
    if (o.json) {
      std::cout << toJson(o, backend->name(), result).dump() << "\n";
    } else {
      printTable(std::cout, o, backend->name(), result);
    }
    return 0;
  } catch (const kj::Exception& e) {
    return fail(e.getDescription().cStr());
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}
