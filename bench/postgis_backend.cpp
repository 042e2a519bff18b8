#include "postgis_backend.h"

#include <libpq-fe.h>
#include <poll.h>

#include <charconv>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "locus/testkit/cluster.h"

namespace locus::bench {
namespace {

constexpr size_t kStatementsInFlight = 4;  // upserts, per connection

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};

std::string text(double v) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;  // shortest round-trip
  return std::string(buf, end);
}

// One blocking connection that may pipeline: every call either succeeds or
// throws with the server's or the socket's reason.
class Connection {
 public:
  explicit Connection(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (!conn_) throw std::runtime_error("postgis: cannot allocate a connection");
    if (PQstatus(conn_.get()) != CONNECTION_OK) fail("cannot connect (" + conninfo + ")");
  }

  PgResult exec(const std::string& sql) {
    leavePipeline();
    return check(PgResult(PQexec(conn_.get(), sql.c_str())), sql);
  }

  void prepare(const char* name, const std::string& sql, int params) {
    leavePipeline();
    check(PgResult(PQprepare(conn_.get(), name, sql.c_str(), params, nullptr)), sql);
  }

  PgResult execPrepared(const char* name, const std::vector<std::string>& values) {
    leavePipeline();
    const auto v = pointers(values);
    return check(PgResult(PQexecPrepared(conn_.get(), name, static_cast<int>(v.size()), v.data(),
                                         nullptr, nullptr, 0)),
                 name);
  }

  // Sends a prepared statement down the pipeline, a sync point after it (so
  // that each is its own transaction and its result comes back at once).
  void sendPrepared(const char* name, const std::vector<std::string>& values) {
    if (PQpipelineStatus(conn_.get()) == PQ_PIPELINE_OFF && PQenterPipelineMode(conn_.get()) != 1)
      fail("cannot enter pipeline mode");
    const auto v = pointers(values);
    if (PQsendQueryPrepared(conn_.get(), name, static_cast<int>(v.size()), v.data(), nullptr,
                            nullptr, 0) != 1 ||
        PQpipelineSync(conn_.get()) != 1)
      fail(std::string("cannot send ") + name);
    ++inFlight_;
  }

  size_t inFlight() const { return inFlight_; }

  // The result of the oldest statement in the pipeline, once its sync point
  // has come back; null when none has by `until` (or none is in flight).
  PgResult nextResult(Clock::time_point until) {
    for (;;) {
      if (PQconsumeInput(conn_.get()) != 1) fail("cannot read");
      while (inFlight_ > 0 && PQisBusy(conn_.get()) == 0) {
        PgResult r(PQgetResult(conn_.get()));
        if (!r) continue;  // the end of a statement's results; its sync follows
        const ExecStatusType status = PQresultStatus(r.get());
        if (status == PGRES_PIPELINE_SYNC) {
          --inFlight_;
          if (!ready_) throw std::runtime_error("postgis: a statement returned no result");
          return std::move(ready_);
        }
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
          throw std::runtime_error(std::string("postgis: ") + PQresultErrorMessage(r.get()));
        ready_ = std::move(r);
      }
      if (inFlight_ == 0 || !waitReadable(until)) return nullptr;
    }
  }

