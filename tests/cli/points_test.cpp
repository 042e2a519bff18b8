// `locus nearest --points FILE` and `locus radius --points FILE` against a
// real cluster: one answer line per point, in the file's order, held
// against a brute-force model, over more points than one call carries; a
// bad line stops it with its line number after the lines before it.
#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "locus/common/clock.h"
#include "locus/testkit/brute_force.h"
#include "locus/testkit/cluster.h"
#include "locus/testkit/command.h"

namespace {

using namespace locus;
using namespace locus::testkit;
const std::string kBin = binDir();

// A scratch file holding `text`, removed with it.
struct TempFile {
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/locus-points-test-XXXXXX";
    const int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~TempFile() { unlink(path.c_str()); }
  std::string path;
};

std::vector<nlohmann::json> lines(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> idsOf(const nlohmann::json& answer) {
  std::vector<std::string> ids;
  for (const auto& r : answer["results"]) ids.push_back(r["id"].get<std::string>());
  return ids;
}

std::vector<std::string> idsOf(const QueryResult& result) {
  std::vector<std::string> ids;
  for (const auto& h : result.hits) ids.push_back(h.id);
  return ids;
}

TEST_CASE("locus nearest and radius --points answer every line of a file, in order", "[cli]") {
  SpawnedCluster cluster(2, Http::kOff, 5000);
  std::mt19937_64 rng(11);
  std::vector<std::string> ids;
  auto reports = worldReports(rng, 3000, ids);
  BruteForce model;
  std::string ndjson;
  const int64_t ts = wallClockMs() - 1000;
  for (auto& r : reports) {
    r.tsMs = ts;
    model.apply(r);
    ndjson += fmt::format(R"({{"id":"{}","lat":{:.17g},"lon":{:.17g},"ts":{}}})", r.id, r.lat,
                          r.lon, r.tsMs) +
              "\n";
  }
  const TempFile devices(ndjson);
  const auto sent = runCommand(kBin + "/locus --gateway " + cluster.gateway->rpcAddress + " send " +
                               devices.path);
  INFO(sent.err);
  REQUIRE(sent.code == 0);
  const std::string locus = kBin + "/locus --server " + cluster.server->address + " ";

  // 1,200 points, a blank line among them: more than one call at k = 50
  // (kMaxResults / 50 = 1,000 points a call).
  std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
  std::vector<geo::LatLon> points{{0, 179.99}, {0, -179.99}, {90, 0}, {-89.9, 10}};
  while (points.size() < 1200) points.push_back({lat(rng), lon(rng)});
  std::string file;
  for (size_t i = 0; i < points.size(); ++i) {
    file += fmt::format(R"({{"lat":{:.17g},"lon":{:.17g},"id":"rider-{}"}})", points[i].lat,
                        points[i].lon, i) +
            "\n";
    if (i == 10) file += "\n";
  }
  const TempFile pointsFile(file);

  SECTION("nearest") {
    const auto out = runCommand(locus + "nearest -k 50 --points " + pointsFile.path);
    INFO(out.err);
    REQUIRE(out.code == 0);
    const auto answers = lines(out.out);
    REQUIRE(answers.size() == points.size());
    for (size_t i = 0; i < points.size(); ++i) {
      INFO("point " << i);
      CHECK(answers[i]["partial"] == false);
      CHECK(idsOf(answers[i]) == idsOf(model.nearest(NearestQuery{points[i], 50}, ts)));
    }
  }

  SECTION("radius, with a limit and count only") {
    for (const std::string flags : {"--limit 5", "--count"}) {
      INFO(flags);
      const auto out = runCommand(locus + "radius --radius-m 500000 " + flags + " --points - < " +
                                  pointsFile.path);
      INFO(out.err);
      REQUIRE(out.code == 0);
      const auto answers = lines(out.out);
      REQUIRE(answers.size() == points.size());
      for (size_t i = 0; i < points.size(); ++i) {
        INFO("point " << i);
        const AreaQuery q{.area = Circle{points[i], 500'000},
                          .limit = flags == "--count" ? 0u : 5u,
                          .countOnly = flags == "--count"};
        const QueryResult expected = model.within(q, ts);
        CHECK(answers[i]["count"] == expected.count);
        CHECK(idsOf(answers[i]) == idsOf(expected));
      }
    }
  }

  SECTION("a bad line stops it, after answering the lines before") {
    const TempFile bad(
        "{\"lat\":1,\"lon\":2}\n{\"lat\":3,\"lon\":4}\nnot json\n{\"lat\":5,\"lon\":6}\n");
    const auto out = runCommand(locus + "nearest --points " + bad.path);
    CHECK(out.code == 1);
    CHECK(lines(out.out).size() == 2);
    CHECK_THAT(out.err, Catch::Contains("line 3: not JSON"));
    const TempFile far("{\"lat\":1,\"lon\":2}\n{\"lat\":91,\"lon\":2}\n");
    const auto range = runCommand(locus + "nearest --points " + far.path);
    CHECK(range.code == 1);
    CHECK(lines(range.out).size() == 1);
    CHECK_THAT(range.err, Catch::Contains("line 2: "));
    CHECK_THAT(range.err, Catch::Contains("91"));
  }

  SECTION("flags that cannot be asked are refused before any call") {
    const auto noLimit = runCommand(locus + "radius --radius-m 10 --points " + pointsFile.path);
    CHECK(noLimit.code == 1);
    CHECK_THAT(noLimit.err, Catch::Contains("need a limit"));
    CHECK(noLimit.out.empty());
    const auto nowhere = runCommand(locus + "nearest -k 3");
    CHECK(nowhere.code == 1);
    CHECK_THAT(nowhere.err, Catch::Contains("nearest needs --lat and --lon, or --points FILE"));
    const auto both = runCommand(locus + "nearest --lat 1 --lon 2 --points " + pointsFile.path);
    CHECK(both.code == 1);
    CHECK_THAT(both.err, Catch::Contains("excludes"));
  }
}

}  // namespace
