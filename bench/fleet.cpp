#include "fleet.h"

#include <fmt/format.h>
#include <kj/async-io.h>
#include <kj/compat/tls.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "locus.capnp.h"
#include "locus/client/rpc_client.h"
#include "locus/common/clock.h"
#include "locus/common/wire.h"
#include "locus/testkit/cluster.h"
#include "locus/transport/net.h"
#include "workload.h"

namespace locus::bench {
namespace {

uint64_t usSince(Clock::time_point t) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t).count());
}

// What every connection shares: the schedule, the tallies, the first
// failure.
struct Shared {
  const FleetOptions& options;
  kj::Timer& timer;
  Clock::time_point start;         // the steady clock at kjStart
  kj::TimePoint kjStart;           // KJ's clock at start
  Clock::time_point reportsFrom;   // the end of the ramp
  Clock::time_point reportsUntil;  // the end of the run
  FleetResult result;
  std::optional<std::string> failure;
  std::mt19937_64 rng{7};

  // KJ's time point for `t` on the steady clock.
  kj::TimePoint kjAt(Clock::time_point t) const {
    return kjStart + std::chrono::duration_cast<std::chrono::nanoseconds>(t - start).count() *
                         kj::NANOSECONDS;
  }
  void fail(std::string why) {
    if (!failure) failure = std::move(why);
  }
};

// One device's connection; the subclass speaks its protocol.
class Connection {
 public:
  Connection(Shared& s, uint32_t device)
      : s_(s), device_(device), id_(fmt::format("fleet-{}", device)), at_(randomPoint(s.rng)) {}
  virtual ~Connection() noexcept(false) = default;

  // Opens (and logs in), then reports on the schedule until the end.
  kj::Promise<void> run(Clock::time_point openAt, Clock::time_point firstAt) {
    return s_.timer.atTime(s_.kjAt(openAt))
        .then([this] { return open(); })
        .then([this, firstAt] {
          ++s_.result.opened;
          return loop(firstAt);
        })
        .catch_([this](kj::Exception&& e) {
          s_.fail(fmt::format("{} connection of device {}: {}", protocol(), device_,
                              e.getDescription().cStr()));
        });
  }

 protected:
  virtual const char* protocol() const = 0;
  virtual Histogram& histogram() = 0;
  virtual kj::Promise<void> open() = 0;
  // Sends `report`; resolves with "" once it is acknowledged ok, else with
  // why not.
  virtual kj::Promise<std::string> send(const Report& report) = 0;

  Shared& s_;
  const uint32_t device_;
  const std::string id_;

 private:
  kj::Promise<void> loop(Clock::time_point at) {
    if (at >= s_.reportsUntil || s_.failure) return kj::READY_NOW;
    return s_.timer.atTime(s_.kjAt(at)).then([this, at] {
      ++s_.result.sent;
      at_ = moved(at_, s_.rng);
      return send(Report{.id = id_, .lat = at_.lat, .lon = at_.lon, .tsMs = wallClockMs()})
          .then([this, at](std::string why) {
            if (!why.empty()) {
              s_.fail(fmt::format("device {} ({}): {}", device_, protocol(), why));
              return kj::Promise<void>(kj::READY_NOW);
            }
            const uint64_t us = usSince(at);
            ++s_.result.acked;
            s_.result.ackUs.record(us);
            histogram().record(us);
            // On schedule: a report that is late is sent at once, not skipped.
            return loop(at + seconds(1 / s_.options.ratePerS));
          });
    });
  }

  geo::LatLon at_;  // where the device is
};

class RpcDevice final : public Connection {
 public:
  RpcDevice(Shared& s, uint32_t device) : Connection(s, device) {}

 protected:
  const char* protocol() const override { return "rpc"; }
  Histogram& histogram() override { return s_.result.rpcAckUs; }
  kj::Promise<void> open() override {
    client_ = std::make_unique<client::RpcClient>(s_.options.rpc, s_.options.tls);
    ingest_ = client_->getMain<wire::Ingest>();
    if (!s_.options.token.empty()) {
      auto login = ingest_->loginRequest();
      login.setToken(s_.options.token);
      ingest_ = login.send().getIngest();
    }
    // The first call waits for the connection: make it now, not at the
    // first report.
    auto probe = ingest_->reportRequest();
    probe.initBatch().initReports(0);
    return probe.send().ignoreResult();
  }
  kj::Promise<std::string> send(const Report& report) override {
    auto request = ingest_->reportRequest();
    writeReport(report, request.initBatch().initReports(1)[0]);
    return request.send().then([](capnp::Response<wire::Ingest::ReportResults>&& r) {
      auto rejected = r.getResult().getRejected();
      return rejected.size() == 0 ? std::string() : std::string(rejected[0].getReason().cStr());
    });
  }

 private:
  std::unique_ptr<client::RpcClient> client_;
  std::optional<wire::Ingest::Client> ingest_;
};

