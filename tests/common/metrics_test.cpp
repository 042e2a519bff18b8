// The Prometheus exposition: names checked, labels escaped, histograms
// cumulative with _sum and _count, and the HTTP endpoint that serves it.
#include "locus/common/metrics.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "locus/testkit/http.h"
#include "locus/transport/http_endpoint.h"

namespace locus::metrics {
namespace {

TEST_CASE("counters and gauges render with help, type and escaped labels", "[metrics]") {
  Counter applied, rejected;
  Gauge devices;
  applied += 41;
  ++applied;
  devices.set(7.5);
  Registry r;
  r.counter("locus_reports_total", "Reports\nby outcome", {{"outcome", "applied"}}, applied);
  r.counter("locus_reports_total", "Reports\nby outcome", {{"outcome", "a\"b\\c\nd"}}, rejected);
  r.gauge("locus_devices", "Positions held", {}, devices);
  r.gauge("locus_answer", "Computed at scrape", {{"unit", "u1"}}, [] { return 42.0; });

  CHECK(r.render() ==
        "# HELP locus_answer Computed at scrape\n"
        "# TYPE locus_answer gauge\n"
        "locus_answer{unit=\"u1\"} 42\n"
        "# HELP locus_devices Positions held\n"
        "# TYPE locus_devices gauge\n"
        "locus_devices 7.5\n"
        "# HELP locus_reports_total Reports\\nby outcome\n"
        "# TYPE locus_reports_total counter\n"
        "locus_reports_total{outcome=\"applied\"} 42\n"
        "locus_reports_total{outcome=\"a\\\"b\\\\c\\nd\"} 0\n");
}

TEST_CASE("histograms count into cumulative buckets with sum and count", "[metrics]") {
  Histogram h({0.001, 0.01, 0.1});
  for (double v : {0.0005, 0.001, 0.002, 0.05, 0.05, 3.0}) h.observe(v);
  const auto s = h.snapshot();
  CHECK(s.cumulative == std::vector<uint64_t>{2, 3, 5, 6});  // le is inclusive
  CHECK(s.sum == Approx(3.1035));

  Registry r;
  r.histogram("locus_seconds", "Latency", {{"kind", "nearest"}}, h);
  const std::string text = r.render();
  CHECK(text.find("locus_seconds_bucket{kind=\"nearest\",le=\"0.001\"} 2\n") != std::string::npos);
  CHECK(text.find("locus_seconds_bucket{kind=\"nearest\",le=\"+Inf\"} 6\n") != std::string::npos);
  CHECK(text.find("locus_seconds_count{kind=\"nearest\"} 6\n") != std::string::npos);
  CHECK(text.find("locus_seconds_sum{kind=\"nearest\"} 3.1035\n") != std::string::npos);
}

TEST_CASE("observations from several threads are all counted", "[metrics]") {
  Counter c;
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        ++c;
        h.observe(0.001);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(c.value() == 40'000);
  CHECK(h.snapshot().cumulative.back() == 40'000);
}

TEST_CASE("bad metric names, label names and bucket orders are refused", "[metrics]") {
  Registry r;
  Counter c;
  Gauge g;
  CHECK_THROWS_AS(r.counter("9starts_with_digit", "", {}, c), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("has-dash", "", {}, c), std::invalid_argument);
  CHECK_THROWS_AS(r.counter("ok_name", "", {{"bad-label", "v"}}, c), std::invalid_argument);
  r.counter("same_name", "", {}, c);
  CHECK_THROWS_AS(r.gauge("same_name", "", {}, g), std::invalid_argument);
  CHECK_THROWS_AS(Histogram({0.1, 0.01}), std::invalid_argument);
}

TEST_CASE("the HTTP endpoint serves health, readiness and metrics on loopback", "[metrics][http]") {
  Registry r;
  Counter served;
  served += 3;
  r.counter("locus_served_total", "Served", {}, served);
  std::atomic<bool> ready{false};
  transport::HttpEndpoint http("127.0.0.1:0", r, [&] {
    return transport::Readiness{ready.load(),
                                {{"why", ready ? "all units answer" : "unit 2 is down"}}};
  });
  const std::string address = http.address();
  REQUIRE(address.rfind("127.0.0.1:", 0) == 0);

  const auto health = testkit::httpGet(address, "/healthz");
  CHECK(health.status == 200);
  CHECK(nlohmann::json::parse(health.body)["status"] == "ok");

  auto readiness = testkit::httpGet(address, "/readyz");
  CHECK(readiness.status == 503);
  auto body = nlohmann::json::parse(readiness.body);
  CHECK(body["ready"] == false);
  CHECK(body["why"] == "unit 2 is down");
  ready = true;
  readiness = testkit::httpGet(address, "/readyz");
  CHECK(readiness.status == 200);
  CHECK(nlohmann::json::parse(readiness.body)["ready"] == true);

  const auto metrics = testkit::httpGet(address, "/metrics");
  CHECK(metrics.status == 200);
  CHECK(metrics.contentType.rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(testkit::metricValue(metrics.body, "locus_served_total") == 3.0);

  httplib::Client client("http://" + address);
  const auto post = client.Post("/metrics", "x", "text/plain");
  REQUIRE(post);
  CHECK(post->status == 405);
  CHECK(post->get_header_value("Allow") == "GET");
  CHECK(nlohmann::json::parse(post->body)["error"] == "/metrics takes GET only, not POST");
  const auto del = client.Delete("/healthz");
  REQUIRE(del);
  CHECK(del->status == 405);

  const auto missing = testkit::httpGet(address, "/nope");
  CHECK(missing.status == 404);
  CHECK(nlohmann::json::parse(missing.body)["error"].get<std::string>().find("/nope") !=
        std::string::npos);
}

TEST_CASE("an HTTP endpoint stopped at once after it started stops cleanly", "[metrics][http]") {
  Registry r;
  std::string address;
  for (int i = 0; i < 50; ++i) {
    transport::HttpEndpoint http("127.0.0.1:0", r, [] { return transport::Readiness{true, {}}; });
    address = http.address();
    // Every tenth is asked first: it serves from the start.
    if (i % 10 == 0) CHECK(testkit::httpGet(address, "/healthz").status == 200);
  }
  // Stopped means closed: the last one's port no longer answers.
  CHECK(testkit::httpGet(address, "/healthz").status == 0);
}

TEST_CASE("an HTTP address in use is refused with a reason", "[metrics][http]") {
  Registry r;
  transport::HttpEndpoint first("127.0.0.1:0", r, [] { return transport::Readiness{true, {}}; });
  const std::string port = first.address().substr(first.address().rfind(':') + 1);
  CHECK_THROWS_WITH(transport::HttpEndpoint("127.0.0.1:" + port, r,
                                            [] {
                                              return transport::Readiness{true, {}};
                                            }),
                    Catch::Contains("cannot bind HTTP on 127.0.0.1:" + port));
}

}  // namespace
}  // namespace locus::metrics
