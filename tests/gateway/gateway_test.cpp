// The real `locus-gateway` over loopback in front of four real `locus-unit`
// processes: reports ingested through both protocols (NDJSON lines over a
// plain TCP socket, Cap'n Proto RPC with pipelined calls) must land on the
// unit that owns each id, with the right position, older reports ignored.
// Every kind of bad line gets its own error reply in order while good lines
// on the same connection keep flowing; garbage on one connection does not
// disturb another; SIGTERM flushes and exits 0.
#include <arpa/inet.h>
#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/exception.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <regex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "locus.capnp.h"
#include "locus/client/ingest_client.h"
#include "locus/client/rpc_client.h"
#include "locus/common/clock.h"
#include "locus/common/geo.h"
#include "locus/common/placement.h"
#include "locus/common/report_json.h"
#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/http.h"
#include "locus/testkit/line_client.h"
#include "locus/testkit/placement.h"
#include "locus/testkit/process.h"
#include "locus/testkit/refusal.h"
#include "locus/transport/unit_client.h"

namespace locus::gateway {
namespace {

using namespace std::chrono_literals;
using namespace locus::testkit;

// How long an acknowledged report may take to become visible on its unit.
constexpr auto kVisible = 2000ms;

// Four units and a gateway in front of them (`replicas` 0: the default, 2
// from two units on).
struct Cluster {
  explicit Cluster(size_t unitCount = 4, std::vector<std::string> gatewayEnv = {},
                   Http http = Http::kOff, uint32_t replicas = 0)
      : units(unitCount),
        replicas(replicas != 0 ? replicas : defaultReplicas(static_cast<uint32_t>(unitCount))) {
    for (const auto& u : units) endpoints.push_back(u.endpoint);
    gatewayEnv.push_back("LOCUS_REPLICAS=" + std::to_string(this->replicas));
    gateway = std::make_unique<RunningGateway>(endpoints, gatewayEnv, http);
  }

  // The units holding `id`, the owner first.
  std::vector<uint32_t> holding(std::string_view id) const {
    return unitsHolding(id, static_cast<uint32_t>(units.size()), replicas);
  }

  // The gateway's metric `series` (as rendered), or -1. Needs Http::kOn.
  double metric(const std::string& series) {
    return metricValue(httpGet(gateway->httpAddress, "/metrics").body, series).value_or(-1);
  }

  // Waits (bounded) until the gateway's metric `series` reads `value`.
  bool awaitMetric(const std::string& series, double value) {
    const auto giveUp = std::chrono::steady_clock::now() + kWait;
    while (metric(series) != value && std::chrono::steady_clock::now() < giveUp) {
      std::this_thread::sleep_for(50ms);
    }
    return metric(series) == value;
  }

  // The stored position of `id`, asked of the unit that owns it (or of
  // replica `replica` of its partition).
  std::optional<Hit> get(const std::string& id, size_t replica = 0) {
    const uint32_t shard = holding(id).at(replica);
    if (!clients[shard]) {
      clients[shard] = std::make_unique<transport::UnitClient>(context, endpoints[shard], kWait);
    }
    auto hit = clients[shard]->get(id);
    if (!hit) {
      REQUIRE(hit.error().code == ErrorCode::kNotFound);
      return std::nullopt;
    }
    return *hit;
  }

  uint64_t devicesStored() {
    uint64_t total = 0;
    for (const auto& endpoint : endpoints) {
      transport::UnitClient client(context, endpoint, kWait);
      auto stats = client.stats();
      REQUIRE(stats);
      total += stats->devices;
    }
    return total / replicas;  // each device is on every replica of its partition
  }

  zmq::context_t context;
  std::vector<RunningUnit> units;
  uint32_t replicas;
  std::vector<std::string> endpoints;
  std::unique_ptr<RunningGateway> gateway;
  std::unique_ptr<transport::UnitClient> clients[8];
};

const std::string kOk = R"({"ok":true})";

// The NDJSON lines of `reports`, one per report.
std::string ndjson(const std::vector<Report>& reports) {
  std::string lines;
  for (const auto& r : reports) lines += reportToJsonLine(r) + "\n";
  return lines;
}

// Sends `lines` from a thread of its own while this one reads `count`
// replies (a pipelining client that never blocks on its own replies).
std::vector<std::string> sendWhileReading(LineClient& client, const std::string& lines,
                                          size_t count) {
  bool sent = false;
  std::thread writer([&] { sent = client.send(lines); });
  auto replies = client.readLines(count);
  writer.join();
  REQUIRE(sent);
  return replies;
}

bool isError(const std::string& reply) {
  return reply.rfind(R"({"ok":false,"error":")", 0) == 0 && reply.size() > 25 &&
         reply.back() == '}';
}

// ------------------------------------------------------------- RPC client

class IngestRpc {
 public:
  explicit IngestRpc(const std::string& address)
      : client_(address), ingest_(client_.getMain<wire::Ingest>()) {}

