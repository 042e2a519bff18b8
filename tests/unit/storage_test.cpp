// A unit's data files: the record format against torn and damaged bytes,
// and Storage's recovery, snapshots, lock and refusals, on real files.
#include "locus/unit/storage.h"

#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "locus/testkit/temp_dir.h"
#include "locus/unit/log_format.h"

namespace locus::unit {
namespace {

namespace fs = std::filesystem;
using testkit::TempDir;

constexpr int64_t kTsMs = 1'763'000'000'000;

// Reports with their ids kept alive.
struct Batch {
  std::vector<std::string> ids;
  std::vector<Report> reports;

  Batch(const std::string& prefix, size_t n, int64_t tsMs, uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> lat(31.0, 31.5), lon(121.2, 121.8);
    ids.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ids.push_back(prefix + std::to_string(i));
      Report r{.id = ids.back(), .lat = lat(rng), .lon = lon(rng), .tsMs = tsMs};
      if (i % 3 == 0) r.speedMps = static_cast<float>(i % 40);
      reports.push_back(r);
    }
  }
};

std::vector<std::string> filesIn(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) == 0) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The stored position of every device, as text, for comparing two indexes.
std::map<std::string, std::string> contents(const LocationIndex& index) {
  std::map<std::string, std::string> out;
  index.forEach([&](const Report& r) {
    std::ostringstream s;
    s.precision(17);
    s << r.lat << " " << r.lon << " " << r.tsMs << " " << r.speedMps << " " << r.headingDeg << " "
      << r.accuracyM;
    out[std::string(r.id)] = s.str();
  });
  return out;
}

StorageOptions optionsFor(const TempDir& dir, FsyncPolicy fsync = FsyncPolicy::kAlways) {
  return StorageOptions{.dir = dir.path(), .fsync = fsync};
}

// Stores `batches` in the data dir `dir`, as a unit that then stops would.
void store(const TempDir& dir, std::initializer_list<const Batch*> batches) {
  LocationIndex index;
  Storage storage(optionsFor(dir), index);
  for (const Batch* b : batches) REQUIRE(!storage.append(b->reports));
}

}  // namespace

// ------------------------------------------------------------- the format

TEST_CASE("log records read back what was written, extras and all", "[unit][storage]") {
  Batch a("a-", 50, kTsMs), b("b-", 7, kTsMs + 1);
  std::string data;
  logfmt::appendBatch(a.reports, data);
  logfmt::appendBatch(b.reports, data);
  std::vector<Report> read;
  const logfmt::Scan s = logfmt::scan(data, [&](const Report& r) { read.push_back(r); });
  CHECK(!s.problem);
  CHECK(s.records == 2);
  CHECK(s.reports == 57);
  CHECK(s.validBytes == data.size());
  REQUIRE(read.size() == 57);
  for (size_t i = 0; i < 50; ++i) {
    CHECK(read[i].id == a.reports[i].id);
    CHECK(read[i].lat == a.reports[i].lat);
    CHECK(read[i].lon == a.reports[i].lon);
    CHECK(read[i].tsMs == a.reports[i].tsMs);
    if (i % 3 == 0) {
      CHECK(read[i].speedMps == a.reports[i].speedMps);
    } else {
      CHECK(std::isnan(read[i].speedMps));
    }
  }
}

TEST_CASE("an empty file holds no records and no problem", "[unit][storage]") {
  const logfmt::Scan s = logfmt::scan("", [](const Report&) { FAIL("no report expected"); });
  CHECK(!s.problem);
  CHECK(s.records == 0);
  CHECK(s.validBytes == 0);
}

TEST_CASE("every torn tail keeps exactly the whole records before it", "[unit][storage]") {
  Batch a("a-", 3, kTsMs), b("b-", 4, kTsMs);
  std::string data;
  logfmt::appendBatch(a.reports, data);
  const size_t first = data.size();
  logfmt::appendBatch(b.reports, data);
  for (size_t cut = 0; cut < data.size(); ++cut) {
    INFO("first " << cut << " of " << data.size() << " bytes");
    size_t reports = 0;
    const logfmt::Scan s =
        logfmt::scan(std::string_view(data).substr(0, cut), [&](const Report&) { ++reports; });
    const size_t whole = cut >= first ? first : 0;
    CHECK(s.validBytes == whole);
    CHECK(reports == (cut >= first ? 3u : 0u));
    CHECK(s.problem.has_value() == (cut != 0 && cut != first));
  }
}

TEST_CASE("a flipped bit anywhere in a record stops the scan before it", "[unit][storage]") {
  Batch a("a-", 2, kTsMs), b("b-", 2, kTsMs);
  std::string data;
  logfmt::appendBatch(a.reports, data);
  const size_t first = data.size();
  logfmt::appendBatch(b.reports, data);
  for (size_t at = first; at < data.size(); ++at) {
    INFO("bit flipped in byte " << at);
    std::string damaged = data;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    size_t reports = 0;
    const logfmt::Scan s = logfmt::scan(damaged, [&](const Report&) { ++reports; });
    CHECK(s.validBytes == first);
    CHECK(reports == 2);
    REQUIRE(s.problem);
  }
}

