// UnitService driven in-process (request frames in, reply frames out), and
// the real `locus-unit` binary driven over loopback ZeroMQ. Answers are held
// against brute-force scans with the geo functions of locus/common/geo.h.
#include "locus/unit/unit_server.h"

#include <capnp/message.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "locus/common/clock.h"
#include "locus/common/geo.h"
#include "locus/common/placement.h"
#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/inproc.h"
#include "locus/testkit/process.h"
#include "locus/testkit/refusal.h"
#include "locus/transport/frame.h"
#include "locus/transport/unit_client.h"

namespace locus::unit {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kNowMs = 1'763'000'000'000;
// Every wait on a process or socket is bounded by this.
constexpr auto kWait = 3000ms;

// ---------------------------------------------------------------- requests

struct TestReport {
  std::string id;
  double lat = 0;
  double lon = 0;
  int64_t tsMs = 0;
};

zmq::message_t applyFrame(uint64_t requestId, const std::vector<TestReport>& reports) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(requestId);
  auto out = request.initApply().initReports(static_cast<unsigned>(reports.size()));
  for (unsigned i = 0; i < reports.size(); ++i) {
    const TestReport& r = reports[i];
    writeReport(Report{.id = r.id, .lat = r.lat, .lon = r.lon, .tsMs = r.tsMs}, out[i]);
  }
  return transport::toFrame(message);
}

// A request of one query (`write` fills it in), as every sender builds them.
template <typename Write>
zmq::message_t queryFrame(uint64_t requestId, Write write) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(requestId);
  write(request.initQueries(1)[0]);
  return transport::toFrame(message);
}

zmq::message_t nearestFrame(uint64_t requestId, const NearestQuery& query) {
  return queryFrame(requestId,
                    [&](wire::Query::Builder q) { writeNearestQuery(query, q.initNearest()); });
}

zmq::message_t withinFrame(uint64_t requestId, const AreaQuery& query) {
  return queryFrame(requestId,
                    [&](wire::Query::Builder q) { writeAreaQuery(query, q.initWithin()); });
}

zmq::message_t getFrame(uint64_t requestId, const std::string& id) {
  return queryFrame(requestId, [&](wire::Query::Builder q) { q.setGet(id); });
}

zmq::message_t statsFrame(uint64_t requestId) {
  return queryFrame(requestId, [](wire::Query::Builder q) { q.setStats(); });
}

// A reply frame read back as a UnitReply. Not movable: the reader views the
// frame in place.
class Reply {
 public:
  explicit Reply(zmq::message_t frame)
      : frame_(std::move(frame)), message_(frame_.data(), frame_.size()) {}
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;

  wire::UnitReply::Reader root() {
    INFO("the reply is not a Cap'n Proto message: " << message_.error().value_or(""));
    REQUIRE(!message_.error());
    return message_.root<wire::UnitReply>();
  }

 private:
  zmq::message_t frame_;
  FlatMessage message_;
};

// What a reply carried, copied out of the frame into plain values (so they
// outlive the reply). Each fails the test when the reply is of another kind.
void requireKind(Reply& reply, wire::UnitReply::Which kind) {
  auto root = reply.root();
  if (root.which() == wire::UnitReply::ERROR && kind != wire::UnitReply::ERROR) {
    FAIL("error reply: " << root.getError().getMessage().cStr());
  }
  REQUIRE(root.which() == kind);
}

// The answer of a request of one query.
wire::QueryAnswer::Reader onlyAnswer(Reply& reply) {
  requireKind(reply, wire::UnitReply::ANSWERS);
  auto answers = reply.root().getAnswers();
  REQUIRE(answers.size() == 1);
  return answers[0];
}

// The error of a refused request, or of its one refused query.
Error errorOf(Reply& reply) {
  if (reply.root().isError()) return readError(reply.root().getError());
  auto answer = onlyAnswer(reply);
  REQUIRE(answer.isError());
  return readError(answer.getError());
}

QueryResult resultOf(Reply& reply) {
  auto answer = onlyAnswer(reply);
  if (answer.isError()) FAIL("error answer: " << answer.getError().getMessage().cStr());
  REQUIRE(answer.isResult());
  return readQueryResult(answer.getResult());
}

struct Applied {
  uint32_t accepted = 0;
  uint32_t stale = 0;
  std::vector<std::pair<uint32_t, std::string>> rejected;  // index, reason
};

Applied appliedOf(Reply& reply) {
  requireKind(reply, wire::UnitReply::APPLIED);
  auto in = reply.root().getApplied();
  Applied out{in.getAccepted(), in.getStale(), {}};
  for (auto r : in.getRejected()) out.rejected.emplace_back(r.getIndex(), r.getReason().cStr());
  return out;
}

struct Stats {
  std::string name;
  uint64_t devices = 0;
  uint64_t reportsApplied = 0;
  uint64_t reportsStale = 0;
  uint64_t reportsRejected = 0;
  uint64_t queriesServed = 0;
  uint64_t memoryBytes = 0;
};

Stats statsOf(Reply& reply) {
  auto answer = onlyAnswer(reply);
  REQUIRE(answer.isStats());
  auto in = answer.getStats();
  return Stats{in.getName().cStr(),  in.getDevices(),         in.getReportsApplied(),
               in.getReportsStale(), in.getReportsRejected(), in.getQueriesServed(),
               in.getMemoryBytes()};
}

// ------------------------------------------------------------- brute force

// The latest report per id, as a unit should hold them (newest ts wins,
// equal ts: the greater position, as supersedes()).
using Model = std::map<std::string, TestReport>;

void applyToModel(Model& model, const TestReport& r) {
  auto [it, inserted] = model.try_emplace(r.id, r);
  if (!inserted && supersedes(r.tsMs, geo::toE7(r.lat), geo::toE7(r.lon), it->second.tsMs,
                              geo::toE7(it->second.lat), geo::toE7(it->second.lon)))
    it->second = r;
}

geo::LatLon stored(const TestReport& r) {
  return {geo::quantize(r.lat), geo::quantize(r.lon)};
}

// An answer reduced to what a test compares: ids, then distances.
struct Answer {
  std::vector<std::string> ids;
  std::vector<double> distancesM;  // empty for answers without a centre
  std::vector<geo::LatLon> positions;
};

Answer answerOf(const QueryResult& result) {
  Answer a;
  for (const Hit& h : result.hits) {
    a.ids.push_back(h.id);
    if (!std::isnan(h.distanceM)) a.distancesM.push_back(h.distanceM);
    a.positions.push_back({h.lat, h.lon});
  }
  return a;
}

// Brute force: devices within maxDistanceM (0 = any) of center, ordered by
// (distance, id), at most k.
Answer bruteNearest(const Model& model, geo::LatLon center, size_t k, double maxDistanceM = 0) {
  std::vector<std::pair<double, std::string>> all;
  for (const auto& [id, r] : model) {
    const double d = geo::haversineM(center, stored(r));
    if (maxDistanceM > 0 && d > maxDistanceM) continue;
    all.emplace_back(d, id);
  }
  std::sort(all.begin(), all.end());
  if (all.size() > k) all.resize(k);
  Answer a;
  for (const auto& [d, id] : all) {
    a.ids.push_back(id);
    a.distancesM.push_back(d);
    a.positions.push_back(stored(model.at(id)));
  }
  return a;
}

// Brute force for areas without a centre: matching ids in id order.
template <typename Contains>
Answer bruteArea(const Model& model, Contains contains) {
  Answer a;
  for (const auto& [id, r] : model) {  // std::map: id order
    if (contains(stored(r))) {
      a.ids.push_back(id);
      a.positions.push_back(stored(r));
    }
  }
  return a;
}

void checkAnswer(const Answer& actual, const Answer& expected) {
  CHECK(actual.ids == expected.ids);
  CHECK(actual.distancesM == expected.distancesM);
  CHECK(actual.positions == expected.positions);
}