  // Sends every batch as its own call, all pipelined on the one connection,
  // and waits (at most kWait) for all the answers, in order.
  std::vector<BatchOutcome> send(const std::vector<std::vector<Report>>& batches) {
    kj::Vector<kj::Promise<BatchOutcome>> calls;
    for (const auto& batch : batches) {
      auto request = ingest_.reportRequest();
      auto list = request.initBatch().initReports(static_cast<unsigned>(batch.size()));
      for (size_t i = 0; i < batch.size(); ++i) {
        writeReport(batch[i], list[static_cast<unsigned>(i)]);
      }
      calls.add(request.send().then(
          [](auto&& response) { return readBatchOutcome(response.getResult()); }));
    }
    // (The client's loop has not run while the test checked the units: a
    // plain kj::Timer deadline would count from before that.)
    auto answers =
        client_
            .timeoutAfter(std::chrono::duration_cast<std::chrono::milliseconds>(kWait).count() *
                              kj::MILLISECONDS,
                          kj::joinPromises(calls.releaseAsArray()), "no RPC answer in time")
            .wait(client_.getWaitScope());
    return std::vector<BatchOutcome>(std::make_move_iterator(answers.begin()),
                                     std::make_move_iterator(answers.end()));
  }

 private:
  client::RpcClient client_;
  wire::Ingest::Client ingest_;
};

// ------------------------------------------------------------------ data

// `n` reports with ids "<prefix>-<i>" around a city; `ids` keeps the
// strings the reports view (a deque: they never move).
std::vector<Report> cityReports(std::mt19937_64& rng, const std::string& prefix, size_t n,
                                int64_t tsMs, std::deque<std::string>& ids) {
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<Report> out;
  for (size_t i = 0; i < n; ++i) {
    ids.push_back(prefix + "-" + std::to_string(i));
    out.push_back(Report{.id = ids.back(),
                         .lat = 31.0 + 0.5 * unit(rng),
                         .lon = 121.2 + 0.6 * unit(rng),
                         .tsMs = tsMs});
  }
  return out;
}

// Waits (at most kVisible) until every report is the stored position of
// its device on its owning unit, and checks each one.
// Every report of `expected` is on every replica of its device (`replicas`:
// how many of them to check, all by default).
void requireStored(Cluster& cluster, const std::vector<Report>& expected,
                   size_t replicas = SIZE_MAX) {
  const auto giveUp = std::chrono::steady_clock::now() + kVisible;
  for (const auto& r : expected) {
    const std::string id(r.id);
    for (size_t replica = 0; replica < std::min<size_t>(replicas, cluster.replicas); ++replica) {
      std::optional<Hit> hit = cluster.get(id, replica);
      while ((!hit || hit->tsMs != r.tsMs) && std::chrono::steady_clock::now() < giveUp) {
        std::this_thread::sleep_for(5ms);
        hit = cluster.get(id, replica);
      }
      INFO("device " << id << " on replica " << replica);
      REQUIRE(hit);
      CHECK(hit->tsMs == r.tsMs);
      CHECK(hit->lat == geo::quantize(r.lat));
      CHECK(hit->lon == geo::quantize(r.lon));
    }
  }
}

// ------------------------------------------------------------------ tests

TEST_CASE("locus-gateway routes reports from both protocols to their owning units", "[cluster]") {
  Cluster cluster;
  std::mt19937_64 rng(11);
  std::deque<std::string> ids;
  const auto textReports = cityReports(rng, "text", 5000, kTsMs + 1000, ids);
  const auto rpcReports = cityReports(rng, "rpc", 5000, kTsMs + 1000, ids);

  // RPC: ten pipelined calls of 500 reports each.
  IngestRpc rpc(cluster.gateway->rpcAddress);
  std::vector<std::vector<Report>> batches;
  for (size_t start = 0; start < rpcReports.size(); start += 500) {
    batches.emplace_back(rpcReports.begin() + static_cast<std::ptrdiff_t>(start),
                         rpcReports.begin() + static_cast<std::ptrdiff_t>(start + 500));
  }
  for (const auto& outcome : rpc.send(batches)) {
    CHECK(outcome.accepted == 500);
    CHECK(outcome.stale == 0);
    CHECK(outcome.rejected.empty());
  }

  // Text: all lines pipelined from one thread, replies read on this one.
  LineClient text(cluster.gateway->textAddress);
  const std::string lines = ndjson(textReports);
  const auto replies = sendWhileReading(text, lines, textReports.size());
  REQUIRE(replies.size() == textReports.size());
  for (const auto& reply : replies) REQUIRE(reply == kOk);

  requireStored(cluster, textReports);
  requireStored(cluster, rpcReports);
  CHECK(cluster.devicesStored() == textReports.size() + rpcReports.size());

  SECTION("older reports are acknowledged and ignored, newer ones win") {
    std::deque<std::string> moreIds;
    std::mt19937_64 rng2(12);
    auto older = cityReports(rng2, "text", 200, kTsMs, moreIds);        // older than stored
    auto newer = cityReports(rng2, "rpc", 200, kTsMs + 2000, moreIds);  // newer than stored
    std::string stale;
    for (const auto& r : older) stale += reportToJsonLine(r) + "\n";
    REQUIRE(text.send(stale));
    for (const auto& reply : text.readLines(older.size())) REQUIRE(reply == kOk);
    auto outcome = rpc.send(
        {std::vector<Report>(older.begin(), older.end())});  // same stale ids again, by RPC
    CHECK(outcome[0].accepted == older.size());
    outcome = rpc.send({newer});
    CHECK(outcome[0].accepted == newer.size());

    requireStored(cluster, newer);
    // The stale ones changed nothing: the first 200 text reports still hold.
    requireStored(cluster, std::vector<Report>(textReports.begin(), textReports.begin() + 200));
  }
}

TEST_CASE("an ingest client whose loop sat idle past its call timeout is answered, not resent",
          "[cluster]") {
  // Its loop runs only while it waits (here, in flush()); a deadline
  // counted from the loop's last poll would have passed already.
  Cluster cluster(2);
  client::IngestClient ingest(cluster.gateway->rpcAddress,
                              client::IngestClient::Options{.callTimeout = 300 * kj::MILLISECONDS});
  std::mt19937_64 rng(21);
  std::deque<std::string> ids;
  for (int round = 0; round < 2; ++round) {
    const auto batch = cityReports(rng, "idle-" + std::to_string(round), 50, kTsMs, ids);
    BatchOutcome outcome;
    ingest.send(
        batch.size(), [&](size_t i, wire::Report::Builder out) { writeReport(batch[i], out); },
        [&](const BatchOutcome& o) { outcome = o; });
    std::this_thread::sleep_for(700ms);
    ingest.flush();
    CHECK(outcome.accepted == batch.size());
  }
  CHECK(ingest.reconnects() == 0);
  CHECK(ingest.reportsResent() == 0);
}

TEST_CASE("locus-gateway answers every bad line with an error, in order, and keeps going",
          "[cluster]") {
  Cluster cluster;
  const std::string longLine =
      R"({"id":"bad-long","lat":1,"lon":2,"x":")" + std::string(5000, 'a') + "\"}";
  std::string exact = R"({"id":"good-exact","lat":1.5,"lon":2.5,"ts":1763000000000,"x":")";
  exact += std::string(4096 - exact.size() - 2, 'b') + "\"}";
  REQUIRE(exact.size() == 4096);

