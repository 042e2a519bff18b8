// Faults under load, with a recorder of what was acknowledged: at the end
// every acknowledged report's device must show that report or a newer one.
//
//   - the gateway killed -9 while `locus send` streams: it reconnects and
//     sends again what was not acknowledged;
//   - every unit killed -9 at once, with --data-dir and --fsync always;
//   - a unit stopped (SIGSTOP) for 5 s: its reports get errors, never an
//     ok; queries keep their deadline and say they are partial;
//   - a unit's data dir on a full filesystem (a small tmpfs): writes are
//     refused, nothing unstored is acknowledged, queries are still served.
//
// Replicas (a unit down while its partitions stay served) come with the
// replication work; these hold for one copy of each device.
#include <signal.h>
#include <sys/mount.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "locus/client/ingest_client.h"
#include "locus/client/query_client.h"
#include "locus/common/placement.h"
#include "locus/common/report_json.h"
#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/http.h"
#include "locus/testkit/placement.h"
#include "locus/testkit/temp_dir.h"
#include "locus/transport/unit_client.h"

namespace locus {
namespace {

using namespace std::chrono_literals;
using namespace testkit;

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The newest acknowledged ts of each device, "fault-<i>".
struct Recorder {
  explicit Recorder(size_t devices) : acked(devices, 0) {
    for (size_t i = 0; i < devices; ++i) ids.push_back("fault-" + std::to_string(i));
  }
  std::vector<std::string> ids;
  std::vector<int64_t> acked;

  // How many acknowledged reports a replica of their device does not show
  // at that ts or newer (every replica of each is asked).
  size_t missing(zmq::context_t& context, const std::vector<std::string>& units) const {
    std::vector<std::unique_ptr<transport::UnitClient>> clients;
    for (const auto& u : units)
      clients.push_back(std::make_unique<transport::UnitClient>(context, u, 2000ms));
    size_t missing = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (acked[i] == 0) continue;
      for (uint32_t u : unitsHolding(ids[i], static_cast<uint32_t>(units.size()))) {
        auto hit = clients[u]->get(ids[i]);
        if (!hit || hit->tsMs < acked[i]) ++missing;
      }
    }
    return missing;
  }
};

// Streams batches of moves through the gateway's Ingest from a thread of
// its own until `stop`, recording each acknowledged report.
class Load {
 public:
  Load(const std::string& gateway, Recorder& recorder, client::IngestClient::Options options)
      : thread_([this, gateway, &recorder, options] { run(gateway, recorder, options); }) {}
  ~Load() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t batches() const { return batches_; }
  const std::string& failure() const { return failure_; }

 private:
  void run(const std::string& gateway, Recorder& recorder, client::IngestClient::Options options) {
    try {
      client::IngestClient ingest(gateway, options);
      std::mt19937_64 rng(11);
      std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
      int64_t ts = kTsMs;
      for (size_t round = 0; !stop_; ++round) {
        std::vector<Report> batch;
        for (size_t j = 0; j < client::kBatchReports; ++j) {
          const size_t d = (round * client::kBatchReports + j) % recorder.ids.size();
          batch.push_back(
              Report{.id = recorder.ids[d], .lat = lat(rng), .lon = lon(rng), .tsMs = ++ts});
        }
        auto shared = std::make_shared<std::vector<Report>>(std::move(batch));
        ingest.send(
            shared->size(),
            [shared](size_t i, wire::Report::Builder out) { writeReport((*shared)[i], out); },
            [shared, &recorder, this](const BatchOutcome& outcome) {
              std::vector<bool> refused(shared->size());
              for (const auto& [index, reason] : outcome.rejected) refused[index] = true;
              for (size_t i = 0; i < shared->size(); ++i) {
                if (refused[i]) continue;
                const Report& r = (*shared)[i];
                const size_t d = std::stoul(std::string(r.id.substr(6)));
                recorder.acked[d] = std::max(recorder.acked[d], r.tsMs);
              }
              ++batches_;
            });
      }
      ingest.flush();
    } catch (const kj::Exception& e) {
      failure_ = e.getDescription().cStr();
    }
  }

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> batches_{0};
  std::string failure_;
  std::thread thread_;
};

// Devices the cluster holds (each is on every replica of its partition).
uint64_t devicesOn(zmq::context_t& context, const std::vector<std::string>& units) {
  uint64_t total = 0;
  for (const auto& u : units) {
    transport::UnitClient client(context, u, 1000ms);
    if (auto stats = client.stats()) total += stats->devices;
  }
  return total / defaultReplicas(static_cast<uint32_t>(units.size()));
}

// Waits (bounded) until every unit serves every partition: caught up.
bool awaitServing(zmq::context_t& context, const std::vector<std::string>& units,
                  std::chrono::milliseconds within = 20s) {
  const auto giveUp = std::chrono::steady_clock::now() + within;
  for (const auto& u : units) {
    transport::UnitClient client(context, u, 1000ms);
    for (;;) {
      auto stats = client.stats();
      if (stats && stats->notServing.empty() && !stats->copying) break;
      if (std::chrono::steady_clock::now() >= giveUp) return false;
      std::this_thread::sleep_for(50ms);
    }
  }
  return true;
}

// Nearest queries against the server from a thread of its own until
// stop(), counting answers, partial ones and the slowest.
class QueryLoad {
 public:
  explicit QueryLoad(const std::string& server) : thread_([this, server] { run(server); }) {}
  ~QueryLoad() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::atomic<uint64_t> answered{0}, partial{0}, slowestUs{0};
  std::string failure;  // read after stop()