// Devices uniform in the city box of the SPEC's workload.
std::vector<TestReport> cityReports(std::mt19937_64& rng, size_t n, const std::string& prefix,
                                    int64_t tsMs) {
  std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
  std::vector<TestReport> out;
  for (size_t i = 0; i < n; ++i)
    out.push_back({prefix + std::to_string(i), lat(rng), lon(rng), tsMs});
  return out;
}

geo::LatLon cityPoint(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
  return {lat(rng), lon(rng)};
}

// ---------------------------------------------------- in-process service

// A UnitService with the request counter and clock a test needs.
// Quiets the warning UnitService logs per unreadable request while it lives.
class QuietLog {
 public:
  QuietLog() : saved_(spdlog::get_level()) { spdlog::set_level(spdlog::level::err); }
  ~QuietLog() { spdlog::set_level(saved_); }
  QuietLog(const QuietLog&) = delete;
  QuietLog& operator=(const QuietLog&) = delete;

 private:
  spdlog::level::level_enum saved_;
};

// Calls service.handle() with its return value constructed in place over a
// sentinel frame whose free function records that it ran. Nothing may
// destroy the return value before handle() has constructed it: GCC 12 did
// exactly that when an exception left a try block holding the `return` (see
// UnitService::handle), which crashed only now and then, depending on what
// the memory held. The sentinel makes that deterministic.
zmq::message_t handleWatched(UnitService& service, const void* data, size_t size, int64_t nowMs) {
  static_assert(sizeof(zmq::message_t) == sizeof(zmq_msg_t));
  static char sentinelByte;
  bool sentinelFreed = false;
  zmq_msg_t sentinel;
  REQUIRE(zmq_msg_init_data(
              &sentinel, &sentinelByte, 1,
              [](void*, void* hint) { *static_cast<bool*>(hint) = true; }, &sentinelFreed) == 0);
  alignas(zmq::message_t) unsigned char slot[sizeof(zmq::message_t)];
  std::memcpy(slot, &sentinel, sizeof sentinel);
  auto* reply = new (slot) zmq::message_t(service.handle(data, size, nowMs));
  zmq::message_t out(std::move(*reply));
  reply->~message_t();
  INFO("handle() destroyed its return value before constructing it");
  CHECK_FALSE(sentinelFreed);
  if (!sentinelFreed) zmq_msg_close(&sentinel);
  return out;
}

struct Service {
  explicit Service(IndexOptions options = {}) : service("unit-test", options) {}

  std::unique_ptr<Reply> send(const zmq::message_t& frame, int64_t nowMs = kNowMs) {
    return std::make_unique<Reply>(handleWatched(service, frame.data(), frame.size(), nowMs));
  }
  std::unique_ptr<Reply> sendBytes(const void* data, size_t size) {
    return std::make_unique<Reply>(handleWatched(service, data, size, kNowMs));
  }
  std::unique_ptr<Reply> apply(const std::vector<TestReport>& reports, int64_t nowMs = kNowMs) {
    return send(applyFrame(++requestId, reports), nowMs);
  }
  std::unique_ptr<Reply> get(const std::string& id, int64_t nowMs = kNowMs) {
    return send(getFrame(++requestId, id), nowMs);
  }

  QuietLog quiet;
  UnitService service;
  uint64_t requestId = 100;
};

TEST_CASE("UnitService: a batch reports accepted, stale and rejected with reasons", "[unit]") {
  Service s;
  REQUIRE(appliedOf(*s.apply({{"old", 31.1, 121.3, kNowMs}})).accepted == 1);

  auto reply = s.apply({
      {"a", 31.2, 121.4, kNowMs},
      {"bad-lat", 95, 121.4, kNowMs},
      {"", 31.2, 121.4, kNowMs},
      {"old", 31.4, 121.6, kNowMs - 1},  // older than what is held
      {"b", -33.9, 151.2, kNowMs},
      {"bad-lon", 31.2, 181, kNowMs},
  });
  CHECK(reply->root().getRequestId() == s.requestId);
  auto result = appliedOf(*reply);
  CHECK(result.accepted == 3);
  CHECK(result.stale == 1);
  auto rejected = result.rejected;
  REQUIRE(rejected.size() == 3);
  CHECK(rejected[0].first == 1);
  CHECK_THAT(rejected[0].second, Catch::Contains("lat 95"));
  CHECK(rejected[1].first == 2);
  CHECK_THAT(rejected[1].second, Catch::Contains("id is empty"));
  CHECK(rejected[2].first == 5);
  CHECK_THAT(rejected[2].second, Catch::Contains("lon 181"));

  CHECK(s.service.index().size() == 3);  // old, a, b
  CHECK(errorOf(*s.get("bad-lat")).code == ErrorCode::kNotFound);
  CHECK(errorOf(*s.get("bad-lon")).code == ErrorCode::kNotFound);
  auto old = resultOf(*s.get("old")).hits;
  REQUIRE(old.size() == 1);
  CHECK(old[0].lat == geo::quantize(31.1));
  CHECK(old[0].tsMs == kNowMs);

  auto stats = statsOf(*s.send(statsFrame(1)));
  CHECK(stats.devices == 3);
  CHECK(stats.reportsApplied == 3);  // old, a, b
  CHECK(stats.reportsStale == 1);
  CHECK(stats.reportsRejected == 3);
}

TEST_CASE("UnitService: the newest ts wins and on equal ts the greater position", "[unit]") {
  Service s;
  const auto latOf = [&](const std::string& id) {
    auto hits = resultOf(*s.get(id)).hits;
    REQUIRE(hits.size() == 1);
    return hits[0].lat;
  };
  REQUIRE(appliedOf(*s.apply({{"d", 10, 20, 2000}})).stale == 0);

  SECTION("an older report is acknowledged, counted stale and ignored") {
    auto result = appliedOf(*s.apply({{"d", 11, 20, 1999}}));
    CHECK(result.accepted == 1);
    CHECK(result.stale == 1);
    CHECK(latOf("d") == 10);
    CHECK(resultOf(*s.get("d")).hits[0].tsMs == 2000);
  }
  SECTION("a newer report moves the device") {
    CHECK(appliedOf(*s.apply({{"d", 12, 20, 2001}})).stale == 0);
    CHECK(latOf("d") == 12);
  }
  SECTION("an equal ts with a greater position wins, a lesser one is stale") {
    CHECK(appliedOf(*s.apply({{"d", 13, 20, 2000}})).stale == 0);
    CHECK(latOf("d") == 13);
    CHECK(appliedOf(*s.apply({{"d", 12, 25, 2000}})).stale == 1);
    CHECK(latOf("d") == 13);
  }
  SECTION("within one batch, the greater of equal ts wins and older ones are stale") {
    auto result =
        appliedOf(*s.apply({{"d", 15, 20, 3000}, {"d", 14, 20, 3000}, {"d", 16, 20, 2500}}));
    CHECK(result.accepted == 3);
    CHECK(result.stale == 2);
    CHECK(latOf("d") == 15);
  }
  SECTION("ts 0 means unset: the unit stamps its now") {
    CHECK(appliedOf(*s.apply({{"fresh", 1, 2, 0}}, kNowMs + 5)).accepted == 1);
    CHECK(resultOf(*s.get("fresh")).hits[0].tsMs == kNowMs + 5);
  }
  CHECK(s.service.index().size() >= 1);
}