  struct Line {
    std::string text;
    bool ok;
  };
  const std::vector<Line> table{
      {R"({"id":"good-1","lat":31.2,"lon":121.4,"ts":1763000000000})", true},
      {"this is not json", false},
      {R"({"id":"bad-1","lat":31.2,"lon":121.4)", false},  // cut short
      {R"([1,2,3])", false},
      {R"("just a string")", false},
      {R"({"id":7,"lat":31.2,"lon":121.4})", false},
      {R"({"lat":31.2,"lon":121.4})", false},
      {R"({"id":"bad-2","lon":121.4})", false},
      {R"({"id":"bad-3","lat":31.2})", false},
      {R"({"id":"bad-4","lat":"31.2","lon":121.4})", false},
      {R"({"id":"bad-5","lat":31.2,"lon":true})", false},
      {R"({"id":"bad-6","lat":95,"lon":121.4})", false},
      {R"({"id":"bad-7","lat":31.2,"lon":-181})", false},
      {R"({"id":"bad-8","lat":NaN,"lon":121.4})", false},
      {R"({"id":"bad-9","lat":1e999,"lon":121.4})", false},
      {R"({"id":"bad-10","lat":31.2,"lon":-Infinity})", false},
      {R"({"id":"","lat":31.2,"lon":121.4})", false},
      {R"({"id":"bad\u0001ctl","lat":31.2,"lon":121.4})", false},
      {R"({"id":")" + std::string(129, 'x') + R"(","lat":31.2,"lon":121.4})", false},
      {"{\"id\":\"bad-\xff\xfe\",\"lat\":31.2,\"lon\":121.4}", false},  // not UTF-8
      {R"({"id":"bad-11","lat":31.2,"lon":121.4,"ts":-5})", false},
      {R"({"id":"bad-12","lat":31.2,"lon":121.4,"ts":1.5})", false},
      {R"({"id":"bad-13","lat":31.2,"lon":121.4,"ts":"now"})", false},
      {R"({"id":"bad-14","lat":31.2,"lon":121.4,"speed_mps":"fast"})", false},
      {R"({"id":"bad-15","lat":31.2,"lon":121.4,"heading_deg":400})", false},
      {R"({"id":"bad-16","lat":10,"lon":10,"ts":32503680000000})", false},  // year 3000
      {longLine, false},
      {"", false},
      {"\r", false},
      {std::string("\0\0\0", 3), false},
      {R"({"id":"good-2","lat":-33.9,"lon":151.2,"ts":1763000000001})"
       "\r",
       true},
      {exact, true},
      {exact + "\r", true},
      {R"({"id":"good-3","lat":0,"lon":180,"ts":1763000000002,"unknown":[1,{}]})", true},
  };