class TextDevice final : public Connection {
 public:
  TextDevice(Shared& s, uint32_t device, kj::Network& network, kj::TlsContext* tls)
      : Connection(s, device), network_(network), tls_(tls) {}

 protected:
  const char* protocol() const override { return "ndjson"; }
  Histogram& histogram() override { return s_.result.textAckUs; }
  kj::Promise<void> open() override {
    auto connected =
        network_.parseAddress(s_.options.text).then([](kj::Own<kj::NetworkAddress>&& address) {
          return address->connect();
        });
    if (tls_ != nullptr) {
      std::string name = s_.options.tls.serverName;
      if (name.empty()) name = transport::splitHostPort(s_.options.text).value().first;
      connected = connected.then([this, name](kj::Own<kj::AsyncIoStream>&& plain) {
        return tls_->wrapClient(kj::mv(plain), name);
      });
    }
    return connected.then([this](kj::Own<kj::AsyncIoStream>&& stream) -> kj::Promise<void> {
      stream_ = kj::mv(stream);
      if (s_.options.token.empty()) return kj::READY_NOW;
      return exchange(fmt::format("{{\"auth\":\"{}\"}}\n", s_.options.token))
          .then([](std::string why) {
            if (!why.empty()) KJ_FAIL_REQUIRE("login refused", why);
          });
    });
  }
  kj::Promise<std::string> send(const Report& report) override {
    return exchange(fmt::format("{{\"id\":\"{}\",\"lat\":{:.7f},\"lon\":{:.7f},\"ts\":{}}}\n",
                                report.id, report.lat, report.lon, report.tsMs));
  }

 private:
  // Writes `line`, reads the answer line: "" for {"ok":true}, else it.
  kj::Promise<std::string> exchange(std::string line) {
    out_ = std::move(line);
    return stream_->write(out_.data(), out_.size()).then([this] { return readLine(); });
  }
  kj::Promise<std::string> readLine() {
    if (const auto end = in_.find('\n'); end != std::string::npos) {
      std::string answer = in_.substr(0, end);
      in_.erase(0, end + 1);
      return answer == R"({"ok":true})" ? std::string() : answer;
    }
    return stream_->tryRead(buffer_, 1, sizeof buffer_).then([this](size_t n) {
      if (n == 0) KJ_FAIL_REQUIRE("the gateway closed the connection");
      in_.append(buffer_, n);
      return readLine();
    });
  }

  kj::Network& network_;
  kj::TlsContext* tls_;
  kj::Own<kj::AsyncIoStream> stream_;
  std::string out_, in_;
  char buffer_[256];
};

}  // namespace

FleetResult runFleet(const FleetOptions& o, const Deadline& deadline) {
  if (o.connections < 2) throw std::runtime_error("--connections must be at least 2");
  // The event loop of this thread, shared with the RPC clients.
  client::RpcClient loopOwner(o.rpc, o.tls);
  auto& io = loopOwner.getIoProvider();
  auto& waitScope = loopOwner.getWaitScope();
  kj::Own<kj::TlsContext> tls;
  if (o.tls.on()) tls = transport::tlsClientContext(o.tls);

  Shared s{.options = o,
           .timer = io.getTimer(),
           .start = Clock::now(),
           .kjStart = io.getTimer().now(),
           .reportsFrom = {},
           .reportsUntil = {},
           .result = {},
           .failure = {}};
  s.reportsFrom = s.start + seconds(o.rampSeconds + 1);
  s.reportsUntil = s.reportsFrom + seconds(o.seconds);
  if (s.reportsUntil + std::chrono::seconds(10) > deadline.at()) {
    throw std::runtime_error("--max-seconds is too short for the ramp and --connection-seconds");
  }
  if (o.gatewayPid > 0) s.result.rssBeforeBytes = testkit::rssBytes(o.gatewayPid);

  // Even devices speak RPC, odd ones NDJSON; each opens at its place in the
  // ramp and first reports at a random phase of its period after it.
  std::vector<std::unique_ptr<Connection>> devices;
  auto runs = kj::heapArrayBuilder<kj::Promise<void>>(o.connections);
  std::uniform_real_distribution<double> phase(0, 1 / o.ratePerS);
  for (int i = 0; i < o.connections; ++i) {
    const auto device = static_cast<uint32_t>(i);
    if (i % 2 == 0) {
      devices.push_back(std::make_unique<RpcDevice>(s, device));
    } else {
      devices.push_back(std::make_unique<TextDevice>(s, device, io.getNetwork(), tls.get()));
    }
    const auto openAt = s.start + seconds(o.rampSeconds * i / o.connections);
    runs.add(devices.back()->run(openAt, s.reportsFrom + seconds(phase(s.rng))));
  }

  // Once a second: the gateway's memory, whether the ramp is done.
  bool sampling = true;
  std::function<kj::Promise<void>()> sample = [&]() -> kj::Promise<void> {
    if (!sampling) return kj::READY_NOW;
    if (o.gatewayPid > 0) {
      const uint64_t rss = testkit::rssBytes(o.gatewayPid);
      s.result.rssPeakBytes = std::max(s.result.rssPeakBytes, rss);
      if (s.result.rssOpenBytes == 0 && s.result.opened == static_cast<uint64_t>(o.connections)) {
        s.result.rssOpenBytes = rss;
      }
    }
    if (s.result.rampSeconds == 0 && s.result.opened == static_cast<uint64_t>(o.connections)) {
      s.result.rampSeconds = std::chrono::duration<double>(Clock::now() - s.start).count();
    }
    return s.timer.afterDelay(1 * kj::SECONDS).then([&] { return sample(); });
  };
  auto sampler = sample().eagerlyEvaluate(nullptr);
  auto all = kj::joinPromises(runs.finish());
  auto timeout = s.timer.atTime(s.kjAt(deadline.at())).then([&s] {
    s.fail("--max-seconds passed with reports unanswered");
  });
  all.exclusiveJoin(kj::mv(timeout)).wait(waitScope);
  sampling = false;
  s.result.seconds = std::chrono::duration<double>(Clock::now() - s.reportsFrom).count();
  if (s.failure) throw std::runtime_error(*s.failure);
  if (s.result.opened != static_cast<uint64_t>(o.connections)) {
    throw std::runtime_error(
        fmt::format("only {} of {} connections opened", s.result.opened, o.connections));
  }
  if (s.result.rampSeconds == 0) {
    s.result.rampSeconds = std::chrono::duration<double>(s.reportsFrom - s.start).count();
  }
  return s.result;
}

