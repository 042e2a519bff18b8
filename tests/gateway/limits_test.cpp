// The real `locus-gateway` under a hostile load of connections: out of file
// descriptors it keeps listening and resumes; over --max-connections it
// refuses cleanly with a reason; a client announcing a message over the RPC
// limit is dropped before its bytes are buffered.
#include <poll.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "locus/testkit/cluster.h"
#include "locus/testkit/hostile.h"
#include "locus/testkit/http.h"
#include "locus/testkit/line_client.h"

namespace locus::gateway {
namespace {

using namespace std::chrono_literals;
using namespace locus::testkit;

const std::string kLine = R"({"id":"limits-1","lat":31.2,"lon":121.4,"ts":1763000000000})"
                          "\n";
const std::string kOk = R"({"ok":true})";

// A gateway in front of one unit, started as `prlimit --nofile=FDS` when
// `fds` is set, with HTTP on and `extra` flags.
struct Gateway {
  explicit Gateway(std::optional<int> fds, std::vector<std::string> extra = {})
      : process(fds ? "/usr/bin/prlimit" : binary("locus-gateway"), [&] {
          std::vector<std::string> args;
          if (fds) {
            args = {"--nofile=" + std::to_string(*fds) + ":" + std::to_string(*fds),
                    binary("locus-gateway")};
          }
          for (std::string a : {"--units", unit.endpoint.c_str(), "--listen", "127.0.0.1:0",
                                "--listen-text", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"}) {
            args.push_back(a);
          }
          args.insert(args.end(), extra.begin(), extra.end());
          return args;
        }()) {
    auto rpc = process.waitForStderr(kGatewayRpcListening, kWait);
    auto text = process.waitForStderr(kGatewayTextListening, kWait);
    auto http = process.waitForStderr(kHttpListening, kWait);
    INFO("stderr:\n" << process.stderrText());
    REQUIRE(rpc);
    REQUIRE(text);
    REQUIRE(http);
    rpcAddress = *rpc;
    textAddress = *text;
    httpAddress = *http;
    REQUIRE(awaitHttpStatus(httpAddress, "/readyz", 200, kWait).status == 200);
  }

  // A new text connection acknowledges a line within kWait.
  bool servesANewClient() {
    const auto giveUp = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < giveUp) {
      LineClient client(textAddress);
      if (client.send(kLine) && client.readLines(1) == std::vector<std::string>{kOk}) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  double metric(const std::string& series) {
    return metricValue(httpGet(httpAddress, "/metrics").body, series).value_or(-1);
  }

  RunningUnit unit;
  ChildProcess process;
  std::string rpcAddress, textAddress, httpAddress;
};

TEST_CASE("locus-gateway keeps listening when it runs out of file descriptors, and resumes",
          "[cluster][limits]") {
  // A connection limit above what the descriptors allow, so accept() fails.
  Gateway gateway(128, {"--max-connections", "100000"});
  std::vector<std::unique_ptr<LineClient>> clients;
  for (int i = 0; i < 200; ++i)
    clients.push_back(std::make_unique<LineClient>(gateway.textAddress));
  INFO("stderr:\n" << gateway.process.stderrText());
  REQUIRE(gateway.process.waitForStderr(std::regex("text listener on .* cannot accept"), kWait));
  clients.clear();

  // Descriptors free again: new clients are served, the listener is back.
  CHECK(gateway.servesANewClient());
  CHECK(gateway.process.waitForStderr(std::regex("text listener on .* accepts again"), kWait));
  CHECK(gateway.metric(R"(locus_listener_accept_errors_total{listener="text"})") > 0);
  CHECK(gateway.metric(R"(locus_listener_accepting{listener="text"})") == 1);
  CHECK(awaitHttpStatus(gateway.httpAddress, "/readyz", 200, kWait).status == 200);
}

TEST_CASE("locus-gateway refuses connections over --max-connections with a reason",
          "[cluster][limits]") {
  Gateway gateway(std::nullopt, {"--max-connections", "4"});
  std::vector<std::unique_ptr<LineClient>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<LineClient>(gateway.textAddress));
    REQUIRE(held.back()->send(kLine));
    REQUIRE(held.back()->readLines(1) == std::vector<std::string>{kOk});
  }
  // The fifth is told why and closed; an RPC client over the limit is closed.
  LineClient fifth(gateway.textAddress);
  const auto refusal = fifth.readLines(1);
  REQUIRE(refusal.size() == 1);
  CHECK_THAT(refusal[0], Catch::Contains("--max-connections"));
  CHECK_THAT(refusal[0], Catch::StartsWith(R"({"ok":false,"error":")"));
  CHECK(fifth.closedByPeer());
  LineClient rpc(gateway.rpcAddress);
  CHECK(rpc.closedByPeer());
  CHECK(gateway.metric(R"(locus_listener_refused_total{listener="text"})") == 1);
  CHECK(gateway.metric(R"(locus_listener_refused_total{listener="rpc"})") == 1);
  CHECK(gateway.metric("locus_connections_open") == 4);

  // The held connections still work; once one closes there is room again.
  REQUIRE(held[0]->send(kLine));
  CHECK(held[0]->readLines(1) == std::vector<std::string>{kOk});
  held.pop_back();
  CHECK(gateway.servesANewClient());
}

TEST_CASE("locus-gateway drops an RPC client that announces a message over the limit",
          "[cluster][limits]") {
  Gateway gateway(std::nullopt);
  const uint64_t before = residentBytes(gateway.process.pid()).value_or(0);
  std::vector<std::unique_ptr<LineClient>> attackers;
  for (int i = 0; i < 20; ++i) {
    attackers.push_back(std::make_unique<LineClient>(gateway.rpcAddress));
    // The gateway hangs up at the header: far fewer than 8 MiB get in.
    CHECK(sendHugeRpcMessage(*attackers.back(), 8 << 20) < (8u << 20));
    CHECK(attackers.back()->closedByPeer());
  }
  const uint64_t after = residentBytes(gateway.process.pid()).value_or(0);
  INFO("resident before " << before << " B, after 20 attackers " << after << " B");
  CHECK(after < before + (64u << 20));
  // Good clients are unaffected.
  CHECK(gateway.servesANewClient());
}

std::string lineFor(const std::string& id) {
  return R"({"id":")" + id +
         R"(","lat":31.2,"lon":121.4})"
         "\n";
}

