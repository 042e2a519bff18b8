// Catch-up inside a unit (SPEC "Replication and durability"): a unit of a
// replicated cluster serves no partition until a gateway's order brought it
// from a live replica, answers as if it held none of an unserved
// partition's devices and says which; and a real copy between two units
// over ZeroMQ merges what the source holds with what the copier took
// meanwhile, the newest report winning.
#include <capnp/message.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "locus/common/placement.h"
#include "locus/common/wire.h"
#include "locus/testkit/inproc.h"
#include "locus/transport/frame.h"
#include "locus/transport/unit_client.h"
#include "locus/unit/unit_server.h"

namespace locus::unit {
namespace {

using namespace std::chrono_literals;
constexpr int64_t kNowMs = 1'763'000'000'000;
constexpr uint32_t kPartitions = 8;

// A reply frame, read in place.
struct Reply {
  explicit Reply(zmq::message_t f) : frame(std::move(f)), message(frame.data(), frame.size()) {}
  wire::UnitReply::Reader root() {
    REQUIRE(!message.error());
    return message.root<wire::UnitReply>();
  }
  zmq::message_t frame;
  FlatMessage message;
};

std::unique_ptr<Reply> send(UnitService& service, capnp::MessageBuilder& message) {
  zmq::message_t frame = transport::toFrame(message);
  return std::make_unique<Reply>(service.handle(frame.data(), frame.size(), kNowMs));
}

std::unique_ptr<Reply> applyTo(UnitService& service, const std::vector<Report>& reports) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  auto list = request.initApply().initReports(static_cast<unsigned>(reports.size()));
  for (size_t i = 0; i < reports.size(); ++i)
    writeReport(reports[i], list[static_cast<unsigned>(i)]);
  return send(service, message);
}

// A nearest query over everything, for the partitions `only` (none: all).
std::unique_ptr<Reply> nearestAll(UnitService& service, std::vector<uint32_t> only = {}) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  writeNearestQuery(NearestQuery{{31.2, 121.5}, 1000}, request.initQueries(1)[0].initNearest());
  if (!only.empty()) {
    auto set = request.initOnly();
    set.setPartitions(kPartitions);
    auto serve = set.initServe(static_cast<unsigned>(only.size()));
    for (size_t i = 0; i < only.size(); ++i) serve.set(static_cast<unsigned>(i), only[i]);
  }
  return send(service, message);
}

std::unique_ptr<Reply> catchUp(
    UnitService& service, uint32_t partitions,
    const std::vector<std::pair<std::string, std::vector<uint32_t>>>& copies,
    const std::vector<uint32_t>& wait, const std::vector<uint32_t>& holds = {}) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>().initCatchUp();
  request.setPartitions(partitions);
  auto list = request.initCopies(static_cast<unsigned>(copies.size()));
  for (size_t i = 0; i < copies.size(); ++i) {
    list[static_cast<unsigned>(i)].setSource(copies[i].first);
    auto serve =
        list[static_cast<unsigned>(i)].initServe(static_cast<unsigned>(copies[i].second.size()));
    for (size_t j = 0; j < copies[i].second.size(); ++j)
      serve.set(static_cast<unsigned>(j), copies[i].second[j]);
  }
  auto w = request.initWait(static_cast<unsigned>(wait.size()));
  for (size_t i = 0; i < wait.size(); ++i) w.set(static_cast<unsigned>(i), wait[i]);
  auto h = request.initHolds(static_cast<unsigned>(holds.size()));
  for (size_t i = 0; i < holds.size(); ++i) h.set(static_cast<unsigned>(i), holds[i]);
  return send(service, message);
}

std::vector<uint32_t> notServingOf(Reply& reply) {
  std::vector<uint32_t> out;
  for (uint32_t p : reply.root().getNotServing()) out.push_back(p);
  return out;
}

std::vector<Report> reportsAt(std::vector<std::string>& ids, size_t n, int64_t ts) {
  std::vector<Report> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(Report{.id = ids[i], .lat = 31.2 + 0.0001 * double(i), .lon = 121.5, .tsMs = ts});
  }
  return out;
}

