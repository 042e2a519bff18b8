// locus-unit --data-dir as a process: what it acknowledged survives kill -9
// under load, it keeps its incarnation, and a data dir serves one unit.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/http.h"
#include "locus/testkit/temp_dir.h"
#include "locus/transport/frame.h"
#include "locus/transport/unit_client.h"

namespace locus::unit {
namespace {

using namespace std::chrono_literals;
using testkit::Http;
using testkit::RunningUnit;
using testkit::TempDir;

// Batches sent to one unit until it dies, and which of them it acknowledged.
struct Acked {
  std::vector<std::string> ids;  // by device number
  std::vector<Report> latest;    // the newest acknowledged report per device
};

Acked sendUntilKilled(const std::string& endpoint, RunningUnit& unit, size_t devices) {
  zmq::context_t context;
  transport::UnitClient client(context, endpoint, 1000ms);
  Acked acked;
  for (size_t i = 0; i < devices; ++i) acked.ids.push_back("dur-" + std::to_string(i));
  acked.latest.resize(devices);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
  // Kill -9 from another thread while batches are in flight.
  std::thread killer([&unit] {
    std::this_thread::sleep_for(400ms);
    unit.process.signal(SIGKILL);
  });
  const auto giveUp = std::chrono::steady_clock::now() + 5s;
  int64_t ts = testkit::kTsMs;
  for (size_t round = 0; std::chrono::steady_clock::now() < giveUp; ++round) {
    std::vector<Report> batch;
    for (size_t j = 0; j < 500; ++j) {
      const size_t d = (round * 500 + j) % devices;
      batch.push_back(Report{.id = acked.ids[d], .lat = lat(rng), .lon = lon(rng), .tsMs = ++ts});
    }
    auto outcome = client.apply(batch);
    if (!outcome) break;  // the unit is gone
    REQUIRE(outcome->rejected.empty());
    for (const Report& r : batch) {
      const size_t d = static_cast<size_t>(std::stoul(std::string(r.id.substr(4))));
      acked.latest[d] = r;
    }
  }
  killer.join();
  return acked;
}

}  // namespace

TEST_CASE("locus-unit --data-dir keeps every acknowledged batch through kill -9 under load",
          "[unit][durable]") {
  for (const char* fsync : {"always", "interval", "never"}) {
    INFO("--fsync " << fsync);
    TempDir dir;
    const std::vector<std::string> args{"--data-dir", dir.path(), "--fsync", fsync};
    uint64_t incarnation = 0;
    Acked acked;
    {
      RunningUnit unit(Http::kOff, args);
      zmq::context_t context;
      transport::UnitClient client(context, unit.endpoint, 1000ms);
      auto stats = client.stats();
      REQUIRE(stats);
      incarnation = stats->incarnation;
      acked = sendUntilKilled(unit.endpoint, unit, 3000);
      REQUIRE(unit.process.waitExit(testkit::kWait));
    }
    size_t sent = 0;
    for (const Report& r : acked.latest) sent += r.tsMs > 0 ? 1 : 0;
    REQUIRE(sent > 0);

    RunningUnit restarted(Http::kOff, args);
    INFO(restarted.process.stderrText());
    zmq::context_t context;
    transport::UnitClient client(context, restarted.endpoint, 2000ms);
    auto stats = client.stats();
    REQUIRE(stats);
    CHECK(stats->incarnation == incarnation);
    CHECK(stats->durable);
    CHECK(stats->writable);
    CHECK(stats->logBytes > 0);
    size_t missing = 0;
    for (const Report& want : acked.latest) {
      if (want.tsMs == 0) continue;
      auto hit = client.get(want.id);
      if (!hit || hit->tsMs < want.tsMs) ++missing;
    }
    CHECK(missing == 0);
  }
}

TEST_CASE("a second locus-unit on the same data dir refuses to start", "[unit][durable]") {
  TempDir dir;
  RunningUnit first(Http::kOff, {"--data-dir", dir.path()});
  testkit::ChildProcess second(testkit::binary("locus-unit"),
                               {"--listen", "tcp://127.0.0.1:0", "--data-dir", dir.path()});
  const auto status = second.waitExit(testkit::kWait);
  REQUIRE(status);
  CHECK(status->exited);
  CHECK(status->code == 1);
  CHECK_THAT(second.stderrText(), Catch::Contains("in use by another unit"));
}

TEST_CASE("a memory-only locus-unit says so, and restarts as a new incarnation",
          "[unit][durable]") {
  uint64_t incarnation = 0;
  {
    RunningUnit unit;
    CHECK_THAT(unit.process.stderrText(), Catch::Contains("memory-only"));
    zmq::context_t context;
    transport::UnitClient client(context, unit.endpoint, 1000ms);
    auto stats = client.stats();
    REQUIRE(stats);
    CHECK(!stats->durable);
    incarnation = stats->incarnation;
  }
  RunningUnit again;
  zmq::context_t context;
  transport::UnitClient client(context, again.endpoint, 1000ms);
  auto stats = client.stats();
  REQUIRE(stats);
  CHECK(stats->incarnation != incarnation);
}

TEST_CASE("locus-unit --fsync always syncs once per burst of batches, not once per batch",
          "[unit][durable]") {
  TempDir dir;
  RunningUnit unit(Http::kOn, {"--data-dir", dir.path(), "--fsync", "always"});
  constexpr int kBatches = 50;
  std::vector<zmq::message_t> frames;
  std::vector<std::string> ids;
  for (int i = 0; i < 1000; ++i) ids.push_back("burst-" + std::to_string(i));
  for (int b = 0; b < kBatches; ++b) {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::UnitRequest>();
    request.setRequestId(static_cast<uint64_t>(b + 1));
    auto reports = request.initApply().initReports(1000);
    for (unsigned i = 0; i < 1000; ++i)
      writeReport(Report{.id = ids[i], .lat = 31.2, .lon = 121.5, .tsMs = testkit::kTsMs + b},
                  reports[i]);
    frames.push_back(transport::toFrame(message));
  }
  zmq::context_t context;
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(unit.endpoint);
  for (auto& f : frames) dealer.send(f, zmq::send_flags::none);  // all at once
  int applied = 0;
  for (int b = 0; b < kBatches; ++b) {
    zmq::pollitem_t item{dealer.handle(), 0, ZMQ_POLLIN, 0};
    REQUIRE(zmq::poll(&item, 1, testkit::kWait) == 1);
    zmq::message_t reply;
    REQUIRE(dealer.recv(reply));
    FlatMessage flat(reply.data(), reply.size());
    REQUIRE(!flat.error());
    applied += flat.root<wire::UnitReply>().isApplied() ? 1 : 0;
  }
  CHECK(applied == kBatches);
  const auto metrics = testkit::httpGet(unit.httpAddress, "/metrics").body;
  INFO(metrics);
  const double syncs = testkit::metricSum(metrics, "locus_unit_storage_syncs_total");
  CHECK(syncs >= 1);
  CHECK(syncs < kBatches);  // batches that arrived together shared a sync
}

}  // namespace locus::unit
