#include "locus_backend.h"

#include <httplib.h>
#include <sys/timerfd.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <thread>

#include "locus/client/ingest_client.h"
#include "locus/client/query_client.h"

namespace locus::bench {
namespace {

constexpr auto kCallTimeout = 60 * kj::SECONDS;
constexpr auto kSettleTimeout = std::chrono::seconds(300);  // a catch-up of 10M devices included
constexpr auto kSettleQuiet = std::chrono::seconds(1);

NearestAnswer nearestAnswer(const Result<client::Answer>& answer) {
  if (!answer) throw std::runtime_error("nearest: " + answer.error().message);
  return NearestAnswer{answer->result.hits, answer->partial};
}

void writeDevice(const Fleet& fleet, Move m, wire::Report::Builder r) {
  char id[32] = "bench-";
  const auto end = std::to_chars(id + 6, id + sizeof id, m.device).ptr;
  r.setId(capnp::Text::Reader(id, static_cast<size_t>(end - id)));
  r.setLat(fleet.positions[m.device].lat);
  r.setLon(fleet.positions[m.device].lon);
  r.setTsMs(m.tsMs);
}

// The open loop's wake-ups on a session's event loop: a timerfd read
// through the loop, which wakes it to the microsecond where KJ's own timer
// rounds up to milliseconds.
class PreciseTimer {
 public:
  explicit PreciseTimer(client::RpcClient& client)
      : fd_(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) {
    if (fd_ < 0) throw std::runtime_error("timerfd_create failed");
    stream_ = client.getLowLevelIoProvider().wrapInputFd(
        fd_, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                 kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK |
                 kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
  }

  // Runs the loop until `until`.
  void runUntil(Clock::time_point until, kj::WaitScope& waitScope) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count();
    itimerspec at{};
    at.it_value = {static_cast<time_t>(ns / 1'000'000'000),
                   std::max(1L, static_cast<long>(ns % 1'000'000'000))};  // zero disarms
    if (timerfd_settime(fd_, TFD_TIMER_ABSTIME, &at, nullptr) != 0)
      throw std::runtime_error("timerfd_settime failed");
    uint64_t expirations = 0;
    stream_->read(&expirations, sizeof expirations).wait(waitScope);
  }

 private:
  int fd_;
  kj::Own<kj::AsyncInputStream> stream_;
};

// One worker's connections to the gateway and the server, on one KJ event
// loop: create and use it on one thread.
class LocusSession final : public Session, public kj::TaskSet::ErrorHandler {
 public:
  LocusSession(const std::string& gateway, const std::string& server, const std::string& http,
               const Deadline& deadline, const Credentials& credentials)
      : gateway_(gateway),
        server_(server),
        http_(http),
        deadline_(deadline),
        credentials_(credentials) {}

  // Batches of client::kBatchReports, pipelined; any rejection fails the run.
  void send(uint64_t count, const NextMove& moves, const Fleet& fleet,
            std::atomic<uint64_t>& done) override {
    client::IngestClient& ingest = ingestClient();
    for (uint64_t k = 0; k < count;) {
      deadline_.check("ingest");
      const auto n = std::min<uint64_t>(client::kBatchReports, count - k);
      ingest.send(
          n, [&](size_t j, wire::Report::Builder out) { writeDevice(fleet, moves(k + j), out); },
          [n, &done](const BatchOutcome& outcome) {
            if (!outcome.rejected.empty())
              throw std::runtime_error("the gateway rejected a report: " +
                                       outcome.rejected[0].second);
            if (outcome.accepted != n)
              throw std::runtime_error("the gateway accepted " + std::to_string(outcome.accepted) +
                                       " of " + std::to_string(n) + " reports");
            done += n;
          });
      k += n;
    }
    ingest.flush();
  }

  NearestAnswer nearest(geo::LatLon center, uint32_t k) override {
    deadline_.check("queries");
    if (!http_.empty()) return nearestOverHttp(center, k);
    return nearestAnswer(queryClient().nearest(NearestQuery{.center = center, .k = k}));
  }

  void startNearest(geo::LatLon center, uint32_t k, Answered answered) override {
    if (!tasks_) tasks_ = std::make_unique<kj::TaskSet>(*this);
    tasks_->add(queryClient()
                    .startNearest(NearestQuery{.center = center, .k = k})
                    .then([answered = std::move(answered)](Result<client::Answer>&& answer) {
                      answered(nearestAnswer(answer));
                    }));
  }

  // One nearestMany call.
  void startNearestMany(std::vector<geo::LatLon> centers, uint32_t k,
                        AnsweredMany answered) override {
    if (!tasks_) tasks_ = std::make_unique<kj::TaskSet>(*this);
    NearestMany many{.points = std::move(centers)};
    many.each.k = k;
    tasks_->add(queryClient().startNearestMany(many).then(
        [answered = std::move(answered)](Result<std::vector<client::Answer>>&& all) {
          if (!all) throw std::runtime_error("nearestMany: " + all.error().message);
          std::vector<NearestAnswer> answers;
          for (const auto& a : *all) answers.push_back(NearestAnswer{a.result.hits, a.partial});
          answered(std::move(answers));
        }));
  }

  void awaitAnswers(Clock::time_point until) override {
    client::QueryClient& query = queryClient();
    if (!timer_) timer_.emplace(query.rpc());
    timer_->runUntil(until, query.waitScope());
    if (failure_) {
      kj::Exception failure = kj::mv(*failure_);
      failure_.reset();
      kj::throwFatalException(kj::mv(failure));
    }
  }

 private:
  void taskFailed(kj::Exception&& exception) override {
    if (!failure_) failure_.emplace(kj::mv(exception));
  }

  // The first client made on this thread owns the event loop; the second
  // shares it.
  client::IngestClient& ingestClient() {
    if (!ingest_)
      ingest_ = std::make_unique<client::IngestClient>(
          gateway_,
          client::IngestClient::Options{
              .callTimeout = kCallTimeout, .token = credentials_.token, .tls = credentials_.tls});
    return *ingest_;
  }
  client::QueryClient& queryClient() {
    if (!query_)
      query_ = std::make_unique<client::QueryClient>(server_, kCallTimeout, credentials_.apiKey,
                                                     credentials_.tls);
    return *query_;
  }

  // GET /v1/nearest on this worker's keep-alive connection, as any HTTP
  // client would ask it; the JSON read back into hits.
  NearestAnswer nearestOverHttp(geo::LatLon center, uint32_t k) {
    if (!httpClient_) {
      httpClient_ = std::make_unique<httplib::Client>("http://" + http_);
      httpClient_->set_keep_alive(true);
      httpClient_->set_read_timeout(60);
    }
    char path[160];
    snprintf(path, sizeof path, "/v1/nearest?lat=%.17g&lon=%.17g&k=%u", center.lat, center.lon, k);
    const auto res = httpClient_->Get(path);
    if (!res) throw std::runtime_error("nearest over HTTP: " + httplib::to_string(res.error()));
    if (res->status != 200) throw std::runtime_error("nearest over HTTP: " + res->body);
    const auto j = nlohmann::json::parse(res->body);
    NearestAnswer out;
    out.partial = j["partial"].get<bool>();
    for (const auto& r : j["results"]) {
      out.hits.push_back(Hit{.id = r["id"].get<std::string>(),
                             .lat = r["lat"].get<double>(),
                             .lon = r["lon"].get<double>(),
                             .tsMs = r["ts"].get<int64_t>(),
                             .distanceM = r["distance_m"].get<double>()});
    }
    return out;
  }

  std::string gateway_, server_, http_;
  const Deadline& deadline_;
  const Credentials& credentials_;
  std::unique_ptr<httplib::Client> httpClient_;
  std::unique_ptr<client::IngestClient> ingest_;
  std::unique_ptr<client::QueryClient> query_;
  std::optional<PreciseTimer> timer_;
  std::optional<kj::Exception> failure_;  // the first open-loop query that failed
  std::unique_ptr<kj::TaskSet> tasks_;    // destroyed first: abandons the queries in flight
};

class LocusBackend final : public Backend {
 public:
  LocusBackend(std::string gateway, std::string server, const testkit::SpawnedCluster* spawned,
               const Deadline& deadline, std::string http, Credentials credentials,
               std::vector<int> cpuPids)
      : gateway_(std::move(gateway)),
        server_(std::move(server)),
        http_(std::move(http)),
        spawned_(spawned),
        deadline_(deadline),
        credentials_(std::move(credentials)),
        cpuPids_(std::move(cpuPids)) {}

  std::string name() const override { return http_.empty() ? "locus" : "locus-http"; }
  std::unique_ptr<Session> connect() override {
    return std::make_unique<LocusSession>(gateway_, server_, http_, deadline_, credentials_);
  }

  Totals totals() override {
    client::QueryClient client(server_, kCallTimeout, credentials_.apiKey, credentials_.tls);
    auto stats = client.stats();
    if (!stats) throw std::runtime_error("stats: " + stats.error().message);
    Totals totals;
    for (const UnitStats& s : stats->units) {
      totals.devices += s.devices;
      totals.reportsSeen += s.reportsApplied + s.reportsStale + s.reportsRejected;
      totals.reportsStale += s.reportsStale;
      totals.memoryBytes += s.memoryBytes;
      totals.catchingUp = totals.catchingUp || s.copying || !s.notServing.empty();
    }
    // Every device and report is on each replica of its partition.
    totals.devices /= stats->replicas;
    totals.reportsSeen /= stats->replicas;
    totals.reportsStale /= stats->replicas;
    if (!staleSeen_) staleSeen_ = totals.reportsStale;  // what the cluster held before this run
    totals.shardsTotal = stats->shards.total;
    totals.shardsAnswered = stats->shards.answered;
    return totals;
  }

  // Polls stats until the units have seen `reportsSeen` reports in all (the
  // gateway acknowledges before the units apply). A report the gateway
  // resent (a batch timed out on one replica) is seen twice, so the sum can
  // reach `reportsSeen` while a slow replica still works through its queue:
  // when stale reports grew since the last wait, it waits until the counters
  // have stood still for kSettleQuiet as well. And a unit that is catching
  // up (copying partitions from a peer) holds only part of them until done.
  Totals waitForReports(uint64_t reportsSeen, const std::string& phase) override {
    const auto until = std::min(Clock::now() + kSettleTimeout, deadline_.at());
    Totals last;
    auto lastChange = Clock::now();
    bool catchUpLogged = false;
    for (;;) {
      Totals t = totals();
      if (t.reportsSeen != last.reportsSeen || t.devices != last.devices) lastChange = Clock::now();
      const bool resent = t.reportsStale > *staleSeen_;
      if (t.catchingUp && !catchUpLogged) {
        std::cerr << "locus-bench: " << phase
                  << ": a unit is catching up (it was taken for stalled); waiting for it\n";
        catchUpLogged = true;
      }
      if (t.shardsAnswered == t.shardsTotal && t.reportsSeen >= reportsSeen && !t.catchingUp &&
          (!resent ||
           (Clock::now() - lastChange >= kSettleQuiet && t.reportsSeen == last.reportsSeen))) {
        if (resent) {
          std::cerr << "locus-bench: " << phase << ": " << t.reportsStale - *staleSeen_
                    << " stale reports (resent after a batch timeout?); waited for the units to "
                       "settle\n";
        }
        staleSeen_ = t.reportsStale;
        return t;
      }
      if (Clock::now() >= until) {
        throw std::runtime_error(phase + ": the units saw " + std::to_string(t.reportsSeen) +
                                 " of " + std::to_string(reportsSeen) + " reports (" +
                                 std::to_string(t.shardsAnswered) + "/" +
                                 std::to_string(t.shardsTotal) + " units answered) after " +
                                 std::to_string(kSettleTimeout.count()) + " s");
      }
      last = t;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  uint64_t rssBytes() override { return spawned_ != nullptr ? spawned_->unitsRssBytes() : 0; }
  double cpuSeconds() override {
    if (spawned_ != nullptr) return spawned_->cpuSeconds();
    if (cpuPids_.empty()) return -1;
    double total = 0;
    for (int pid : cpuPids_) total += testkit::cpuSeconds(pid);
    return total;
  }
  bool exact() const override { return true; }

 private:
  std::string gateway_, server_, http_;
  const testkit::SpawnedCluster* spawned_;
  const Deadline& deadline_;
  Credentials credentials_;
  std::vector<int> cpuPids_;
  std::optional<uint64_t> staleSeen_;  // reportsStale at the first stats and the last wait
};

}  // namespace

std::unique_ptr<Backend> makeLocusBackend(const std::string& gateway, const std::string& server,
                                          const testkit::SpawnedCluster* spawned,
                                          const Deadline& deadline, const std::string& http,
                                          const Credentials& credentials,
                                          std::vector<int> cpuPids) {
  return std::make_unique<LocusBackend>(gateway, server, spawned, deadline, http, credentials,
                                        std::move(cpuPids));
}

}  // namespace locus::bench