TEST_CASE("a unit of a replicated cluster serves no partition until caught up",
          "[unit][catch-up]") {
  UnitService service("catch-up", IndexOptions{}, kDefaultMaxFutureSkewMs, std::nullopt,
                      kPartitions, /*replicas=*/2);
  std::vector<std::string> ids;
  for (int i = 0; i < 200; ++i) ids.push_back("c-" + std::to_string(i));
  // Writes are taken while it catches up...
  REQUIRE(applyTo(service, reportsAt(ids, 200, kNowMs))->root().isApplied());
  CHECK(service.partitionStates().notServing().size() == kPartitions);
  std::this_thread::sleep_for(5ms);
  CHECK(service.catchUpSeconds() > 0);  // its lag, in time

  // ... but no query sees them, and each answer says why.
  {
    auto reply = nearestAll(service);
    REQUIRE(reply->root().isAnswers());
    CHECK(reply->root().getAnswers()[0].getResult().getHits().size() == 0);
    CHECK(notServingOf(*reply).size() == kPartitions);
    auto some = nearestAll(service, {1, 2});
    CHECK(notServingOf(*some) == std::vector<uint32_t>{1, 2});
  }

  // An order: 1 and 2 copied from a replica, 3 waits for one.
  auto ordered = catchUp(service, kPartitions, {{"inproc://nowhere", {1, 2}}}, {3});
  REQUIRE(ordered->root().isApplied());
  auto order = service.takeCatchUpOrder();
  REQUIRE(order);
  REQUIRE(order->copies.size() == 1);
  CHECK(order->copies[0].source == "inproc://nowhere");
  CHECK(service.partitionStates().pending() == 2);

  // The copy of 1 and 2 is done: they serve, the others still do not.
  service.copyDone({1, 2}, /*ok=*/true, 0);
  CHECK(service.partitionStates().serving(1));
  CHECK(service.partitionStates().serving(2));
  CHECK_FALSE(service.partitionStates().serving(3));
  size_t inOneOrTwo = 0;
  for (const auto& id : ids) {
    const uint32_t p = partitionOf(id, kPartitions);
    inOneOrTwo += (p == 1 || p == 2) ? 1 : 0;
  }
  REQUIRE(inOneOrTwo > 0);
  auto reply = nearestAll(service, {1, 2, 3});
  CHECK(reply->root().getAnswers()[0].getResult().getHits().size() == inOneOrTwo);
  CHECK(notServingOf(*reply) == std::vector<uint32_t>{3});

  // A copy that gave up leaves its partitions unserved.
  catchUp(service, kPartitions, {{"inproc://nowhere", {4}}}, {});
  service.copyDone({4}, /*ok=*/false, 0);
  CHECK_FALSE(service.partitionStates().serving(4));
  CHECK(service.partitionStates().pending() == 0);
}

TEST_CASE("a catch-up order names the partitions a unit holds: the others are not owed",
          "[unit][catch-up]") {
  UnitService service("holds", IndexOptions{}, kDefaultMaxFutureSkewMs, std::nullopt, kPartitions,
                      /*replicas=*/2);
  REQUIRE(
      catchUp(service, kPartitions, {{"inproc://peer", {0, 5}}}, {}, {0, 5})->root().isApplied());
  // Not its partitions: nothing to catch up on, nothing reported unserved.
  CHECK(service.partitionStates().notServing() == std::vector<uint32_t>{0, 5});
  service.copyDone({0, 5}, /*ok=*/true, 0);
  CHECK(service.partitionStates().allServing());
  CHECK(service.catchUpSeconds() == 0);
}

TEST_CASE("a catch-up order that cannot be is refused and changes nothing", "[unit][catch-up]") {
  UnitService service("catch-up", IndexOptions{}, kDefaultMaxFutureSkewMs, std::nullopt,
                      kPartitions, /*replicas=*/1);
  CHECK(catchUp(service, 16, {}, {1})->root().isError());  // another partition count
  CHECK(catchUp(service, kPartitions, {{"inproc://x", {8}}}, {})->root().isError());
  CHECK(catchUp(service, kPartitions, {}, {9})->root().isError());
  CHECK(catchUp(service, kPartitions, {}, {}, {8})->root().isError());
  CHECK(service.partitionStates().allServing());
  CHECK_FALSE(service.takeCatchUpOrder());
}