  LineClient client(cluster.gateway->textAddress);
  // Twice over: the first pass line by line, the second pipelined at once.
  for (int pass = 0; pass < 2; ++pass) {
    std::string all;
    for (const auto& line : table) all += line.text + "\n";
    if (pass == 0) {
      for (const auto& line : table) {
        REQUIRE(client.send(line.text + "\n"));
        const auto reply = client.readLines(1);
        INFO("line: " << line.text.substr(0, 120));
        REQUIRE(reply.size() == 1);
        if (line.ok) {
          CHECK(reply[0] == kOk);
        } else {
          CHECK(isError(reply[0]));
        }
      }
    } else {
      REQUIRE(client.send(all));
      const auto replies = client.readLines(table.size());
      REQUIRE(replies.size() == table.size());
      for (size_t i = 0; i < table.size(); ++i) {
        INFO("line " << i << ": " << table[i].text.substr(0, 120) << " → " << replies[i]);
        CHECK((table[i].ok ? replies[i] == kOk : isError(replies[i])));
      }
    }
  }
  // The replies name the problem.
  REQUIRE(client.send(longLine + "\n\n" +
                      R"({"id":"bad-6","lat":95,"lon":121.4})"
                      "\n"));
  const auto named = client.readLines(3);
  REQUIRE(named.size() == 3);
  CHECK(named[0] == R"({"ok":false,"error":"line is longer than 4096 bytes"})");
  CHECK(named[1] == R"({"ok":false,"error":"empty line"})");
  CHECK(named[2].find("lat 95") != std::string::npos);

  // The good lines are stored; the bad ones changed nothing.
  requireStored(cluster, {Report{.id = "good-1", .lat = 31.2, .lon = 121.4, .tsMs = kTsMs},
                          Report{.id = "good-2", .lat = -33.9, .lon = 151.2, .tsMs = kTsMs + 1},
                          Report{.id = "good-exact", .lat = 1.5, .lon = 2.5, .tsMs = kTsMs},
                          Report{.id = "good-3", .lat = 0, .lon = 180, .tsMs = kTsMs + 2}});
  for (int i = 1; i <= 16; ++i) CHECK(!cluster.get("bad-" + std::to_string(i)));
  CHECK(!cluster.get("bad-long"));
  CHECK(cluster.devicesStored() == 4);
}

TEST_CASE("locus-gateway keeps a connection working while another sends garbage", "[cluster]") {
  Cluster cluster;
  LineClient garbage(cluster.gateway->textAddress);
  LineClient good(cluster.gateway->textAddress);
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);

  std::deque<std::string> ids;
  const auto reports = cityReports(rng, "steady", 2000, kTsMs, ids);
  size_t garbageLines = 0;
  for (size_t i = 0; i < reports.size(); i += 100) {
    // 20 KiB of random bytes (their newlines end lines), then a good chunk.
    std::string noise(20'000, '\0');
    for (auto& c : noise) {
      c = static_cast<char>(byte(rng));
      if (c == '\n') ++garbageLines;
    }
    REQUIRE(garbage.send(noise));
    std::string chunk;
    for (size_t j = i; j < i + 100; ++j) chunk += reportToJsonLine(reports[j]) + "\n";
    REQUIRE(good.send(chunk));
    for (const auto& reply : good.readLines(100)) REQUIRE(reply == kOk);
  }
  // The garbage connection got one error per line it ended, and still works.
  REQUIRE(garbage.send("\n"));
  ++garbageLines;
  const auto errors = garbage.readLines(garbageLines);
  REQUIRE(errors.size() == garbageLines);
  for (const auto& e : errors) REQUIRE(isError(e));
  REQUIRE(garbage.send(R"({"id":"after-garbage","lat":1,"lon":2,"ts":1763000000000})"
                       "\n"));
  REQUIRE(garbage.readLines(1) == std::vector<std::string>{kOk});

  requireStored(cluster, reports);
  requireStored(cluster, {Report{.id = "after-garbage", .lat = 1, .lon = 2, .tsMs = kTsMs}});
}