TEST_CASE("locus-gateway closes silent connections and refuses reports past the rate",
          "[cluster][limits]") {
  Gateway gateway(std::nullopt, {"--idle-timeout", "300ms", "--max-reports-per-s", "20"});

  // Silent on either port: closed after --idle-timeout.
  LineClient silentText(gateway.textAddress);
  LineClient silentRpc(gateway.rpcAddress);
  CHECK(silentText.closedByPeer());
  CHECK(silentRpc.closedByPeer());

  // A client that keeps talking keeps its connection.
  LineClient active(gateway.textAddress);
  for (int i = 0; i < 10; ++i) {
    REQUIRE(active.send(lineFor("active-" + std::to_string(i))));
    REQUIRE(active.readLines(1) == std::vector<std::string>{kOk});
    std::this_thread::sleep_for(100ms);
  }

  // 60 reports at once against 20/s: about a second's worth pass, each
  // other is refused with the reason; the connection stays.
  LineClient greedy(gateway.textAddress);
  std::string burst;
  for (int i = 0; i < 60; ++i) burst += lineFor("greedy-" + std::to_string(i));
  REQUIRE(greedy.send(burst));
  const auto replies = greedy.readLines(60);
  REQUIRE(replies.size() == 60);
  size_t ok = 0, limited = 0;
  for (const auto& r : replies) {
    if (r == kOk) ++ok;
    if (r.find("--max-reports-per-s") != std::string::npos) ++limited;
  }
  CHECK(ok >= 20);
  CHECK(ok <= 25);
  CHECK(ok + limited == 60);
  CHECK(gateway.metric(R"(locus_gateway_refused_total{reason="rate"})") == double(limited));
  CHECK(gateway.metric(R"(locus_gateway_refused_total{reason="idle"})") >= 2);
  std::this_thread::sleep_for(200ms);  // the bucket refills (within --idle-timeout)
  REQUIRE(greedy.send(lineFor("greedy-later")));
  CHECK(greedy.readLines(1) == std::vector<std::string>{kOk});
}

