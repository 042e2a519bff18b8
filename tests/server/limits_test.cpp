// The real `locus-server` against answers too large to carry: a query whose
// answer would exceed what one message holds gets a typed error and leaves
// every channel usable, and a channel that a unit breaks anyway (a reply
// over ZeroMQ's size limit) is reopened, counted and reflected in /readyz.
#include <capnp/message.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "locus.capnp.h"
#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/hostile.h"
#include "locus/testkit/http.h"
#include "locus/testkit/line_client.h"
#include "locus/testkit/placement.h"
#include "locus/transport/frame.h"
#include "locus/transport/unit_client.h"

namespace locus::server {
namespace {

using namespace locus::testkit;

// A stand-in for a unit on a ROUTER socket of its own: answers every batch
// of queries with stats or empty results, except that it answers the first
// batch with a nearest query by a frame over kMaxMessageBytes, as a broken
// or hostile unit might. Serves on its own thread until destroyed.
class OversizedReplyUnit {
 public:
  OversizedReplyUnit() : socket_(context_, zmq::socket_type::router) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind("tcp://127.0.0.1:*");
    endpoint = socket_.get(zmq::sockopt::last_endpoint);
    thread_ = std::thread([this] { serve(); });
  }
  ~OversizedReplyUnit() {
    stop_ = true;
    thread_.join();
  }

  std::string endpoint;
  std::atomic<int> oversized{0};  // oversized replies sent

 private:
  void serve() {
    while (!stop_) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) == 0) continue;
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(socket_, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
        continue;
      }
      if (frames.size() != 2) continue;
      FlatMessage in(frames[1].data(), frames[1].size());
      if (in.error()) continue;
      auto request = in.root<wire::UnitRequest>();
      if (!request.isQueries()) continue;
      const auto queries = request.getQueries();
      capnp::MallocMessageBuilder message;
      auto reply = message.initRoot<wire::UnitReply>();
      reply.setRequestId(request.getRequestId());
      auto answers = reply.initAnswers(queries.size());
      bool nearest = false;
      for (unsigned i = 0; i < queries.size(); ++i) {
        nearest = nearest || queries[i].isNearest();
        if (queries[i].isStats()) {
          answers[i].initStats().setName("oversized");
        } else {
          auto result = answers[i].initResult();
          result.initShards().setTotal(1);
          result.getShards().setAnswered(1);
        }
      }
      zmq::message_t out;
      if (nearest && oversized == 0) {
        ++oversized;
        out = zmq::message_t(static_cast<size_t>(kMaxMessageBytes) + 1024);
        std::memset(out.data(), 0, out.size());
      } else {
        out = transport::toFrame(message);
      }
      socket_.send(frames[0], zmq::send_flags::sndmore);
      socket_.send(out, zmq::send_flags::none);
    }
  }

  zmq::context_t context_;
  zmq::socket_t socket_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_CASE("locus-server reopens a channel that a unit broke with an oversized reply",
          "[cluster][limits]") {
  OversizedReplyUnit unit;
  RunningServer server({unit.endpoint}, 2000, "127.0.0.1:0", Http::kOn);
  REQUIRE(awaitHttpStatus(server.httpAddress, "/readyz", 200, kWait).status == 200);
  Rpc rpc(server.address);

  // The oversized reply never arrives: ZeroMQ drops the connection instead.
  const Answer broken = rpc.nearest(NearestQuery{{31.2, 121.4}, 10});
  REQUIRE(!broken.error);
  CHECK(broken.partial);
  CHECK(unit.oversized == 1);

  // Every later query is answered: the channel was reopened.
  for (int i = 0; i < 5; ++i) {
    INFO("query " << i << " after the broken reply; server stderr:\n"
                  << server.process.stderrText());
    const Answer a = rpc.nearest(NearestQuery{{31.2, 121.4}, 10});
    REQUIRE(!a.error);
    CHECK_FALSE(a.partial);
    CHECK(a.answered == 1);
  }
  const auto metrics = httpGet(server.httpAddress, "/metrics").body;
  INFO(metrics);
  CHECK(metricSum(metrics, "locus_unit_channel_resets_total") >= 1);
  CHECK(metricSum(metrics, "locus_unit_channel_answering") == 1);
  CHECK(awaitHttpStatus(server.httpAddress, "/readyz", 200, kWait).status == 200);
  CHECK(server.process.waitForStderr(std::regex("opened a new connection"), kWait));
}