TEST_CASE("locus-gateway rejects invalid RPC reports by index and stamps absent times",
          "[cluster]") {
  Cluster cluster;
  IngestRpc rpc(cluster.gateway->rpcAddress);
  const std::string longId(129, 'x');
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<Report> batch{
      {.id = "rpc-ok-1", .lat = 10, .lon = 20, .tsMs = kTsMs},
      {.id = "rpc-bad-lat", .lat = 95, .lon = 20, .tsMs = kTsMs},
      {.id = "rpc-ok-2", .lat = -10, .lon = -20, .tsMs = 0},  // stamped by the gateway
      {.id = "", .lat = 10, .lon = 20, .tsMs = kTsMs},
      {.id = "rpc-bad-nan", .lat = nan, .lon = 20, .tsMs = kTsMs},
      {.id = longId, .lat = 10, .lon = 20, .tsMs = kTsMs},
      {.id = "rpc-bad-ts", .lat = 10, .lon = 20, .tsMs = -1},
      {.id = "rpc-ok-3", .lat = 90, .lon = -180, .tsMs = kTsMs},
      {.id = "rpc-bad-future", .lat = 10, .lon = 10, .tsMs = 32'503'680'000'000},  // year 3000
  };
  const int64_t before = wallClockMs();
  const auto outcomes = rpc.send({batch});
  const int64_t after = wallClockMs();
  REQUIRE(outcomes.size() == 1);
  const auto& outcome = outcomes[0];
  CHECK(outcome.accepted == 3);
  CHECK(outcome.stale == 0);
  std::vector<uint32_t> rejectedAt;
  for (const auto& [index, reason] : outcome.rejected) {
    rejectedAt.push_back(index);
    CHECK(!reason.empty());
  }
  CHECK(rejectedAt == std::vector<uint32_t>{1, 3, 4, 5, 6, 8});
  CHECK_THAT(outcome.rejected.back().second, Catch::Contains("ahead of the gateway's clock"));

  requireStored(cluster, {batch[0], batch[7]});
  const auto giveUp = std::chrono::steady_clock::now() + kVisible;
  auto stamped = cluster.get("rpc-ok-2");
  while (!stamped && std::chrono::steady_clock::now() < giveUp) {
    std::this_thread::sleep_for(5ms);
    stamped = cluster.get("rpc-ok-2");
  }
  REQUIRE(stamped);
  CHECK(stamped->tsMs >= before);
  CHECK(stamped->tsMs <= after);
  CHECK(!cluster.get("rpc-bad-lat"));
  CHECK(!cluster.get("rpc-bad-nan"));
  CHECK(!cluster.get("rpc-bad-ts"));
  CHECK(!cluster.get("rpc-bad-future"));
  CHECK(cluster.devicesStored() == 3);
}

TEST_CASE("locus-gateway flushes what it acknowledged and exits 0 on SIGTERM", "[cluster]") {
  Cluster cluster;
  std::mt19937_64 rng(5);
  std::deque<std::string> ids;
  const auto reports = cityReports(rng, "last", 300, kTsMs, ids);
  LineClient client(cluster.gateway->textAddress);
  const std::string lines = ndjson(reports);
  REQUIRE(client.send(lines));
  for (const auto& reply : client.readLines(reports.size())) REQUIRE(reply == kOk);

  cluster.gateway->process.signal(SIGTERM);
  const auto status = cluster.gateway->process.waitExit(kWait);
  INFO("locus-gateway stderr:\n" << cluster.gateway->process.stderrText());
  REQUIRE(status);
  CHECK(status->exited);
  CHECK(status->code == 0);
  requireStored(cluster, reports);
}

TEST_CASE("locus-gateway refuses bad flags and a busy address with a reason", "[cluster]") {
  RunningUnit unit;
  const std::string gateway = binary("locus-gateway");
  testkit::checkRefusesToStart(gateway, {}, "--units");
  testkit::checkRefusesToStart(gateway, {"--units", unit.endpoint, "--listen", "nonsense"},
                               "nonsense");
  testkit::checkRefusesToStart(
      gateway, {"--units", unit.endpoint, "--listen-text", "127.0.0.1:99999"}, "99999");
  testkit::checkRefusesToStart(gateway, {"--units", unit.endpoint, "--http-listen", "nowhere"},
                               "--http-listen nowhere");
  testkit::checkRefusesToStart(gateway, {"--units", unit.endpoint, "--max-future-skew", "soon"},
                               "--max-future-skew");
  testkit::checkRefusesToStart(gateway, {"--units", unit.endpoint, "--max-future-skew", "-5s"},
                               "--max-future-skew");
  testkit::checkRefusesToStart(
      gateway,
      {"--units", "not-an-endpoint", "--listen", "127.0.0.1:0", "--listen-text", "127.0.0.1:0"},
      "not-an-endpoint");

  RunningGateway busy({unit.endpoint});
  testkit::checkRefusesToStart(
      gateway,
      {"--units", unit.endpoint, "--listen", busy.rpcAddress, "--listen-text", "127.0.0.1:0"},
      busy.rpcAddress);
  testkit::checkRefusesToStart(
      gateway,
      {"--units", unit.endpoint, "--listen", "127.0.0.1:0", "--listen-text", busy.textAddress},
      busy.textAddress);
}