TEST_CASE("UnitService: nearest, within, get and stats equal brute force", "[unit]") {
  Service s;
  std::mt19937_64 rng(42);
  Model model;
  auto first = cityReports(rng, 400, "dev-", kNowMs - 10'000);
  auto moves = cityReports(rng, 150, "dev-", kNowMs);  // newer positions of dev-0..149
  for (const auto* batch : {&first, &moves}) {
    auto result = appliedOf(*s.apply(*batch));
    REQUIRE(result.accepted == batch->size());
    REQUIRE(result.rejected.size() == 0);
    for (const auto& r : *batch) applyToModel(model, r);
  }
  REQUIRE(s.service.index().size() == 400);

  SECTION("nearest") {
    for (int i = 0; i < 25; ++i) {
      const geo::LatLon c = cityPoint(rng);
      const uint32_t k = i == 0 ? 1000 : 1 + static_cast<uint32_t>(rng() % 30);
      const double maxDistanceM = i % 3 == 0 ? 3000 : 0;
      INFO("query " << i << " at " << c.lat << "," << c.lon << " k " << k << " max "
                    << maxDistanceM);
      auto reply = s.send(nearestFrame(7, NearestQuery{c, k, maxDistanceM, 0}));
      CHECK(reply->root().getRequestId() == 7);
      auto result = resultOf(*reply);
      const Answer expected = bruteNearest(model, c, k, maxDistanceM);
      checkAnswer(answerOf(result), expected);
      CHECK(result.count == expected.ids.size());
      auto shards = onlyAnswer(*reply).getResult().getShards();
      CHECK(shards.getTotal() == 1);
      CHECK(shards.getAnswered() == 1);
    }
  }
  SECTION("max age keeps only positions young enough") {
    const geo::LatLon c = cityPoint(rng);
    Model young;
    for (const auto& [id, r] : model) {
      if (r.tsMs == kNowMs) young.emplace(id, r);
    }
    REQUIRE(young.size() == 150);
    auto result = resultOf(*s.send(nearestFrame(8, NearestQuery{c, 1000, 0, 5})));
    checkAnswer(answerOf(result), bruteNearest(young, c, 1000));
  }
  SECTION("within a circle") {
    for (int i = 0; i < 10; ++i) {
      const geo::LatLon c = cityPoint(rng);
      const double r = 500 + static_cast<double>(rng() % 5000);
      INFO("circle " << c.lat << "," << c.lon << " r " << r);
      auto result = resultOf(*s.send(withinFrame(9, AreaQuery{.area = Circle{c, r}})));
      const Answer expected = bruteNearest(model, c, SIZE_MAX, r);
      checkAnswer(answerOf(result), expected);
      CHECK(result.count == expected.ids.size());
    }
  }
  SECTION("within a box, with a limit and count only") {
    const geo::Box box{31.1, 121.3, 31.3, 121.5};
    const Answer all = bruteArea(model, [&](geo::LatLon p) { return box.contains(p); });
    REQUIRE(all.ids.size() > 20);
    auto result = resultOf(*s.send(withinFrame(10, AreaQuery{.area = box})));
    checkAnswer(answerOf(result), all);
    CHECK(result.count == all.ids.size());

    auto limited = resultOf(*s.send(withinFrame(11, AreaQuery{.area = box, .limit = 5})));
    Answer firstFive = all;
    firstFive.ids.resize(5);
    firstFive.positions.resize(5);
    checkAnswer(answerOf(limited), firstFive);
    CHECK(limited.count == all.ids.size());

    auto counted = resultOf(*s.send(withinFrame(12, AreaQuery{.area = box, .countOnly = true})));
    CHECK(counted.hits.size() == 0);
    CHECK(counted.count == all.ids.size());
  }
  SECTION("within a polygon with a hole") {
    const std::vector<geo::Polygon::Ring> rings{
        {{31.0, 121.2}, {31.0, 121.6}, {31.45, 121.4}, {31.0, 121.2}},
        {{31.05, 121.35}, {31.05, 121.45}, {31.15, 121.45}, {31.15, 121.35}, {31.05, 121.35}},
    };
    const geo::Polygon polygon(rings);
    const Answer expected = bruteArea(model, [&](geo::LatLon p) { return polygon.contains(p); });
    REQUIRE(expected.ids.size() > 10);
    auto result = resultOf(*s.send(withinFrame(13, AreaQuery{.area = polygon})));
    checkAnswer(answerOf(result), expected);
  }
  SECTION("get returns the latest position") {
    for (const char* id : {"dev-0", "dev-149", "dev-150", "dev-399"}) {
      INFO(id);
      auto hits = resultOf(*s.get(id)).hits;
      REQUIRE(hits.size() == 1);
      const TestReport& r = model.at(id);
      CHECK(std::string(hits[0].id) == id);
      CHECK(geo::LatLon{hits[0].lat, hits[0].lon} == stored(r));
      CHECK(hits[0].tsMs == r.tsMs);
    }
  }
  SECTION("stats") {
    auto stats = statsOf(*s.send(statsFrame(14)));
    CHECK(std::string(stats.name) == "unit-test");
    CHECK(stats.devices == 400);
    CHECK(stats.reportsApplied == 550);
    CHECK(stats.reportsStale == 0);
    CHECK(stats.reportsRejected == 0);
    CHECK(stats.memoryBytes > 0);
    const uint64_t served = stats.queriesServed;
    statsOf(*s.send(statsFrame(15)));
    CHECK(statsOf(*s.send(statsFrame(16))).queriesServed == served + 2);
  }
}

TEST_CASE("UnitService: a batch of queries is answered in order, one answer each", "[unit]") {
  Service s;
  std::mt19937_64 rng(11);
  Model model;
  const auto reports = cityReports(rng, 300, "b-", kNowMs);
  REQUIRE(appliedOf(*s.apply(reports)).accepted == 300);
  for (const auto& r : reports) applyToModel(model, r);

  // Nearest queries, one with k = 0 (refused on its own), a get and stats.
  std::vector<NearestQuery> nearest;
  for (int i = 0; i < 12; ++i) {
    nearest.push_back(NearestQuery{cityPoint(rng), 1 + static_cast<uint32_t>(rng() % 20)});
  }
  nearest[5].k = 0;
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(9);
  auto queries = request.initQueries(static_cast<unsigned>(nearest.size() + 2));
  for (unsigned i = 0; i < nearest.size(); ++i)
    writeNearestQuery(nearest[i], queries[i].initNearest());
  queries[static_cast<unsigned>(nearest.size())].setGet("b-3");
  queries[static_cast<unsigned>(nearest.size() + 1)].setStats();

  auto reply = s.send(transport::toFrame(message));
  CHECK(reply->root().getRequestId() == 9);
  requireKind(*reply, wire::UnitReply::ANSWERS);
  auto answers = reply->root().getAnswers();
  REQUIRE(answers.size() == nearest.size() + 2);
  for (unsigned i = 0; i < nearest.size(); ++i) {
    INFO("query " << i);
    if (i == 5) {
      REQUIRE(answers[i].isError());
      CHECK(readError(answers[i].getError()).code == ErrorCode::kBadRequest);
      continue;
    }
    REQUIRE(answers[i].isResult());
    checkAnswer(answerOf(readQueryResult(answers[i].getResult())),
                bruteNearest(model, nearest[i].center, nearest[i].k));
  }
  REQUIRE(answers[static_cast<unsigned>(nearest.size())].isResult());
  CHECK(readQueryResult(answers[static_cast<unsigned>(nearest.size())].getResult()).hits.at(0).id ==
        "b-3");
  REQUIRE(answers[static_cast<unsigned>(nearest.size() + 1)].isStats());
  CHECK(answers[static_cast<unsigned>(nearest.size() + 1)].getStats().getQueriesServed() ==
        nearest.size() + 2);
}

TEST_CASE("UnitService: a batch over the query limit is refused whole", "[unit]") {
  Service s;
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(10);
  auto queries = request.initQueries(static_cast<unsigned>(kMaxQueriesPerRequest + 1));
  for (auto q : queries) writeNearestQuery(NearestQuery{{31.2, 121.5}, 10}, q.initNearest());
  auto reply = s.send(transport::toFrame(message));
  CHECK(reply->root().getRequestId() == 10);
  const Error e = errorOf(*reply);
  CHECK(e.code == ErrorCode::kBadRequest);
  CHECK_THAT(e.message, Catch::Contains("at most"));
  CHECK(statsOf(*s.send(statsFrame(3))).queriesServed == 1);
}

TEST_CASE("UnitService: the retired single-query request is refused", "[unit]") {
  Service s;
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(12);
  request.initObsoleteQuery().setStats();
  auto reply = s.send(transport::toFrame(message));
  CHECK(reply->root().getRequestId() == 12);
  REQUIRE(reply->root().isError());
  const Error e = readError(reply->root().getError());
  CHECK(e.code == ErrorCode::kBadRequest);
  CHECK_THAT(e.message, Catch::Contains("send `queries`"));
}

TEST_CASE("UnitService: get of an unknown id is NOT_FOUND", "[unit]") {
  Service s;
  REQUIRE(appliedOf(*s.apply({{"known", 1, 2, kNowMs}})).accepted == 1);
  auto reply = s.get("unknown");
  CHECK(reply->root().getRequestId() == s.requestId);
  const Error e = errorOf(*reply);
  CHECK(e.code == ErrorCode::kNotFound);
  CHECK_THAT(e.message, Catch::Contains("unknown"));
  CHECK(resultOf(*s.get("known")).hits.size() == 1);
}

TEST_CASE("UnitService: an invalid query is BAD_REQUEST and changes nothing", "[unit]") {
  Service s;
  std::mt19937_64 rng(7);
  const auto reports = cityReports(rng, 50, "q-", kNowMs);
  REQUIRE(appliedOf(*s.apply(reports)).accepted == 50);
  const geo::LatLon c{31.2, 121.5};
  const auto before = answerOf(resultOf(*s.send(nearestFrame(1, NearestQuery{c, 100}))));

  zmq::message_t frame;
  std::string expectedWords;
  SECTION("k = 0") {
    frame = nearestFrame(77, NearestQuery{c, 0});
    expectedWords = "k must be at least 1";
  }
  SECTION("latitude 95") {
    frame = nearestFrame(77, NearestQuery{{95, 121.5}, 10});
    expectedWords = "lat 95";
  }
  SECTION("negative max distance") {
    frame = nearestFrame(77, NearestQuery{c, 10, -1});
    expectedWords = "max distance";
  }
  SECTION("negative radius") {
    frame = withinFrame(77, AreaQuery{.area = Circle{c, -5}});
    expectedWords = "radius";
  }
  SECTION("south north of north") {
    frame = withinFrame(77, AreaQuery{.area = geo::Box{31.5, 121.2, 31.0, 121.8}});
    expectedWords = "south";
  }
  SECTION("an unclosed polygon ring") {
    frame = queryFrame(77, [](wire::Query::Builder q) {
      auto ring = q.initWithin().initArea().initPolygon().initRings(1).init(0, 4);
      const geo::LatLon points[] = {{31, 121}, {31, 122}, {32, 122}, {32, 121}};
      for (unsigned i = 0; i < 4; ++i) writeLatLon(points[i], ring[i]);
    });
    expectedWords = "not closed";
  }
  SECTION("get of an empty id") {
    frame = getFrame(77, "");
    expectedWords = "id is empty";
  }
  auto reply = s.send(frame);
  CHECK(reply->root().getRequestId() == 77);
  const Error e = errorOf(*reply);
  CHECK(e.code == ErrorCode::kBadRequest);
  CHECK_THAT(e.message, Catch::Contains(expectedWords));

  CHECK(s.service.index().size() == 50);
  checkAnswer(answerOf(resultOf(*s.send(nearestFrame(2, NearestQuery{c, 100})))), before);
  CHECK(statsOf(*s.send(statsFrame(3))).reportsApplied == 50);
}

// A valid batch of `n` reports whose last id is long, so that dropping the
// last words of its message cuts only into that id.
std::vector<TestReport> batchWithLongLastId(size_t n) {
  std::vector<TestReport> reports;
  for (size_t i = 0; i + 1 < n; ++i)
    reports.push_back({std::string("t").append(std::to_string(i)), 1.0 + i, 2, kNowMs});
  reports.push_back({std::string(60, 'z'), 3, 4, kNowMs});
  return reports;
}

// Drops the last `words` words of a one-segment message and fixes the
// segment table, so the message is well-framed but its last object is cut.
zmq::message_t dropLastWords(const zmq::message_t& frame, uint32_t words) {
  std::vector<uint32_t> header(2);
  std::memcpy(header.data(), frame.data(), 8);
  REQUIRE(header[0] == 0);  // one segment
  REQUIRE(header[1] > words);
  header[1] -= words;
  zmq::message_t out(frame.size() - 8 * words);
  std::memcpy(out.data(), frame.data(), out.size());
  std::memcpy(out.data(), header.data(), 8);
  return out;
}

// A well-framed one-segment message of 1 to 24 random words: it passes the
// framing checks, so reading it exercises every pointer check. With
// `structRoot`, the root pointer is a plausible struct pointer (2 data words,
// 1 pointer), as a UnitRequest's is.
zmq::message_t framedRandomWords(std::mt19937_64& rng, bool structRoot) {
  const uint32_t words = 1 + static_cast<uint32_t>(rng() % 24);
  std::vector<uint64_t> message(words + 1);
  const uint32_t header[2] = {0, words};
  std::memcpy(message.data(), header, 8);
  for (uint32_t w = 1; w <= words; ++w) message[w] = rng();
  if (structRoot) message[1] = 0x0001'0002'0000'0000ull;
  return zmq::message_t(message.data(), message.size() * 8);
}

TEST_CASE("UnitService: unreadable requests get BAD_REQUEST and change nothing", "[unit]") {
  Service s;
  REQUIRE(appliedOf(*s.apply({{"held", 5, 6, kNowMs}})).accepted == 1);
  const auto badBefore = s.service.counters().badMessages.value();
  const auto expectBadRequest = [&](Reply& reply) {
    const Error e = errorOf(reply);
    CHECK(e.code == ErrorCode::kBadRequest);
    CHECK(!e.message.empty());
  };

  SECTION("empty") {
    expectBadRequest(*s.sendBytes(nullptr, 0));
    expectBadRequest(*s.sendBytes("", 0));
    CHECK(s.service.counters().badMessages.value() == badBefore + 2);
  }
  SECTION("random bytes of every size up to 300") {
    std::mt19937_64 rng(1234);
    for (size_t size = 1; size <= 300; ++size) {
      std::vector<unsigned char> bytes(size);
      for (auto& b : bytes) b = static_cast<unsigned char>(rng());
      INFO("size " << size);
      auto reply = s.sendBytes(bytes.data(), bytes.size());
      expectBadRequest(*reply);
      CHECK(reply->root().getRequestId() == 0);
    }
  }
  SECTION("random words after a plausible one-segment header") {
    // These parse as messages; every pointer in them is random. The unit
    // must answer each without crashing (typically BAD_REQUEST).
    std::mt19937_64 rng(99);
    for (int i = 0; i < 3000; ++i) {
      auto reply = s.send(framedRandomWords(rng, i % 2 == 0));
      auto root = reply->root();
      if (root.which() == wire::UnitReply::ERROR) {
        CHECK(root.getError().getCode() == wire::ErrorCode::BAD_REQUEST);
      }
    }
  }
  SECTION("every truncation of a valid batch") {
    const zmq::message_t frame = applyFrame(5, batchWithLongLastId(4));
    for (size_t size = 0; size < frame.size(); ++size) {
      INFO("first " << size << " of " << frame.size() << " bytes");
      expectBadRequest(*s.sendBytes(frame.data(), size));
    }
  }
  SECTION("a message of another type: a UnitReply holding a struct where a list is expected") {
    capnp::MallocMessageBuilder message;
    auto reply = message.initRoot<wire::UnitReply>();
    reply.setRequestId(9);
    reply.initObsoleteStats().setName("x");  // read as UnitRequest.queries
    expectBadRequest(*s.send(transport::toFrame(message)));
  }
  SECTION("a message of another type: a Report, whose id text is read as a batch") {
    capnp::MallocMessageBuilder message;
    writeReport(Report{.id = "not-a-batch", .lat = 1, .lon = 0, .tsMs = 3},
                message.initRoot<wire::Report>());
    expectBadRequest(*s.send(transport::toFrame(message)));
  }
  SECTION("a message of another type: an Area, whose polygon rings are read as reports") {
    // Area's pointer 0 (the polygon) lands where UnitRequest.apply is; the
    // rings, a list of lists, are then read as the List(Report).
    capnp::MallocMessageBuilder message;
    auto rings = message.initRoot<wire::Area>().initPolygon().initRings(2);
    for (unsigned r = 0; r < 2; ++r) {
      auto ring = rings.init(r, 4);
      for (unsigned i = 0; i < 4; ++i) writeLatLon({1.0 + i, 2.0}, ring[i]);
    }
    expectBadRequest(*s.send(transport::toFrame(message)));
  }

  CHECK(s.service.index().size() == 1);
  CHECK(resultOf(*s.get("held")).hits.size() == 1);
  CHECK(statsOf(*s.send(statsFrame(1))).reportsApplied == 1);
}

TEST_CASE("UnitService: a batch whose last report is malformed changes nothing", "[unit]") {
  Service s;
  const auto reports = batchWithLongLastId(5);
  const zmq::message_t whole = applyFrame(21, reports);
  const zmq::message_t cut = dropLastWords(whole, 1);

  // The cut message frames correctly and its first reports read fine; only
  // the last report's id points past the end.
  {
    FlatMessage message(cut.data(), cut.size());
    REQUIRE(!message.error());
    auto list = message.root<wire::UnitRequest>().getApply().getReports();
    REQUIRE(list.size() == 5);
    CHECK(std::string(list[0].getId().cStr()) == "t0");
    CHECK(std::string(list[3].getId().cStr()) == "t3");
    CHECK_THROWS_AS(list[4].getId(), kj::Exception);
  }

  auto reply = s.send(cut);
  CHECK(errorOf(*reply).code == ErrorCode::kBadRequest);
  CHECK(s.service.index().size() == 0);
  CHECK(errorOf(*s.get("t0")).code == ErrorCode::kNotFound);
  CHECK(statsOf(*s.send(statsFrame(1))).reportsApplied == 0);

  // The same batch whole is applied, so the test above can tell.
  CHECK(appliedOf(*s.send(whole)).accepted == 5);
  CHECK(s.service.index().size() == 5);
}

TEST_CASE("UnitService: positions expire after the TTL", "[unit]") {
  Service s(IndexOptions{.ttlMs = 1000});
  REQUIRE(
      appliedOf(*s.apply({{"e1", 31.2, 121.5, kNowMs}, {"e2", 31.3, 121.5, kNowMs}})).accepted ==
      2);
  const geo::LatLon c{31.25, 121.5};
  const int64_t later = kNowMs + 600'000;

  CHECK(resultOf(*s.send(nearestFrame(1, NearestQuery{c, 10}), kNowMs + 999)).hits.size() == 2);
  CHECK(resultOf(*s.get("e1", kNowMs + 999)).hits.size() == 1);

  CHECK(resultOf(*s.send(nearestFrame(2, NearestQuery{c, 10}), later)).hits.size() == 0);
  CHECK(resultOf(*s.send(withinFrame(3, AreaQuery{.area = Circle{c, 50'000}}), later)).count == 0);
  CHECK(errorOf(*s.get("e1", later)).code == ErrorCode::kNotFound);

  s.service.tick(kNowMs);  // nothing has expired yet
  CHECK(s.service.index().size() == 2);
  s.service.tick(later);
  CHECK(s.service.index().size() == 0);
  CHECK(statsOf(*s.send(statsFrame(4), later)).devices == 0);
}

// ------------------------------------------------------ the real binary

std::string unitBinary() {
  return testkit::binary("locus-unit");
}

const std::regex kListeningLine(R"(listening on (tcp://[0-9.]+:[0-9]+) \()");

// A running locus-unit and the endpoint it bound. Killed and reaped when it
// goes out of scope, whatever the test did.
struct RunningUnit {
  explicit RunningUnit(const std::vector<std::string>& args,
                       const std::vector<std::string>& env = {})
      : process(unitBinary(), args, env) {
    auto bound = process.waitForStderr(kListeningLine, kWait);
    INFO("locus-unit stderr:\n" << process.stderrText());
    REQUIRE(bound);
    endpoint = *bound;
  }

  testkit::ChildProcess process;
  std::string endpoint;
};

// A ZeroMQ client of a unit: DEALER (one frame per request) or REQ (the
// socket adds the empty delimiter).
class Client {
 public:
  Client(zmq::context_t& context, const std::string& endpoint,
         zmq::socket_type type = zmq::socket_type::dealer)
      : socket_(context, type) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  void send(zmq::message_t frame) { socket_.send(frame, zmq::send_flags::none); }
  void sendFrames(std::vector<zmq::message_t> frames) { zmq::send_multipart(socket_, frames); }

  // The next reply, which must be one frame (after an empty delimiter when
  // a DEALER sent one itself); null after `timeout`.
  std::unique_ptr<Reply> receive(std::chrono::milliseconds timeout = kWait) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0) return nullptr;
    std::vector<zmq::message_t> frames;
    REQUIRE(zmq::recv_multipart(socket_, std::back_inserter(frames)));
    if (frames.size() == 2 && frames[0].size() == 0) frames.erase(frames.begin());
    REQUIRE(frames.size() == 1);
    return std::make_unique<Reply>(std::move(frames[0]));
  }

  // Sends a request and returns its reply, which must carry the request's id.
  std::unique_ptr<Reply> call(zmq::message_t frame) {
    uint64_t requestId = 0;
    {
      FlatMessage request(frame.data(), frame.size());
      REQUIRE(!request.error());
      requestId = request.root<wire::UnitRequest>().getRequestId();
    }
    send(std::move(frame));
    auto reply = receive();
    REQUIRE(reply);
    REQUIRE(reply->root().getRequestId() == requestId);
    return reply;
  }

 private:
  zmq::socket_t socket_;
};

TEST_CASE("locus-unit serves DEALER clients over loopback, equal to brute force", "[unit]") {
  RunningUnit unit({"--listen", "tcp://127.0.0.1:0", "--name", "shard-a"});
  CHECK_THAT(unit.endpoint, Catch::StartsWith("tcp://127.0.0.1:"));
  CHECK(unit.endpoint != "tcp://127.0.0.1:0");
  zmq::context_t context;
  Client client(context, unit.endpoint);

  std::mt19937_64 rng(2024);
  Model model;
  const int64_t ts = kNowMs;
  const auto reports = cityReports(rng, 1000, "car-", ts);
  uint64_t id = 1;
  for (size_t start = 0; start < reports.size(); start += 250) {
    std::vector<TestReport> batch(reports.begin() + static_cast<long>(start),
                                  reports.begin() + static_cast<long>(start + 250));
    auto result = appliedOf(*client.call(applyFrame(++id, batch)));
    REQUIRE(result.accepted == 250);
    for (const auto& r : batch) applyToModel(model, r);
  }
  // Some devices move; some reports arrive late and must be ignored.
  auto moves = cityReports(rng, 100, "car-", ts + 1);
  auto late = cityReports(rng, 50, "car-", ts - 1);
  CHECK(appliedOf(*client.call(applyFrame(++id, moves))).stale == 0);
  CHECK(appliedOf(*client.call(applyFrame(++id, late))).stale == 50);
  for (const auto& r : moves) applyToModel(model, r);
  for (const auto& r : late) applyToModel(model, r);

  for (int i = 0; i < 30; ++i) {
    const geo::LatLon c = cityPoint(rng);
    const uint32_t k = i == 0 ? 5000 : 10;
    INFO("query " << i << " at " << c.lat << "," << c.lon << " k " << k);
    auto result = resultOf(*client.call(nearestFrame(++id, NearestQuery{c, k})));
    checkAnswer(answerOf(result), bruteNearest(model, c, k));
  }
  // Many requests in flight on one connection: replies come back in order.
  for (int i = 0; i < 50; ++i) client.send(getFrame(1000 + i, "car-" + std::to_string(i)));
  for (int i = 0; i < 50; ++i) {
    auto reply = client.receive();
    REQUIRE(reply);
    CHECK(reply->root().getRequestId() == 1000u + i);
    auto hits = resultOf(*reply).hits;
    REQUIRE(hits.size() == 1);
    CHECK(geo::LatLon{hits[0].lat, hits[0].lon} == stored(model.at("car-" + std::to_string(i))));
  }
  auto stats = statsOf(*client.call(statsFrame(++id)));
  CHECK(std::string(stats.name) == "shard-a");
  CHECK(stats.devices == 1000);
  CHECK(stats.reportsApplied == 1100);
  CHECK(stats.reportsStale == 50);
}

TEST_CASE("locus-unit serves REQ clients", "[unit]") {
  RunningUnit unit({"--listen", "tcp://127.0.0.1:0"});
  zmq::context_t context;
  Client req(context, unit.endpoint, zmq::socket_type::req);
  CHECK(appliedOf(*req.call(applyFrame(1, {{"r1", 48.85, 2.35, kNowMs}}))).accepted == 1);
  auto hits = resultOf(*req.call(getFrame(2, "r1"))).hits;
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].lat == geo::quantize(48.85));
  CHECK(errorOf(*req.call(getFrame(3, "nobody"))).code == ErrorCode::kNotFound);
  auto stats = statsOf(*req.call(statsFrame(4)));
  CHECK(std::string(stats.name) == unit.endpoint);  // the default name
  CHECK(stats.devices == 1);

  SECTION("a garbage frame gets an error, and the REQ socket stays usable") {
    req.send(zmq::message_t("garbage", 7));
    auto reply = req.receive();
    REQUIRE(reply);
    CHECK(errorOf(*reply).code == ErrorCode::kBadRequest);
    CHECK(statsOf(*req.call(statsFrame(5))).devices == 1);
  }
  SECTION("a multi-frame request gets an error, and the REQ socket stays usable") {
    std::vector<zmq::message_t> frames;
    frames.push_back(statsFrame(6));
    frames.push_back(statsFrame(7));
    req.sendFrames(std::move(frames));
    auto reply = req.receive();
    REQUIRE(reply);  // REQ drops a reply without the empty delimiter
    CHECK(errorOf(*reply).code == ErrorCode::kBadRequest);
    CHECK(statsOf(*req.call(statsFrame(8))).devices == 1);
  }
}

TEST_CASE("locus-unit answers garbage frames with errors and keeps serving", "[unit]") {
  RunningUnit unit({"--listen", "tcp://127.0.0.1:0"});
  zmq::context_t context;
  Client bad(context, unit.endpoint);
  Client good(context, unit.endpoint);
  REQUIRE(appliedOf(
              *good.call(applyFrame(1, {{"g1", 31.2, 121.5, kNowMs}, {"g2", 31.3, 121.5, kNowMs}})))
              .accepted == 2);

  std::mt19937_64 rng(5);
  std::vector<std::vector<zmq::message_t>> garbage;
  for (size_t size : {1, 7, 8, 64, 1000}) {
    std::vector<unsigned char> bytes(size);
    for (auto& b : bytes) b = static_cast<unsigned char>(rng());
    garbage.emplace_back().emplace_back(bytes.data(), bytes.size());
  }
  auto& five = garbage.emplace_back();  // five frames, each a valid request
  for (int i = 0; i < 5; ++i)
    five.push_back(applyFrame(50 + i, {{"five-" + std::to_string(i), 1, 1, kNowMs}}));
  garbage.emplace_back().emplace_back();     // one zero-length frame
  auto& delimited = garbage.emplace_back();  // an empty delimiter and two payloads
  delimited.emplace_back();
  delimited.push_back(statsFrame(60));
  delimited.push_back(statsFrame(61));
  garbage.emplace_back().push_back(dropLastWords(applyFrame(70, batchWithLongLastId(3)), 1));

  for (size_t i = 0; i < garbage.size(); ++i) {
    INFO("garbage message " << i << " of " << garbage[i].size() << " frames");
    bad.sendFrames(std::move(garbage[i]));
    auto reply = bad.receive();
    REQUIRE(reply);
    CHECK(errorOf(*reply).code == ErrorCode::kBadRequest);
    // Other clients are served correctly in between.
    auto hits = resultOf(*good.call(nearestFrame(100 + i, NearestQuery{{31.2, 121.5}, 10}))).hits;
    REQUIRE(hits.size() == 2);
    CHECK(std::string(hits[0].id) == "g1");
  }
  // Well-framed messages with wrong contents make the unit catch an
  // exception while reading them; a stream of them must not hurt it.
  std::mt19937_64 words(77);
  for (int i = 0; i < 300; ++i) bad.send(framedRandomWords(words, i % 2 == 0));
  for (int i = 0; i < 300; ++i) {
    INFO("framed random message " << i);
    auto reply = bad.receive();
    REQUIRE(reply);
    reply->root();  // a readable UnitReply
  }
  // The garbage client itself is still served.
  CHECK(statsOf(*bad.call(statsFrame(200))).devices == 2);
  CHECK(errorOf(*good.call(getFrame(201, "five-0"))).code == ErrorCode::kNotFound);
  CHECK(errorOf(*good.call(getFrame(202, "t0"))).code == ErrorCode::kNotFound);
  CHECK(unit.process.waitExit(0ms) == std::nullopt);  // still running
}

TEST_CASE("locus-unit reads LOCUS_* environment variables and flags win", "[unit]") {
  SECTION("LOCUS_LISTEN without a flag") {
    RunningUnit unit({}, {"LOCUS_LISTEN=tcp://127.0.0.1:0", "LOCUS_NAME=from-env"});
    CHECK_THAT(unit.endpoint, Catch::StartsWith("tcp://127.0.0.1:"));
    zmq::context_t context;
    Client client(context, unit.endpoint);
    CHECK(std::string(statsOf(*client.call(statsFrame(1))).name) == "from-env");
  }
  SECTION("a flag beats its variable") {
    RunningUnit unit({"--listen", "tcp://127.0.0.1:0", "--name", "from-flag"},
                     {"LOCUS_LISTEN=not-an-endpoint", "LOCUS_NAME=from-env"});
    zmq::context_t context;
    Client client(context, unit.endpoint);
    CHECK(std::string(statsOf(*client.call(statsFrame(1))).name) == "from-flag");
  }
  SECTION("LOCUS_TTL_S is validated like --ttl-s") {
    testkit::ChildProcess process(unitBinary(), {"--listen", "tcp://127.0.0.1:0"},
                                  {"LOCUS_TTL_S=-5"});
    const auto status = process.waitExit(kWait);
    REQUIRE(status);
    CHECK((status->exited && status->code != 0));
    process.waitForStderrClosed(kWait);
    CHECK_THAT(process.stderrText(), Catch::Contains("ttl"));
  }
}

TEST_CASE("locus-unit exits non-zero with a reason on bad flags", "[unit]") {
  using Args = std::vector<std::string>;
  auto [args, mention] = GENERATE(table<Args, std::string>({
      {Args{"--listen", "tcp://127.0.0.1:0", "--ttl-s", "-5"}, "-5"},
      {Args{"--listen", "tcp://127.0.0.1:0", "--ttl-s", "soon"}, "soon"},
      {Args{"--listen", "tcp://127.0.0.1:0", "--bogus"}, "--bogus"},
      {Args{"--listen", "not-an-endpoint"}, "not-an-endpoint"},
      {Args{"--listen", "tcp://127.0.0.1:0", "--http-listen", "nowhere"}, "--http-listen nowhere"},
      {Args{"--listen", "tcp://127.0.0.1:0", "--http-listen", "127.0.0.1:99999"}, "99999"},
      {Args{"--listen", "tcp://127.0.0.1:0", "--max-future-skew", "later"}, "--max-future-skew"},
  }));
  testkit::checkRefusesToStart(unitBinary(), args, mention);
}

TEST_CASE("locus-unit exits non-zero with one line when the address is in use", "[unit]") {
  RunningUnit first({"--listen", "tcp://127.0.0.1:0"});
  testkit::ChildProcess second(unitBinary(), {"--listen", first.endpoint});
  const auto status = second.waitExit(kWait);
  REQUIRE(status);
  INFO(status->describe());
  CHECK((status->exited && status->code != 0));
  second.waitForStderrClosed(kWait);
  const std::string err = second.stderrText();
  INFO("stderr:\n" << err);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_THAT(err, Catch::Contains(first.endpoint));
  CHECK_THAT(err, Catch::Contains("in use"));

  // The first unit is unaffected.
  zmq::context_t context;
  Client client(context, first.endpoint);
  CHECK(statsOf(*client.call(statsFrame(1))).devices == 0);
}

TEST_CASE("locus-unit answers the requests it already received before it stops", "[unit]") {
  RunningUnit unit({"--listen", "tcp://127.0.0.1:0"});
  zmq::context_t context;
  Client client(context, unit.endpoint);
  // A batch big enough to keep the unit busy (~0.5 s or more) while the
  // rest queue behind it and the stop signal arrives.
  std::vector<TestReport> big;
  for (int i = 0; i < 200'000; ++i) {
    big.push_back({"big-" + std::to_string(i), 31 + i * 1e-6, 121, kNowMs});
  }
  zmq::message_t bigFrame = applyFrame(1, big);
  REQUIRE(bigFrame.size() < kMaxMessageBytes);
  client.send(std::move(bigFrame));
  constexpr int kQueued = 1000;  // more than one burst (256) of the serving loop
  for (int i = 0; i < kQueued; ++i) {
    client.send(applyFrame(2 + i, {{"q-" + std::to_string(i), 1, 2, kNowMs}}));
  }
  // Time for every request to reach the unit's queue (a loaded CI machine
  // needed more than 100 ms), well before the big batch is applied.
  std::this_thread::sleep_for(300ms);
  unit.process.signal(SIGTERM);

  std::set<uint64_t> answered;
  while (auto reply = client.receive(kWait)) {
    REQUIRE(reply->root().isApplied());
    answered.insert(reply->root().getRequestId());
    if (answered.size() == kQueued + 1) break;
  }
  unit.process.waitForStderrClosed(kWait);
  INFO("unit stderr:\n" << unit.process.stderrText());
  std::vector<uint64_t> missing;
  for (uint64_t id = 1; id <= kQueued + 1; ++id) {
    if (!answered.count(id)) missing.push_back(id);
  }
  CHECK(missing == std::vector<uint64_t>{});
  const auto status = unit.process.waitExit(kWait);
  REQUIRE(status);
  CHECK((status->exited && status->code == 0));
}

TEST_CASE("locus-unit exits 0 on SIGTERM and SIGINT", "[unit]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO("signal " << sig);
  RunningUnit unit({"--listen", "tcp://127.0.0.1:0"});
  zmq::context_t context;
  Client client(context, unit.endpoint);
  REQUIRE(appliedOf(*client.call(applyFrame(1, {{"s", 1, 2, kNowMs}}))).accepted == 1);

  unit.process.signal(sig);
  const auto status = unit.process.waitExit(2000ms);
  REQUIRE(status);
  INFO(status->describe() << "\nstderr:\n" << unit.process.stderrText());
  CHECK(status->exited);
  CHECK(status->code == 0);
  unit.process.waitForStderrClosed(kWait);
  CHECK_THAT(unit.process.stderrText(), Catch::Contains("stopping: 1 devices"));
}

TEST_CASE("UnitService: a report from beyond the future skew is rejected and pins nothing",
          "[unit][admission]") {
  Service s;
  constexpr int64_t kSkewMs = kDefaultMaxFutureSkewMs;
  auto reply = s.apply({
      {"x", 10, 10, 32'503'680'000'000},                   // year 3000
      {"y", 10, 10, std::numeric_limits<int64_t>::max()},  // the end of time
      {"z", 10, 10, kNowMs + kSkewMs},                     // at the bound: fine
  });
  auto applied = appliedOf(*reply);
  CHECK(applied.accepted == 1);
  REQUIRE(applied.rejected.size() == 2);
  CHECK(applied.rejected[0].first == 0);
  CHECK_THAT(applied.rejected[0].second, Catch::Contains("ahead of the unit's clock"));
  CHECK(applied.rejected[1].first == 1);
  CHECK(errorOf(*s.get("x")).code == ErrorCode::kNotFound);

  // The device is not pinned: a real report for it is stored and wins.
  REQUIRE(appliedOf(*s.apply({{"x", 31.2, 121.4, kNowMs}})).accepted == 1);
  auto x = resultOf(*s.get("x")).hits;
  REQUIRE(x.size() == 1);
  CHECK(x[0].tsMs == kNowMs);
  CHECK(x[0].lat == geo::quantize(31.2));
}

TEST_CASE("UnitService: an area query with no limit over kMaxResults matches is refused",
          "[unit][limits]") {
  Service s;
  std::mt19937_64 rng(3);
  const auto reports = cityReports(rng, kMaxResults + 1, "d", kNowMs);
  for (size_t start = 0; start < reports.size(); start += 5000) {
    const auto end = std::min(reports.size(), start + 5000);
    const std::vector<TestReport> batch(reports.begin() + static_cast<std::ptrdiff_t>(start),
                                        reports.begin() + static_cast<std::ptrdiff_t>(end));
    REQUIRE(appliedOf(*s.apply(batch)).accepted == batch.size());
  }
  const geo::Box city{30.9, 121.1, 31.6, 121.9};

  // All of them: more than one answer carries; refused with the count.
  auto refused = errorOf(*s.send(withinFrame(1, AreaQuery{.area = city})));
  CHECK(refused.code == ErrorCode::kBadRequest);
  CHECK_THAT(refused.message, Catch::Contains("50001 devices match"));
  auto circle = errorOf(*s.send(withinFrame(2, AreaQuery{.area = Circle{{31.25, 121.5}, 1e6}})));
  CHECK_THAT(circle.message, Catch::Contains("50001 devices match"));

  // With a limit or as a count the same area is answered, the count exact.
  auto limited = resultOf(*s.send(withinFrame(3, AreaQuery{.area = city, .limit = 10})));
  CHECK(limited.hits.size() == 10);
  CHECK(limited.count == kMaxResults + 1);
  auto counted = resultOf(*s.send(withinFrame(4, AreaQuery{.area = city, .countOnly = true})));
  CHECK(counted.hits.empty());
  CHECK(counted.count == kMaxResults + 1);
  auto most = resultOf(*s.send(withinFrame(5, AreaQuery{.area = city, .limit = kMaxResults})));
  CHECK(most.hits.size() == kMaxResults);
  auto nearest = resultOf(*s.send(nearestFrame(6, NearestQuery{{31.25, 121.5}, kMaxResults})));
  CHECK(nearest.hits.size() == kMaxResults);
}

}  // namespace
}  // namespace locus::unit

namespace locus::unit {

// A request of one query for the devices of `serve` among `partitions`.
template <typename Write>
zmq::message_t onlyFrame(uint64_t requestId, uint32_t partitions,
                         const std::vector<uint32_t>& serve, Write write) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(requestId);
  write(request.initQueries(1)[0]);
  auto only = request.initOnly();
  only.setPartitions(partitions);
  auto list = only.initServe(static_cast<unsigned>(serve.size()));
  for (unsigned i = 0; i < serve.size(); ++i) list.set(i, serve[i]);
  return transport::toFrame(message);
}

TEST_CASE("UnitService: a request for some partitions answers for their devices only",
          "[unit][partitions]") {
  Service s;
  std::vector<TestReport> reports;
  for (int i = 0; i < 300; ++i)
    reports.push_back({"p-" + std::to_string(i), 31.0 + i * 0.001, 121.5, kNowMs});
  REQUIRE(appliedOf(*s.apply(reports)).accepted == 300);
  const std::vector<uint32_t> serve{2, 5};
  size_t inside = 0;
  std::string in, out;
  for (const auto& r : reports) {
    const bool mine = partitionOf(r.id, 8) == 2 || partitionOf(r.id, 8) == 5;
    inside += mine;
    (mine ? in : out) = r.id;
  }
  REQUIRE(inside > 0);
  REQUIRE(inside < 300);

  const auto nearest = resultOf(*s.send(onlyFrame(1, 8, serve, [](wire::Query::Builder q) {
    writeNearestQuery(NearestQuery{{31.1, 121.5}, 1000}, q.initNearest());
  })));
  CHECK(nearest.hits.size() == inside);
  for (const Hit& h : nearest.hits) {
    INFO(h.id);
    CHECK((partitionOf(h.id, 8) == 2 || partitionOf(h.id, 8) == 5));
  }
  const auto counted = resultOf(*s.send(onlyFrame(2, 8, serve, [](wire::Query::Builder q) {
    writeAreaQuery(AreaQuery{.area = geo::Box{30, 121, 32, 122}, .countOnly = true},
                   q.initWithin());
  })));
  CHECK(counted.count == inside);
  CHECK(resultOf(*s.send(onlyFrame(3, 8, serve, [&](wire::Query::Builder q) {
          q.setGet(in);
        }))).hits.size() == 1);
  CHECK(errorOf(*s.send(onlyFrame(4, 8, serve, [&](wire::Query::Builder q) {
          q.setGet(out);
        }))).code == ErrorCode::kNotFound);
  // Without a set: everything, as before.
  CHECK(resultOf(*s.get(out)).hits.size() == 1);
}

TEST_CASE("UnitService: a partition set that cannot be is refused whole", "[unit][partitions]") {
  Service s;
  const auto stats = [](wire::Query::Builder q) { q.setStats(); };
  const Error none = errorOf(*s.send(onlyFrame(1, 0, {}, stats)));
  CHECK(none.code == ErrorCode::kBadRequest);
  CHECK_THAT(none.message, Catch::Contains("partitions"));
  const Error outside = errorOf(*s.send(onlyFrame(2, 8, {8}, stats)));
  CHECK(outside.code == ErrorCode::kBadRequest);
  CHECK_THAT(outside.message, Catch::Contains("partition 8 of 8"));
}

}  // namespace locus::unit