// ---------------------------------------------------------------- Storage

TEST_CASE("Storage recovers every batch it stored, with its incarnation", "[unit][storage]") {
  TempDir dir;
  Batch first("d-", 500, kTsMs), moved("d-", 200, kTsMs + 10, 2), more("e-", 30, kTsMs);
  std::map<std::string, std::string> before;
  uint64_t incarnation = 0;
  for (FsyncPolicy fsync : {FsyncPolicy::kAlways, FsyncPolicy::kInterval, FsyncPolicy::kNever}) {
    INFO("fsync " << toString(fsync));
    {
      LocationIndex index;
      Storage storage(optionsFor(dir, fsync), index);
      if (incarnation == 0) {
        CHECK(storage.recovery().fresh);
        incarnation = storage.incarnation();
        for (const Batch* b : {&first, &moved, &more}) {
          REQUIRE(!storage.append(b->reports));
          for (const Report& r : b->reports) index.apply(r);
        }
        before = contents(index);
        REQUIRE(before.size() == 530);
      }
    }
    LocationIndex index;
    Storage storage(optionsFor(dir, fsync), index);
    CHECK(!storage.recovery().fresh);
    CHECK(storage.incarnation() == incarnation);
    CHECK(contents(index) == before);
  }
}

TEST_CASE("Storage cuts a torn tail and keeps what came before", "[unit][storage]") {
  TempDir dir;
  Batch kept("k-", 100, kTsMs);
  store(dir, {&kept});
  const auto logs = filesIn(dir.path(), "log-");
  REQUIRE(!logs.empty());
  const std::string log = logs.back();
  const size_t intact = fs::file_size(log);
  {  // half a record more, as a crash mid-write leaves it
    Batch torn("t-", 10, kTsMs);
    std::string record;
    logfmt::appendBatch(torn.reports, record);
    std::ofstream(log, std::ios::binary | std::ios::app) << record.substr(0, record.size() / 2);
  }
  LocationIndex index;
  Storage storage(optionsFor(dir), index);
  CHECK(index.size() == 100);
  CHECK(storage.recovery().cutBytes > 0);
  CHECK(fs::file_size(log) == intact);
  // And it goes on storing.
  Batch after("n-", 5, kTsMs);
  CHECK(!storage.append(after.reports));
}

TEST_CASE("a snapshot replaces the logs, and recovery is the snapshot plus the logs after it",
          "[unit][storage]") {
  TempDir dir;
  Batch a("d-", 1000, kTsMs), b("d-", 400, kTsMs + 5, 3), c("late-", 50, kTsMs);
  std::map<std::string, std::string> before;
  {
    LocationIndex index;
    Storage storage(optionsFor(dir), index);
    for (const Batch* batch : {&a, &b}) {
      REQUIRE(!storage.append(batch->reports));
      for (const Report& r : batch->reports) index.apply(r);
    }
    REQUIRE(!storage.snapshot(index));
    CHECK(storage.counters().snapshots.value() == 1);
    CHECK(filesIn(dir.path(), "snapshot-").size() == 1);
    CHECK(filesIn(dir.path(), "log-").size() == 1);  // only the one after the snapshot
    REQUIRE(!storage.append(c.reports));
    for (const Report& r : c.reports) index.apply(r);
    before = contents(index);
  }
  LocationIndex index;
  Storage storage(optionsFor(dir), index);
  CHECK(storage.recovery().snapshotReports == 1000);
  CHECK(storage.recovery().logReports == 50);
  CHECK(contents(index) == before);
}

TEST_CASE("Storage snapshots by itself once the logs outgrow the last snapshot",
          "[unit][storage]") {
  TempDir dir;
  StorageOptions options = optionsFor(dir, FsyncPolicy::kNever);
  options.snapshotAfterBytes = 64 << 10;
  LocationIndex index;
  Storage storage(options, index);
  for (int round = 0; round < 40; ++round) {
    Batch b("d-", 200, kTsMs + round, static_cast<uint64_t>(round));
    REQUIRE(!storage.append(b.reports));
    for (const Report& r : b.reports) index.apply(r);
    storage.tick(index);
  }
  CHECK(storage.counters().snapshots.value() >= 1);
  // The data on disk stays near what the index holds, not the history.
  uint64_t bytes = 0;
  for (const auto& f : filesIn(dir.path(), "")) bytes += fs::file_size(f);
  CHECK(bytes < 4 * (options.snapshotAfterBytes + 200 * 64));
}