TEST_CASE("locus-gateway serves many text connections at once", "[cluster]") {
  Cluster cluster;
  constexpr size_t kConnections = 400;
  std::deque<std::string> ids;
  std::mt19937_64 rng(9);
  const auto reports = cityReports(rng, "conn", kConnections * 3, kTsMs, ids);
  std::vector<std::unique_ptr<LineClient>> clients;
  for (size_t i = 0; i < kConnections; ++i) {
    clients.push_back(std::make_unique<LineClient>(cluster.gateway->textAddress));
  }
  // Three lines per connection, the first two sent before any is answered.
  for (size_t i = 0; i < kConnections; ++i) {
    REQUIRE(clients[i]->send(reportToJsonLine(reports[3 * i]) + "\n" +
                             reportToJsonLine(reports[3 * i + 1]) + "\nnot json\n"));
  }
  for (size_t i = 0; i < kConnections; ++i) {
    REQUIRE(clients[i]->send(reportToJsonLine(reports[3 * i + 2]) + "\n"));
    const auto replies = clients[i]->readLines(4);
    REQUIRE(replies.size() == 4);
    CHECK(replies[0] == kOk);
    CHECK(replies[1] == kOk);
    CHECK(isError(replies[2]));
    CHECK(replies[3] == kOk);
  }
  requireStored(cluster, reports);
}