  int backendPid() const { return PQbackendPID(conn_.get()); }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("postgis: " + what + ": " + PQerrorMessage(conn_.get()));
  }

  PgResult check(PgResult r, const std::string& what) const {
    const ExecStatusType status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
      throw std::runtime_error("postgis: " + what.substr(0, 80) + ": " +
                               (r ? PQresultErrorMessage(r.get()) : PQerrorMessage(conn_.get())));
    return r;
  }

  void leavePipeline() {
    if (PQpipelineStatus(conn_.get()) == PQ_PIPELINE_OFF) return;
    while (inFlight_ > 0) nextResult(Clock::time_point::max());
    if (PQexitPipelineMode(conn_.get()) != 1) fail("cannot leave pipeline mode");
  }

  bool waitReadable(Clock::time_point until) const {
    const auto left = until - Clock::now();
    if (left <= Clock::duration::zero()) return false;
    const auto ns = until == Clock::time_point::max()
                        ? int64_t{60'000'000'000}
                        : std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    const timespec timeout{static_cast<time_t>(ns / 1'000'000'000),
                           static_cast<long>(ns % 1'000'000'000)};
    pollfd fd{.fd = PQsocket(conn_.get()), .events = POLLIN, .revents = 0};
    const int ready = ppoll(&fd, 1, &timeout, nullptr);
    if (ready < 0 && errno != EINTR) throw std::runtime_error("postgis: poll failed");
    if (ready == 0 && until == Clock::time_point::max())
      throw std::runtime_error("postgis: no answer within 60 s");
    return ready > 0;
  }

  static std::vector<const char*> pointers(const std::vector<std::string>& values) {
    std::vector<const char*> out;
    for (const auto& v : values) out.push_back(v.c_str());
    return out;
  }

  std::unique_ptr<PGconn, ConnDeleter> conn_;
  size_t inFlight_ = 0;  // statements sent whose sync point has not come back
  PgResult ready_;       // the oldest statement's result, before its sync point
};

const std::string kUpsert =
    std::string("INSERT INTO ") + kPostgisTable +
    " (id, g) SELECT id, ST_SetSRID(ST_MakePoint(lon, lat), 4326) "
    "FROM unnest($1::text[], $2::float8[], $3::float8[]) AS u(id, lon, lat) "
    "ON CONFLICT (id) DO UPDATE SET g = EXCLUDED.g";
// The index's KNN (planar, in degrees) picks the k; they are returned by
// great-circle distance, as the other systems answer.
const std::string kNearest =
    std::string(
        "SELECT id, ST_DistanceSphere(g, ST_SetSRID(ST_MakePoint($1, $2), 4326)) AS d "
        "FROM (SELECT id, g FROM ") +
    kPostgisTable +
    " ORDER BY g <-> ST_SetSRID(ST_MakePoint($1, $2), 4326) LIMIT $3) AS knn ORDER BY d";

NearestAnswer readAnswer(const PgResult& r) {
  NearestAnswer answer;
  for (int i = 0; i < PQntuples(r.get()); ++i) {
    answer.hits.push_back(Hit{.id = PQgetvalue(r.get(), i, 0),
                              .distanceM = std::strtod(PQgetvalue(r.get(), i, 1), nullptr)});
  }
  return answer;
}

class PostgisSession final : public Session {
 public:
  PostgisSession(const std::string& conninfo, const Deadline& deadline)
      : connection_(conninfo), deadline_(deadline) {
    connection_.prepare("upsert", kUpsert, 3);
    connection_.prepare("nearest", kNearest, 3);
  }

  // Batches of kPostgisBatchRows, a few in flight; a device moved twice in a
  // batch is written once, at the position the fleet holds for it (its
  // latest, as the other systems end up holding).
  void send(uint64_t count, const NextMove& moves, const Fleet& fleet,
            std::atomic<uint64_t>& done) override {
    std::deque<uint64_t> batches;  // reports per statement in flight
    const auto settleOldest = [&] {
      connection_.nextResult(Clock::time_point::max());
      done += batches.front();
      batches.pop_front();
    };
    std::unordered_set<uint64_t> seen;
    for (uint64_t k = 0; k < count;) {
      deadline_.check("ingest");
      const auto n = std::min<uint64_t>(kPostgisBatchRows, count - k);
      std::string ids = "{", lons = "{", lats = "{";
      seen.clear();
      for (uint64_t j = 0; j < n; ++j) {
        const Move m = moves(k + j);
        if (!seen.insert(m.device).second) continue;
        const geo::LatLon& p = fleet.positions[m.device];
        const char* comma = seen.size() > 1 ? "," : "";
        ids += comma + deviceName(m.device);
        lons += comma + text(p.lon);
        lats += comma + text(p.lat);
      }
      connection_.sendPrepared("upsert", {ids + "}", lons + "}", lats + "}"});
      batches.push_back(n);
      k += n;
      if (batches.size() >= kStatementsInFlight) settleOldest();
    }
    while (!batches.empty()) settleOldest();
  }

  NearestAnswer nearest(geo::LatLon center, uint32_t k) override {
    deadline_.check("queries");
    return readAnswer(connection_.execPrepared(
        "nearest", {text(center.lon), text(center.lat), std::to_string(k)}));
  }

  void startNearest(geo::LatLon center, uint32_t k, Answered answered) override {
    connection_.sendPrepared("nearest", {text(center.lon), text(center.lat), std::to_string(k)});
    waiting_.push_back(std::move(answered));
  }

  void awaitAnswers(Clock::time_point until) override {
    for (;;) {
      if (waiting_.empty()) {
        std::this_thread::sleep_until(until);
        return;
      }
      const PgResult r = connection_.nextResult(until);
      if (!r) return;  // `until` passed
      Answered answered = std::move(waiting_.front());
      waiting_.pop_front();
      answered(readAnswer(r));  // may start the next query
    }
  }

 private:
  static std::string deviceName(uint64_t device) { return "bench-" + std::to_string(device); }

  Connection connection_;
  const Deadline& deadline_;
  std::deque<Answered> waiting_;  // of the queries in flight, oldest first
};

class PostgisBackend final : public Backend {
 public:
  PostgisBackend(const std::string& conninfo, const Deadline& deadline)
      : conninfo_(conninfo), deadline_(deadline), control_(conninfo) {
    control_.exec("CREATE EXTENSION IF NOT EXISTS postgis");
    control_.exec(std::string("DROP TABLE IF EXISTS ") + kPostgisTable);
    control_.exec(std::string("CREATE TABLE ") + kPostgisTable +
                  " (id text PRIMARY KEY, g geometry(Point, 4326) NOT NULL)");
    control_.exec(std::string("CREATE INDEX ON ") + kPostgisTable + " USING gist (g)");
    // The postmaster, whose children are every connection's backend.
    const PgResult r = control_.exec("SELECT pg_backend_pid()");
    postmaster_ = parentOf(std::atoi(PQgetvalue(r.get(), 0, 0)));
  }

  std::string name() const override { return "postgis"; }

  std::unique_ptr<Session> connect() override {
    return std::make_unique<PostgisSession>(conninfo_, deadline_);
  }

  Totals totals() override {
    const PgResult r = control_.exec(std::string("SELECT count(*), pg_total_relation_size('") +
                                     kPostgisTable + "') FROM " + kPostgisTable);
    Totals t;
    t.devices = std::strtoull(PQgetvalue(r.get(), 0, 0), nullptr, 10);
    t.memoryBytes = std::strtoull(PQgetvalue(r.get(), 0, 1), nullptr, 10);
    t.shardsTotal = t.shardsAnswered = 1;
    return t;
  }

  // A statement's result comes after its commit: acknowledged is applied.
  Totals waitForReports(uint64_t, const std::string&) override { return totals(); }
  uint64_t rssBytes() override { return 0; }

  // The postmaster's own, its reaped children's, and its live children's.
  double cpuSeconds() override {
    if (postmaster_ <= 0) return -1;
    double total = testkit::cpuSeconds(postmaster_, /*withReapedChildren=*/true);
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string name = entry.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const int pid = std::atoi(name.c_str());
      if (parentOf(pid) == postmaster_) total += testkit::cpuSeconds(pid, true);
    }
    return total;
  }

  // The index's KNN is planar (degrees): near a point the order can differ
  // from great-circle distance, so answers are not held against a scan.
  bool exact() const override { return false; }

 private:
  static int parentOf(int pid) { return testkit::parentPid(pid); }

  std::string conninfo_;
  const Deadline& deadline_;
  Connection control_;
  int postmaster_ = -1;
};

}  // namespace

std::unique_ptr<Backend> makePostgisBackend(const std::string& conninfo, const Deadline& deadline) {
  return std::make_unique<PostgisBackend>(conninfo, deadline);
}

}  // namespace locus::bench