TEST_CASE("one data dir serves one unit at a time", "[unit][storage]") {
  TempDir dir;
  LocationIndex index;
  Storage storage(optionsFor(dir), index);
  LocationIndex other;
  CHECK_THROWS_WITH(Storage(optionsFor(dir), other), Catch::Contains("in use by another unit"));
}

TEST_CASE("a dir with data but no INCARNATION is refused, not taken for a new one",
          "[unit][storage]") {
  TempDir dir;
  const Batch b("d-", 3, kTsMs);
  store(dir, {&b});
  fs::remove(dir / "INCARNATION");
  LocationIndex index;
  CHECK_THROWS_WITH(Storage(optionsFor(dir), index), Catch::Contains("no INCARNATION"));
}

TEST_CASE("a write the disk refuses is refused, leaves nothing behind, and later ones go on",
          "[unit][storage]") {
  TempDir dir;
  Batch small("s-", 10, kTsMs), big("b-", 5000, kTsMs), again("t-", 10, kTsMs);
  {
    LocationIndex index;
    Storage storage(optionsFor(dir), index);
    REQUIRE(!storage.append(small.reports));
    const auto log = filesIn(dir.path(), "log-").back();
    const auto sizeBefore = fs::file_size(log);

    // A file size limit stands in for a full disk: writes past it fail.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    struct sigaction old {};
    sigaction(SIGXFSZ, &ignore, &old);
    rlimit saved{};
    getrlimit(RLIMIT_FSIZE, &saved);
    rlimit limit = saved;
    limit.rlim_cur = sizeBefore + 4096;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &limit) == 0);
    const auto refused = storage.append(big.reports);
    setrlimit(RLIMIT_FSIZE, &saved);
    sigaction(SIGXFSZ, &old, nullptr);

    REQUIRE(refused);
    CHECK_THAT(*refused, Catch::Contains("cannot store the batch"));
    CHECK(fs::file_size(log) == sizeBefore);  // the partial write was cut
    CHECK(storage.counters().appendErrors.value() == 1);
    CHECK(storage.counters().writable.value() == 1);
    CHECK(!storage.append(again.reports));  // room again: stored
  }
  LocationIndex recovered;
  Storage reopened(optionsFor(dir), recovered);
  CHECK(recovered.size() == 20);  // small and again, nothing of big
  CHECK(reopened.recovery().cutBytes == 0);
}

}  // namespace locus::unit

namespace locus::unit {

TEST_CASE("damage before the end of a log is refused, not cut, and the dir is released",
          "[unit][storage]") {
  TempDir dir;
  Batch a("a-", 100, kTsMs), b("b-", 100, kTsMs);
  store(dir, {&a, &b});
  const auto log = filesIn(dir.path(), "log-").front();
  const auto size = fs::file_size(log);
  {  // a flipped byte in the first record: the second is whole after it
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  for (int attempt = 0; attempt < 2; ++attempt) {  // the lock is not left held
    LocationIndex index;
    CHECK_THROWS_WITH(Storage(optionsFor(dir), index), Catch::Contains("is damaged"));
  }
  CHECK(fs::file_size(log) == size);  // nothing cut
}

TEST_CASE("files that only look like data files are left alone", "[unit][storage]") {
  TempDir dir;
  Batch a("a-", 10, kTsMs);
  store(dir, {&a});
  const auto log = filesIn(dir.path(), "log-").front();
  std::ofstream(log + ".bak") << "not a log";
  LocationIndex index;
  Storage storage(optionsFor(dir), index);
  CHECK(index.size() == 10);
  CHECK(fs::exists(log + ".bak"));
}

}  // namespace locus::unit

namespace locus::unit {

TEST_CASE("a flipped length is damage, a zeroed tail is a torn write", "[unit][storage]") {
  SECTION("a record that claims more bytes than it has, with a whole record after it") {
    TempDir dir;
    const Batch a("a-", 50, kTsMs), b("b-", 50, kTsMs);
    store(dir, {&a, &b});
    const auto log = filesIn(dir.path(), "log-").front();
    const auto size = fs::file_size(log);
    {
      std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(2);  // the length's third byte: now far longer than the file
      f.put('\x40');
    }
    LocationIndex index;
    CHECK_THROWS_WITH(Storage(optionsFor(dir), index), Catch::Contains("is damaged"));
    CHECK(fs::file_size(log) == size);
  }
  SECTION("zeros where the last record should be (a write-back the power cut)") {
    TempDir dir;
    const Batch a("a-", 50, kTsMs);
    store(dir, {&a});
    const auto log = filesIn(dir.path(), "log-").front();
    const auto intact = fs::file_size(log);
    std::ofstream(log, std::ios::binary | std::ios::app) << std::string(3000, '\0');
    LocationIndex index;
    Storage storage(optionsFor(dir), index);
    CHECK(index.size() == 50);
    CHECK(fs::file_size(log) == intact);
  }
}

}  // namespace locus::unit