TEST_CASE("a unit's dump epoch changes when it removes devices", "[unit][catch-up]") {
  UnitService service("epoch", IndexOptions{.ttlMs = 1000});
  std::vector<std::string> ids{"e-0", "e-1"};
  REQUIRE(applyTo(service, reportsAt(ids, 2, kNowMs))->root().isApplied());
  const uint64_t before = service.dumpEpoch();
  service.tick(kNowMs + 500);
  CHECK(service.dumpEpoch() == before);  // nothing expired
  service.tick(kNowMs + 5000);
  CHECK(service.index().size() == 0);
  CHECK(service.dumpEpoch() != before);
}

TEST_CASE("a unit copies its partitions from a live replica, merging what it took meanwhile",
          "[unit][catch-up]") {
  zmq::context_t context;
  testkit::InprocUnit source(context, "copy-source");
  testkit::InprocUnit copier(context, "copy-target", "", /*replicas=*/2);
  std::vector<std::string> ids;
  for (int i = 0; i < 12'000; ++i) ids.push_back("m-" + std::to_string(i));  // > 2 pages
  transport::UnitClient toSource(context, source.endpoint(), 5000ms);
  transport::UnitClient toCopier(context, copier.endpoint(), 5000ms);
  const auto all = reportsAt(ids, ids.size(), kNowMs);
  for (size_t start = 0; start < all.size(); start += 2000)
    REQUIRE(toSource.apply(std::span(all).subspan(start, 2000)));
  // Newer positions of the first 100 reached the copier alone (live
  // writes during its catch-up); an older one of device 200 too.
  auto newer = reportsAt(ids, 100, kNowMs + 10);
  for (auto& r : newer) r.lat += 1;
  newer.push_back(Report{.id = ids[200], .lat = 10, .lon = 10, .tsMs = kNowMs - 10});
  REQUIRE(toCopier.apply(newer));

  std::vector<uint32_t> everything;
  for (uint32_t p = 0; p < kDefaultPartitions; ++p) everything.push_back(p);
  {
    capnp::MallocMessageBuilder message;
    auto request = message.initRoot<wire::UnitRequest>().initCatchUp();
    request.setPartitions(kDefaultPartitions);
    auto copy = request.initCopies(1)[0];
    copy.setSource(source.endpoint());
    auto serve = copy.initServe(kDefaultPartitions);
    for (uint32_t p = 0; p < kDefaultPartitions; ++p) serve.set(p, p);
    zmq::socket_t dealer(context, zmq::socket_type::dealer);
    dealer.connect(copier.endpoint());
    zmq::message_t frame = transport::toFrame(message);
    REQUIRE(dealer.send(frame, zmq::send_flags::none));
    zmq::message_t reply;
    REQUIRE(dealer.recv(reply));
  }
  const auto giveUp = std::chrono::steady_clock::now() + 10s;
  std::optional<UnitStats> stats;
  for (;;) {
    auto s = toCopier.stats();
    REQUIRE(s);
    stats = *s;
    if (stats->notServing.empty() || std::chrono::steady_clock::now() > giveUp) break;
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE(stats->notServing.empty());
  CHECK_FALSE(stats->copying);
  CHECK(stats->copiedDevices == ids.size());
  CHECK(stats->catchUpSeconds == 0);
  CHECK(stats->devices == ids.size());
  for (size_t i = 0; i < ids.size(); i += 97) {
    auto hit = toCopier.get(ids[i]);
    INFO(ids[i]);
    REQUIRE(hit);
    CHECK(hit->tsMs == (i < 100 ? kNowMs + 10 : kNowMs));  // the newest won, either way round
  }
  auto kept = toCopier.get(ids[200]);
  REQUIRE(kept);
  CHECK(kept->tsMs == kNowMs);
}

}  // namespace
}  // namespace locus::unit