nlohmann::ordered_json toJson(const FleetOptions& o, const FleetResult& r) {
  using json = nlohmann::ordered_json;
  const auto ms = [](const Histogram& h) {
    const auto at = [&h](double p) { return static_cast<double>(h.percentile(p)) / 1000; };
    return json{{"p50", at(50)},
                {"p90", at(90)},
                {"p99", at(99)},
                {"p99_9", at(99.9)},
                {"max", static_cast<double>(h.max()) / 1000},
                {"count", h.count()}};
  };
  json fleet{{"connections", o.connections},
             {"rpc_connections", (o.connections + 1) / 2},
             {"ndjson_connections", o.connections / 2},
             {"reports_per_s_per_connection", o.ratePerS},
             {"tls", o.tls.on()},
             {"tokens", !o.token.empty()},
             {"ramp_seconds", r.rampSeconds},
             {"seconds", r.seconds},
             {"reports_sent", r.sent},
             {"reports_acked", r.acked},
             {"reports_per_s", r.seconds > 0 ? static_cast<double>(r.acked) / r.seconds : 0},
             {"ack_ms", ms(r.ackUs)},
             {"rpc_ack_ms", ms(r.rpcAckUs)},
             {"ndjson_ack_ms", ms(r.textAckUs)}};
  if (o.gatewayPid > 0) {
    fleet["gateway_rss_bytes"] =
        json{{"before", r.rssBeforeBytes}, {"open", r.rssOpenBytes}, {"peak", r.rssPeakBytes}};
    fleet["gateway_rss_bytes_per_connection"] =
        static_cast<double>(r.rssOpenBytes - std::min(r.rssOpenBytes, r.rssBeforeBytes)) /
        o.connections;
  }
  return json{{"system", "locus"}, {"fleet", fleet}};
}

void printFleet(std::ostream& out, const FleetOptions& o, const FleetResult& r) {
  const auto line = [&out](const std::string& name, const std::string& value) {
    out << fmt::format("{:<34}{}\n", name, value);
  };
  const auto ms = [](const Histogram& h) {
    const auto at = [&h](double p) { return static_cast<double>(h.percentile(p)) / 1000; };
    return fmt::format("p50 {:.2f}  p99 {:.2f}  p99.9 {:.2f}  max {:.2f} ms", at(50), at(99),
                       at(99.9), static_cast<double>(h.max()) / 1000);
  };
  line("connections (rpc + ndjson)",
       fmt::format("{} ({} + {}), opened in {:.1f} s", o.connections, (o.connections + 1) / 2,
                   o.connections / 2, r.rampSeconds));
  line("reports",
       fmt::format("{} sent, {} acked in {:.1f} s ({:.0f}/s, {} per connection/s)", r.sent, r.acked,
                   r.seconds, r.seconds > 0 ? static_cast<double>(r.acked) / r.seconds : 0,
                   o.ratePerS));
  line("ack latency, all", ms(r.ackUs));
  line("ack latency, rpc", ms(r.rpcAckUs));
  line("ack latency, ndjson", ms(r.textAckUs));
  if (o.gatewayPid > 0) {
    const double mib = 1 << 20;
    line("gateway rss", fmt::format("{:.1f} MiB before, {:.1f} MiB open, {:.1f} MiB peak",
                                    static_cast<double>(r.rssBeforeBytes) / mib,
                                    static_cast<double>(r.rssOpenBytes) / mib,
                                    static_cast<double>(r.rssPeakBytes) / mib));
  }
}

}  // namespace locus::bench