TEST_CASE("locus-gateway stops reading when a unit does not answer, and resumes", "[cluster]") {
  // A long batch deadline: while the unit is stopped nothing times out, so
  // only the in-flight window and the buffer bound can let lines through.
  Cluster cluster(1, {"LOCUS_BATCH_TIMEOUT_MS=20000"}, Http::kOn);
  cluster.units[0].process.signal(SIGSTOP);
  std::deque<std::string> ids;
  std::mt19937_64 rng(13);
  const auto reports = cityReports(rng, "slow", 60'000, kTsMs, ids);
  const std::string lines = ndjson(reports);

  LineClient client(cluster.gateway->textAddress);
  bool sent = false;
  std::thread writer([&] { sent = client.send(lines); });
  // The gateway stops reading: it takes at most the window (8 batches of
  // 1000) and the buffer bound (20,000), or the read chunks a connection
  // may hold unanswered (64 of 8 KiB), whichever binds first.
  double read = 0;
  for (auto giveUp = std::chrono::steady_clock::now() + kWait;
       std::chrono::steady_clock::now() < giveUp;) {
    std::this_thread::sleep_for(300ms);
    const double now = cluster.metric("locus_gateway_reports_routed_total");
    if (now > 0 && now == read) break;
    read = now;
  }
  CHECK(read > 0);
  CHECK(read < 30'000);
  // And nothing is acknowledged while the unit is stopped: nothing is stored.
  CHECK(cluster.metric(R"(locus_gateway_reports_total{protocol="text",outcome="accepted"})") == 0);

  cluster.units[0].process.signal(SIGCONT);
  const auto replies = client.readLines(reports.size());
  writer.join();
  REQUIRE(sent);
  REQUIRE(replies.size() == reports.size());
  for (const auto& reply : replies) REQUIRE(reply == kOk);
  requireStored(cluster, reports);
}

TEST_CASE("locus-gateway refuses a stalled unit's reports and keeps the others flowing",
          "[cluster][outcomes]") {
  Cluster cluster(2, {"LOCUS_BATCH_TIMEOUT_MS=500"}, Http::kOn, /*replicas=*/1);
  cluster.units[0].process.signal(SIGSTOP);
  std::deque<std::string> ids;
  std::mt19937_64 rng(17);
  const auto reports = cityReports(rng, "stall", 80'000, kTsMs, ids);
  const std::string lines = ndjson(reports);

  LineClient client(cluster.gateway->textAddress);
  const auto replies = sendWhileReading(client, lines, reports.size());
  // Every line is answered while the unit is stopped: nothing waits on it.
  REQUIRE(replies.size() == reports.size());
  size_t refused = 0, unconfirmed = 0, okOther = 0;
  std::vector<Report> other;
  for (size_t i = 0; i < reports.size(); ++i) {
    const bool stalledShard = cluster.holding(reports[i].id)[0] == 0;
    INFO("line " << i << ": " << replies[i]);
    if (!stalledShard) {
      REQUIRE(replies[i] == kOk);
      ++okOther;
      other.push_back(reports[i]);
    } else {
      // Never an ok: the unit stored none of them.
      REQUIRE(isError(replies[i]));
      if (replies[i].find("not confirmed") != std::string::npos) {
        ++unconfirmed;  // sent before the stall was seen
      } else {
        CHECK_THAT(replies[i], Catch::Contains("has not answered"));
        ++refused;
      }
    }
  }
  CHECK(refused > 0);
  CHECK(unconfirmed <= 8'000);  // at most the window
  CHECK(cluster.metric(R"(locus_gateway_reports_refused_total{reason="unit_stalled"})") ==
        static_cast<double>(refused));
  requireStored(cluster, other);

  // Back: after the probe is answered, its reports are acknowledged again.
  cluster.units[0].process.signal(SIGCONT);
  const auto giveUp = std::chrono::steady_clock::now() + kWait;
  std::string reply;
  for (int i = 0; std::chrono::steady_clock::now() < giveUp; ++i) {
    std::string id;
    do {
      id = "back-" + std::to_string(i++);
    } while (cluster.holding(id)[0] != 0);
    REQUIRE(client.send(
        reportToJsonLine(Report{.id = id, .lat = 31.2, .lon = 121.4, .tsMs = kTsMs}) + "\n"));
    reply = client.readLines(1).at(0);
    if (reply == kOk) break;
    std::this_thread::sleep_for(100ms);
  }
  CHECK(reply == kOk);
}

// Waits (bounded) until the unit at `endpoint` serves every partition.
bool awaitServing(Cluster& cluster, const std::string& endpoint,
                  std::chrono::milliseconds within = 10s) {
  transport::UnitClient client(cluster.context, endpoint, kWait);
  const auto giveUp = std::chrono::steady_clock::now() + within;
  for (;;) {
    auto stats = client.stats();
    if (stats && stats->notServing.empty() && !stats->copying) return true;
    if (std::chrono::steady_clock::now() >= giveUp) return false;
    std::this_thread::sleep_for(50ms);
  }
}

TEST_CASE("locus-gateway with two replicas: acks go on while one is stopped, and it catches up",
          "[cluster][outcomes][replicas]") {
  Cluster cluster(2, {"LOCUS_BATCH_TIMEOUT_MS=500"}, Http::kOn);  // 2 replicas
  cluster.units[0].process.signal(SIGSTOP);
  std::deque<std::string> ids;
  std::mt19937_64 rng(23);
  const auto reports = cityReports(rng, "rep", 40'000, kTsMs, ids);
  LineClient client(cluster.gateway->textAddress);
  const auto replies = sendWhileReading(client, ndjson(reports), reports.size());
  REQUIRE(replies.size() == reports.size());
  std::vector<Report> acked;
  size_t unconfirmed = 0;
  for (size_t i = 0; i < reports.size(); ++i) {
    INFO("line " << i << ": " << replies[i]);
    if (replies[i] == kOk) {
      acked.push_back(reports[i]);
    } else {
      // Only what was sent to the stopped replica before it was seen
      // stalled: an ok needs every replica that is up.
      CHECK_THAT(replies[i], Catch::Contains("not confirmed"));
      ++unconfirmed;
    }
  }
  CHECK(acked.size() > reports.size() / 2);  // the rest of the stream is acknowledged
  CHECK(cluster.metric("locus_gateway_copies_skipped_total") > 0);
  // On the replica that is up: checked there alone while the other sleeps.
  for (const auto& r : acked) {
    auto hit = cluster.get(std::string(r.id), cluster.holding(r.id)[0] == 1 ? 0 : 1);
    REQUIRE(hit);
    REQUIRE(hit->tsMs == r.tsMs);
  }

  // Back: it missed writes, so the gateway makes it copy them from the
  // other replica; then both hold every acknowledged report.
  cluster.units[0].process.signal(SIGCONT);
  const auto giveUp = std::chrono::steady_clock::now() + 10s;
  while (cluster.metric("locus_gateway_catch_up_orders_total") < 1 &&
         std::chrono::steady_clock::now() < giveUp)
    std::this_thread::sleep_for(50ms);
  INFO("gateway metrics:\n" << httpGet(cluster.gateway->httpAddress, "/metrics").body);
  REQUIRE(cluster.metric("locus_gateway_catch_up_orders_total") >= 1);
  REQUIRE(awaitServing(cluster, cluster.endpoints[0]));
  requireStored(cluster, acked);
  transport::UnitClient unit0(cluster.context, cluster.endpoints[0], kWait);
  auto stats = unit0.stats();
  REQUIRE(stats);
  CHECK(stats->copiedDevices >= acked.size());
}

TEST_CASE("locus-gateway has a restarted replica copy what it missed before it serves",
          "[cluster][outcomes][replicas]") {
  Cluster cluster(2, {}, Http::kOn);  // 2 replicas: every device on both units
  std::deque<std::string> ids;
  std::mt19937_64 rng(29);
  const auto before = cityReports(rng, "kept", 5'000, kTsMs, ids);
  {
    LineClient client(cluster.gateway->textAddress);
    for (const auto& reply : sendWhileReading(client, ndjson(before), before.size()))
      REQUIRE(reply == kOk);
  }
  // A memory-only unit killed and restarted where its peers look for it,
  // told the cluster has replicas: it comes back empty and serves nothing.
  const std::string endpoint = cluster.endpoints[1];
  cluster.units[1].process.signal(SIGKILL);
  REQUIRE(cluster.units[1].process.waitExit(kWait));
  RunningUnit restarted(Http::kOff, {"--replicas", "2"}, endpoint);
  REQUIRE(restarted.endpoint == endpoint);
  REQUIRE(awaitServing(cluster, endpoint));
  // Every device is back on it, copied from the other replica.
  transport::UnitClient unit1(cluster.context, endpoint, kWait);
  for (const auto& r : before) {
    auto hit = unit1.get(r.id);
    INFO("device " << r.id);
    REQUIRE(hit);
    CHECK(hit->tsMs == r.tsMs);
  }
  auto stats = unit1.stats();
  REQUIRE(stats);
  CHECK(stats->devices == before.size());
}

TEST_CASE("locus-gateway counts an unanswered batch as unconfirmed, and applied when it lands",
          "[cluster][outcomes]") {
  Cluster cluster(1, {"LOCUS_BATCH_TIMEOUT_MS=300"}, Http::kOn);
  cluster.units[0].process.signal(SIGSTOP);
  std::deque<std::string> ids;
  std::mt19937_64 rng(19);
  const auto reports = cityReports(rng, "late", 500, kTsMs, ids);
  const std::string lines = ndjson(reports);
  LineClient client(cluster.gateway->textAddress);
  REQUIRE(client.send(lines));
  // The batch times out while the unit is stopped: unconfirmed, not lost,
  // and each device is told so rather than given an ok.
  for (const auto& reply : client.readLines(reports.size()))
    CHECK_THAT(reply, Catch::Contains("not confirmed"));
  CHECK(cluster.awaitMetric("locus_gateway_reports_unconfirmed_total", 500));
  CHECK(cluster.metric("locus_gateway_reports_lost_total") == 0);

  // ZeroMQ still held it: once the unit runs it is applied, and said so.
  cluster.units[0].process.signal(SIGCONT);
  requireStored(cluster, reports);
  CHECK(cluster.awaitMetric("locus_gateway_reports_applied_late_total", 500));
  CHECK(cluster.metric("locus_gateway_reports_lost_total") == 0);
  // The late reply reached no waiting caller: the channel counts it.
  const auto metrics = httpGet(cluster.gateway->httpAddress, "/metrics").body;
  INFO(metrics);
  CHECK(metricSum(metrics, "locus_unit_replies_dropped_total") >= 1);
}

TEST_CASE("locus-gateway counts the positions a memory-only unit dropped when it restarted",
          "[cluster][outcomes]") {
  Cluster cluster(1, {}, Http::kOn);
  std::deque<std::string> ids;
  std::mt19937_64 rng(23);
  const auto reports = cityReports(rng, "held", 300, kTsMs, ids);
  const std::string lines = ndjson(reports);
  LineClient client(cluster.gateway->textAddress);
  REQUIRE(client.send(lines));
  for (const auto& reply : client.readLines(reports.size())) REQUIRE(reply == kOk);
  const std::string labels = fmt::format(R"({{shard="0",endpoint="{}"}})", cluster.endpoints[0]);
  REQUIRE(cluster.awaitMetric("locus_unit_reported_devices" + labels, 300));

  // kill -9 and a new unit on the same endpoint: it starts empty.
  cluster.units[0].process.signal(SIGKILL);
  REQUIRE(cluster.units[0].process.waitExit(kWait));
  ChildProcess again(binary("locus-unit"), {"--listen", cluster.endpoints[0]});
  REQUIRE(again.waitForStderr(kUnitListening, kWait));
  CHECK(cluster.awaitMetric("locus_unit_restarts_total" + labels, 1));
  CHECK(cluster.metric("locus_unit_positions_dropped_total" + labels) == 300);
  CHECK(cluster.gateway->process.waitForStderr(std::regex("restarted: it held 300 positions"),
                                               kWait));
}

}  // namespace
}  // namespace locus::gateway