 private:
  void run(const std::string& server) {
    try {
      client::QueryClient client(server, 10 * kj::SECONDS);
      while (!stop_) {
        const auto start = std::chrono::steady_clock::now();
        auto answer = client.nearest(NearestQuery{{31.25, 121.5}, 10});
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                            std::chrono::steady_clock::now() - start)
                            .count();
        slowestUs = std::max<uint64_t>(slowestUs, static_cast<uint64_t>(us));
        if (!answer) throw std::runtime_error(answer.error().message);
        ++answered;
        if (answer->partial) ++partial;
      }
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (const kj::Exception& e) {
      failure = e.getDescription().cStr();
    }
  }
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "the gateway killed -9 while locus send streams: it resends, nothing acknowledged is lost",
    "[faults]") {
  RunningUnit a, b;
  const std::vector<std::string> units{a.endpoint, b.endpoint};
  auto gateway = std::make_unique<RunningGateway>(units);
  const std::string address = gateway->rpcAddress;

  TempDir dir;
  constexpr size_t kReports = 300'000;
  {
    std::ofstream file(dir / "reports.ndjson");
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
    std::vector<std::string> ids;
    for (size_t i = 0; i < kReports; ++i) {
      const std::string id = "sent-" + std::to_string(i);
      file << reportToJsonLine(
                  Report{.id = id, .lat = lat(rng), .lon = lon(rng), .tsMs = kTsMs + int64_t(i)})
           << "\n";
    }
  }
  ChildProcess send("/bin/sh", {"-c", binary("locus") + " --gateway " + address + " send " +
                                          (dir / "reports.ndjson") + " > " + (dir / "summary")});
  zmq::context_t context;
  const auto giveUp = std::chrono::steady_clock::now() + 20s;
  while (devicesOn(context, units) < 30'000 && std::chrono::steady_clock::now() < giveUp)
    std::this_thread::sleep_for(20ms);
  REQUIRE(devicesOn(context, units) < kReports);  // still streaming

  gateway->process.signal(SIGKILL);
  REQUIRE(gateway->process.waitExit(kWait));
  gateway.reset();
  std::this_thread::sleep_for(500ms);  // locus send finds nobody there for a while
  gateway =
      std::make_unique<RunningGateway>(units, std::vector<std::string>{}, Http::kOff, address);

  const auto status = send.waitExit(60'000ms);
  INFO("locus send stderr:\n" << send.stderrText());
  REQUIRE(status);
  CHECK(status->exited);
  CHECK(status->code == 0);
  const auto summary = nlohmann::json::parse(readFile(dir / "summary"));
  CHECK(summary["sent"] == kReports);
  CHECK(summary["accepted"] == kReports);
  CHECK(summary["rejected"] == 0);
  CHECK_THAT(send.stderrText(), Catch::Contains("reconnected"));
  CHECK(devicesOn(context, units) == kReports);
}

TEST_CASE("every unit killed -9 at once with --fsync always: every acknowledged report is there",
          "[faults]") {
  TempDir dir0, dir1;
  const std::vector<std::string> args0{"--data-dir", dir0.path(), "--fsync", "always"},
      args1{"--data-dir", dir1.path(), "--fsync", "always"};
  auto a = std::make_unique<RunningUnit>(Http::kOff, args0);
  auto b = std::make_unique<RunningUnit>(Http::kOff, args1);
  const std::vector<std::string> units{a->endpoint, b->endpoint};
  RunningGateway gateway(units);

  Recorder recorder(20'000);
  client::IngestClient::Options options;
  options.reconnectFor = 10 * kj::SECONDS;
  Load load(gateway.rpcAddress, recorder, options);
  std::this_thread::sleep_for(1000ms);
  const uint64_t before = load.batches();
  REQUIRE(before > 0);

  a->process.signal(SIGKILL);
  b->process.signal(SIGKILL);
  REQUIRE(a->process.waitExit(kWait));
  REQUIRE(b->process.waitExit(kWait));
  a.reset();
  b.reset();
  a = std::make_unique<RunningUnit>(Http::kOff, args0, units[0]);
  b = std::make_unique<RunningUnit>(Http::kOff, args1, units[1]);
  std::this_thread::sleep_for(1000ms);  // the load goes on against the restarted units
  load.stop();
  INFO(load.failure());
  CHECK(load.failure().empty());
  CHECK(load.batches() > before);  // acknowledged again after the restart

  size_t acked = 0;
  for (int64_t ts : recorder.acked) acked += ts > 0 ? 1 : 0;
  REQUIRE(acked > 0);
  zmq::context_t context;
  REQUIRE(awaitServing(context, units));  // they missed writes while down: caught up first
  CHECK(recorder.missing(context, units) == 0);
}

TEST_CASE("a unit stopped for 5 s: acks go on, answers stay complete and in time, it catches up",
          "[faults]") {
  RunningUnit a, b;  // two replicas of every partition
  const std::vector<std::string> units{a.endpoint, b.endpoint};
  RunningGateway gateway(units, {"LOCUS_BATCH_TIMEOUT_MS=500"});
  constexpr int64_t kTimeoutMs = 250;
  RunningServer server(units, kTimeoutMs);

  Recorder recorder(20'000);
  Load load(gateway.rpcAddress, recorder, client::IngestClient::Options{});
  QueryLoad queries(server.address);
  std::this_thread::sleep_for(500ms);
  a.process.signal(SIGSTOP);
  const uint64_t batchesBefore = load.batches();
  std::this_thread::sleep_for(5s);
  const uint64_t batchesDuring = load.batches() - batchesBefore;
  // The last writes went to b alone: a has them only if it catches up.
  load.stop();
  a.process.signal(SIGCONT);
  std::this_thread::sleep_for(1500ms);
  queries.stop();

  INFO(queries.failure << " / " << load.failure());
  CHECK(queries.failure.empty());
  CHECK(load.failure().empty());
  CHECK(queries.answered > 0);
  CHECK(queries.partial == 0);  // the other replica answered for every partition
  // Each answer within about the deadline (one hedge), on a loaded machine.
  CHECK(queries.slowestUs < 4 * kTimeoutMs * 1000);
  CHECK(batchesDuring > 0);  // acknowledged by the replica that was up
  zmq::context_t context;
  REQUIRE(awaitServing(context, units));
  CHECK(recorder.missing(context, units) == 0);  // on both replicas, after catch-up
}

TEST_CASE("a unit killed -9 under load and restarted empty: nothing acknowledged is lost",
          "[faults]") {
  auto a = std::make_unique<RunningUnit>(Http::kOff, std::vector<std::string>{"--replicas", "2"});
  RunningUnit b(Http::kOff, {"--replicas", "2"});
  const std::vector<std::string> units{a->endpoint, b.endpoint};
  RunningGateway gateway(units);
  constexpr int64_t kTimeoutMs = 250;
  RunningServer server(units, kTimeoutMs);
  zmq::context_t context;
  REQUIRE(awaitServing(context, units));  // a new cluster: both caught up at once

  Recorder recorder(20'000);
  Load load(gateway.rpcAddress, recorder, client::IngestClient::Options{});
  QueryLoad queries(server.address);
  std::this_thread::sleep_for(1000ms);
  a->process.signal(SIGKILL);
  REQUIRE(a->process.waitExit(kWait));
  a.reset();
  std::this_thread::sleep_for(1500ms);  // the outage, under load
  const uint64_t partialDuringOutage = queries.partial;
  a = std::make_unique<RunningUnit>(Http::kOff, std::vector<std::string>{"--replicas", "2"},
                                    units[0]);
  REQUIRE(awaitServing(context, units));  // it copied what it lost, then serves
  std::this_thread::sleep_for(500ms);     // and takes part again under load
  queries.stop();
  load.stop();

  INFO(queries.failure << " / " << load.failure());
  CHECK(queries.failure.empty());
  CHECK(load.failure().empty());
  CHECK(queries.answered > 0);
  CHECK(partialDuringOutage == 0);
  CHECK(queries.partial == 0);  // nor while it caught up: it served nothing until done
  CHECK(queries.slowestUs < 4 * kTimeoutMs * 1000);
  size_t acked = 0;
  for (int64_t ts : recorder.acked) acked += ts > 0 ? 1 : 0;
  REQUIRE(acked > 0);
  CHECK(recorder.missing(context, units) == 0);  // on both replicas: 0 acknowledged lost
}

TEST_CASE("a unit on a full filesystem refuses writes, acknowledges nothing unstored, serves on",
          "[faults]") {
  TempDir dir;
  const std::string data = dir / "data";
  std::filesystem::create_directories(data);
  // A small tmpfs, as the SPEC asks; where mounting is not allowed, a file
  // size limit on the unit stands in for it.
  const bool mounted = ::mount("tmpfs", data.c_str(), "tmpfs", 0, "size=512k") == 0;
  std::unique_ptr<ChildProcess> limited;
  std::unique_ptr<RunningUnit> unit;
  std::string endpoint, http;
  if (mounted) {
    unit = std::make_unique<RunningUnit>(
        Http::kOn, std::vector<std::string>{"--data-dir", data, "--fsync", "always"});
    endpoint = unit->endpoint;
    http = unit->httpAddress;
  } else {
    WARN("cannot mount a tmpfs here: a 512 KiB file size limit stands in for a full disk");
    limited = std::make_unique<ChildProcess>(
        "/usr/bin/prlimit",
        std::vector<std::string>{"--fsize=524288", "--", binary("locus-unit"), "--listen",
                                 "tcp://127.0.0.1:0", "--data-dir", data, "--fsync", "always",
                                 "--http-listen", "127.0.0.1:0"});
    endpoint = boundAddress(*limited, kUnitListening, "locus-unit");
    http = boundAddress(*limited, kHttpListening, "locus-unit");
  }
  {
    RunningGateway gateway({endpoint});
    Recorder recorder(50'000);
    client::IngestClient::Options options;
    options.retries = 0;  // a full disk stays full: see each refusal
    size_t refusedForSpace = 0, batches = 0;
    {
      client::IngestClient ingest(gateway.rpcAddress, options);
      std::mt19937_64 rng(5);
      std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
      for (size_t round = 0; round < 40 && refusedForSpace == 0; ++round) {
        auto batch = std::make_shared<std::vector<Report>>();
        for (size_t j = 0; j < client::kBatchReports; ++j) {
          const size_t d = round * client::kBatchReports + j;
          batch->push_back(Report{.id = recorder.ids[d],
                                  .lat = lat(rng),
                                  .lon = lon(rng),
                                  .tsMs = kTsMs + static_cast<int64_t>(d)});
        }
        ingest.send(
            batch->size(),
            [batch](size_t i, wire::Report::Builder out) { writeReport((*batch)[i], out); },
            [&, batch, round](const BatchOutcome& outcome) {
              ++batches;
              std::vector<bool> refused(batch->size());
              for (const auto& [index, reason] : outcome.rejected) {
                refused[index] = true;
                if (reason.find("cannot store") != std::string::npos) ++refusedForSpace;
              }
              for (size_t i = 0; i < batch->size(); ++i) {
                if (!refused[i])
                  recorder.acked[round * client::kBatchReports + i] = (*batch)[i].tsMs;
              }
            });
      }
      ingest.flush();
    }
    CHECK(refusedForSpace > 0);
    zmq::context_t context;
    CHECK(recorder.missing(context, {endpoint}) == 0);  // every ok was stored
    // Still serving: stats and queries answer, and it says it is ready.
    transport::UnitClient client(context, endpoint, 1000ms);
    auto stats = client.stats();
    REQUIRE(stats);
    CHECK(stats->devices > 0);
    CHECK(client.nearest(NearestQuery{{31.25, 121.5}, 10}));
    CHECK(httpGet(http, "/readyz").status == 200);
    const auto metrics = httpGet(http, "/metrics").body;
    INFO(metrics);
    CHECK(metricSum(metrics, "locus_unit_storage_append_errors_total") > 0);
    // A full disk is not a failed sync: the unit still stores once there is room.
    CHECK(stats->durable);
    CHECK(stats->writable);
  }
  unit.reset();
  limited.reset();
  if (mounted) ::umount(data.c_str());
}

}  // namespace locus