TEST_CASE("a slowloris of 500 connections and a flood to the limit leave a good client fast",
          "[cluster][limits][slowloris]") {
  constexpr int kSlow = 500;
  constexpr int kMaxConnections = 700;
  // The test holds ~700 sockets and so does the gateway.
  rlimit fds{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &fds) == 0);
  if (fds.rlim_cur < 4096 && fds.rlim_max >= 4096) {
    fds.rlim_cur = 4096;
    REQUIRE(setrlimit(RLIMIT_NOFILE, &fds) == 0);
  }
  Gateway gateway(std::nullopt, {"--max-connections", std::to_string(kMaxConnections)});

  // The good client: one report at a time, 200 a second, each waited for.
  std::atomic<bool> stop{false};
  std::vector<double> ackMs;
  std::atomic<bool> goodFailed{false};
  LineClient good(gateway.textAddress);
  std::thread device([&] {
    for (int i = 0; !stop; ++i) {
      const auto sent = std::chrono::steady_clock::now();
      if (!good.send(lineFor("good-" + std::to_string(i))) ||
          good.readLines(1) != std::vector<std::string>{kOk}) {
        goodFailed = true;
        return;
      }
      ackMs.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent)
              .count());
      std::this_thread::sleep_for(5ms);
    }
  });

  // 500 connections that drip a line a byte at a time, never finishing it.
  std::vector<std::unique_ptr<LineClient>> slow;
  for (int i = 0; i < kSlow; ++i) slow.push_back(std::make_unique<LineClient>(gateway.textAddress));
  const std::string partial = R"({"id":"slowloris","lat":31.2,"lon")";
  for (size_t byte = 0; byte < 10; ++byte) {
    for (auto& s : slow) s->send(partial.substr(byte, 1));
    std::this_thread::sleep_for(50ms);
  }
  // Then a flood: connections until the gateway refuses one.
  std::vector<std::unique_ptr<LineClient>> flood;
  bool refused = false;
  for (int i = 0; i < kMaxConnections && !refused; ++i) {
    flood.push_back(std::make_unique<LineClient>(gateway.textAddress));
    pollfd item{flood.back()->fd(), POLLIN, 0};
    refused = poll(&item, 1, 5) > 0;  // refused ones are told at once
  }
  for (int round = 0; round < 10; ++round) {  // the drip goes on under the flood
    for (auto& s : slow) s->send(partial.substr(10 + round, 1));
    std::this_thread::sleep_for(50ms);
  }
  stop = true;
  device.join();

  REQUIRE_FALSE(goodFailed);
  REQUIRE(ackMs.size() > 100);
  std::sort(ackMs.begin(), ackMs.end());
  const double p99 = ackMs[ackMs.size() * 99 / 100];
  INFO(ackMs.size() << " acks, p50 " << ackMs[ackMs.size() / 2] << " ms, p99 " << p99 << " ms, "
                    << flood.size() << " flood connections");
  CHECK(p99 < 100);
  CHECK(gateway.metric("locus_connections_open") == kMaxConnections);
  CHECK(gateway.metric(R"(locus_listener_refused_total{listener="text"})") >= 1);
}

}  // namespace
}  // namespace locus::gateway