TEST_CASE("locus-server refuses an unlimited area query over kMaxResults and keeps serving",
          "[cluster][limits]") {
  // Two units, each holding fewer than kMaxResults devices, more together:
  // the server refuses on the sum, the units would not.
  RunningUnit a, b;
  const std::vector<std::string> endpoints{a.endpoint, b.endpoint};
  std::mt19937_64 rng(11);
  std::vector<std::string> ids;
  const auto reports = worldReports(rng, kMaxResults + 2000, ids);
  zmq::context_t context;
  std::vector<std::vector<Report>> byShard(2);
  for (const auto& r : reports) byShard[ownerOf(r.id, 2, /*replicas=*/1)].push_back(r);
  for (uint32_t shard = 0; shard < 2; ++shard) {
    REQUIRE(byShard[shard].size() < kMaxResults);
    transport::UnitClient client(context, endpoints[shard], kWait);
    for (size_t start = 0; start < byShard[shard].size(); start += 5000) {
      const auto n = std::min<size_t>(5000, byShard[shard].size() - start);
      REQUIRE(client.apply(std::span(byShard[shard]).subspan(start, n)));
    }
  }
  RunningServer server(endpoints, 5000, "127.0.0.1:0", Http::kOff, {"--replicas", "1"});
  Rpc rpc(server.address);
  const geo::Box world{-90, -180, 90, 180};

  const Answer all = rpc.within(AreaQuery{.area = world});
  REQUIRE(all.error);
  CHECK(all.error->code == ErrorCode::kBadRequest);
  CHECK_THAT(all.error->message, Catch::Contains("52000 devices match"));
  CHECK_THAT(all.error->message, Catch::Contains("set a limit"));

  const Answer tooMany = rpc.within(AreaQuery{.area = world, .limit = kMaxResults + 1});
  REQUIRE(tooMany.error);
  CHECK(tooMany.error->code == ErrorCode::kBadRequest);
  const Answer kTooLarge = rpc.nearest(NearestQuery{{0, 0}, kMaxResults + 1});
  REQUIRE(kTooLarge.error);

  // The same area with a limit or as a count, and everything after, is
  // answered in full.
  const Answer limited = rpc.within(AreaQuery{.area = world, .limit = 100});
  REQUIRE(!limited.error);
  CHECK_FALSE(limited.partial);
  CHECK(limited.result.hits.size() == 100);
  CHECK(limited.result.count == kMaxResults + 2000);
  const Answer counted = rpc.within(AreaQuery{.area = world, .countOnly = true});
  REQUIRE(!counted.error);
  CHECK(counted.result.count == kMaxResults + 2000);
  const Answer most = rpc.nearest(NearestQuery{{31.25, 121.5}, kMaxResults});
  REQUIRE(!most.error);
  CHECK_FALSE(most.partial);
  CHECK(most.result.hits.size() == kMaxResults);
  const Answer after = rpc.nearest(NearestQuery{{31.25, 121.5}, 10});
  REQUIRE(!after.error);
  CHECK_FALSE(after.partial);
  CHECK(after.answered == 2);
}

TEST_CASE("locus-server keeps listening when it runs out of file descriptors, and resumes",
          "[cluster][limits]") {
  RunningUnit unit;
  ChildProcess server("/usr/bin/prlimit",
                      {"--nofile=96:96", binary("locus-server"), "--units", unit.endpoint,
                       "--listen", "127.0.0.1:0", "--max-connections", "100000"});
  auto bound = server.waitForStderr(kServerListening, kWait);
  INFO("stderr:\n" << server.stderrText());
  REQUIRE(bound);
  {
    std::vector<std::unique_ptr<LineClient>> clients;
    for (int i = 0; i < 150; ++i) clients.push_back(std::make_unique<LineClient>(*bound));
    REQUIRE(server.waitForStderr(std::regex("rpc listener on .* cannot accept"), kWait));
  }
  // Every connection closed: a new client is served.
  Rpc rpc(*bound);
  const Answer a = rpc.nearest(NearestQuery{{31.2, 121.4}, 10});
  REQUIRE(!a.error);
  CHECK_FALSE(a.partial);
  CHECK(server.waitForStderr(std::regex("rpc listener on .* accepts again"), kWait));
}

TEST_CASE("locus-server drops a client that announces a message over the RPC limit",
          "[cluster][limits]") {
  RunningUnit unit;
  RunningServer server({unit.endpoint}, 250);
  const uint64_t before = residentBytes(server.process.pid()).value_or(0);
  for (int i = 0; i < 20; ++i) {
    LineClient attacker(server.address);
    CHECK(sendHugeRpcMessage(attacker, 8 << 20) < (8u << 20));
    CHECK(attacker.closedByPeer());
  }
  const uint64_t after = residentBytes(server.process.pid()).value_or(0);
  INFO("resident before " << before << " B, after 20 attackers " << after << " B");
  CHECK(after < before + (64u << 20));
  Rpc rpc(server.address);
  CHECK_FALSE(rpc.nearest(NearestQuery{{31.2, 121.4}, 10}).partial);
}

}  // namespace
}  // namespace locus::server