namespace locus::unit {

// One dump page request.
zmq::message_t dumpFrame(uint64_t requestId, uint64_t cursor, uint32_t limit,
                         std::optional<std::pair<uint32_t, std::vector<uint32_t>>> only = {}) {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<wire::UnitRequest>();
  request.setRequestId(requestId);
  auto dump = request.initDump();
  dump.setCursor(cursor);
  dump.setLimit(limit);
  if (only) {
    auto set = dump.initOnly();
    set.setPartitions(only->first);
    auto list = set.initServe(static_cast<unsigned>(only->second.size()));
    for (unsigned i = 0; i < only->second.size(); ++i) list.set(i, only->second[i]);
  }
  return transport::toFrame(message);
}

// Every page of a dump, read to the end: id → ts. `between` runs after
// each page.
std::map<std::string, int64_t> dumpAll(
    Service& s, uint32_t limit, std::optional<std::pair<uint32_t, std::vector<uint32_t>>> only,
    const std::function<void()>& between = [] {}) {
  std::map<std::string, int64_t> out;
  uint64_t cursor = 0;
  for (int pages = 0; pages < 10'000; ++pages) {
    auto reply = s.send(dumpFrame(static_cast<uint64_t>(pages + 1), cursor, limit, only));
    requireKind(*reply, wire::UnitReply::PAGE);
    auto page = reply->root().getPage();
    CHECK(page.getReports().size() <= limit);
    for (auto r : page.getReports()) {
      CHECK(out.count(r.getId().cStr()) == 0);  // each device once
      out[r.getId().cStr()] = r.getTsMs();
    }
    cursor = page.getCursor();
    if (cursor == 0) return out;
    between();
  }
  FAIL("the dump never ended");
  return out;
}

TEST_CASE("UnitService: a dump pages through every device, newest report each", "[unit][dump]") {
  Service s;
  std::vector<TestReport> reports;
  for (int i = 0; i < 250; ++i) reports.push_back({"d-" + std::to_string(i), 31.2, 121.5, kNowMs});
  REQUIRE(appliedOf(*s.apply(reports)).accepted == 250);
  REQUIRE(appliedOf(*s.apply({{"d-7", 31.3, 121.6, kNowMs + 5}})).accepted == 1);  // a move
  const auto all = dumpAll(s, 7, std::nullopt);
  CHECK(all.size() == 250);
  CHECK(all.at("d-7") == kNowMs + 5);

  // Only some partitions.
  const auto some = dumpAll(s, 10, std::make_pair(4u, std::vector<uint32_t>{1, 3}));
  size_t expected = 0;
  for (const auto& r : reports) expected += (partitionOf(r.id, 4) % 2 == 1) ? 1 : 0;
  CHECK(some.size() == expected);
  for (const auto& [id, ts] : some) CHECK(partitionOf(id, 4) % 2 == 1);
}

TEST_CASE("UnitService: devices stored while a dump is read are in it", "[unit][dump]") {
  Service s;
  std::vector<TestReport> first;
  for (int i = 0; i < 40; ++i) first.push_back({"a-" + std::to_string(i), 31.2, 121.5, kNowMs});
  REQUIRE(appliedOf(*s.apply(first)).accepted == 40);
  int added = 0;
  const auto all = dumpAll(s, 5, std::nullopt, [&] {
    if (added < 20) {
      REQUIRE(
          appliedOf(*s.apply({{"late-" + std::to_string(added), 31.2, 121.5, kNowMs}})).accepted ==
          1);
      ++added;
    }
  });
  CHECK(all.size() == 40u + static_cast<size_t>(added));
}

TEST_CASE("UnitService: a dump page that cannot be is refused", "[unit][dump]") {
  Service s;
  CHECK(errorOf(*s.send(dumpFrame(1, 0, 0))).code == ErrorCode::kBadRequest);
  CHECK_THAT(errorOf(*s.send(dumpFrame(2, 0, kMaxDumpPage + 1))).message,
             Catch::Contains("1..10000"));
  CHECK(errorOf(*s.send(dumpFrame(3, 0, 10, std::make_pair(4u, std::vector<uint32_t>{4})))).code ==
        ErrorCode::kBadRequest);
  // A cursor past the end is an empty, finished page.
  auto reply = s.send(dumpFrame(4, 1'000'000, 10));
  requireKind(*reply, wire::UnitReply::PAGE);
  CHECK(reply->root().getPage().getReports().size() == 0);
  CHECK(reply->root().getPage().getCursor() == 0);
}

}  // namespace locus::unit

namespace locus::unit {
namespace {

void ignoreSignal(int) {}

TEST_CASE("A UnitServer thread keeps serving through signals meant for its process",
          "[unit][library]") {
  // A unit runs as a thread of `locus local` (and of the fuzz targets): a
  // signal that lands on that thread interrupts its poll, which once threw
  // and ended the process (fuzz/ingest found it with libFuzzer's SIGALRM).
  struct sigaction action {};
  action.sa_handler = ignoreSignal;
  struct sigaction saved {};
  REQUIRE(sigaction(SIGUSR1, &action, &saved) == 0);
  zmq::context_t context;
  testkit::InprocUnit unit(context, "signalled-unit");
  transport::UnitClient client(context, unit.endpoint());
  for (int i = 0; i < 20; ++i) {
    REQUIRE(pthread_kill(unit.thread(), SIGUSR1) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const Report r{"signalled", 1, 2, wallClockMs()};
  REQUIRE(client.apply(std::span(&r, 1)));
  const auto stats = client.stats();
  REQUIRE(stats);
  CHECK(stats->devices == 1);
  sigaction(SIGUSR1, &saved, nullptr);
}

}  // namespace
}  // namespace locus::unit
