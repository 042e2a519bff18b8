// Tests for locus/common/reduce.h: the reducers of scatter/gather, held
// against a brute-force answer over all the data.
#include "locus/common/reduce.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

namespace {

using locus::Hit;
using locus::mergeNearest;
using locus::QueryResult;
using locus::sumCounts;
using locus::unionArea;

Hit hit(std::string id, double distanceM, int64_t tsMs = 1000) {
  Hit h;
  h.id = std::move(id);
  h.distanceM = distanceM;
  h.tsMs = tsMs;
  h.lat = distanceM / 1000;  // something distinct per copy
  return h;
}

Hit areaHit(std::string id, int64_t tsMs = 1000) {
  return hit(std::move(id), std::numeric_limits<double>::quiet_NaN(), tsMs);
}

QueryResult part(std::vector<Hit> hits, uint64_t count) {
  QueryResult r;
  r.hits = std::move(hits);
  r.count = count;
  return r;
}
QueryResult part(std::vector<Hit> hits) {
  const uint64_t n = hits.size();
  return part(std::move(hits), n);
}

// What a hit is, for comparisons: NaN distances compare equal to each other.
std::string describe(const std::vector<Hit>& hits) {
  std::ostringstream os;
  os.precision(17);
  for (const Hit& h : hits) os << h.id << "@" << h.distanceM << "/t" << h.tsMs << " ";
  return os.str();
}

bool sameHits(const std::vector<Hit>& a, const std::vector<Hit>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].id != b[i].id || a[i].tsMs != b[i].tsMs || a[i].lat != b[i].lat) return false;
    const bool bothNaN = std::isnan(a[i].distanceM) && std::isnan(b[i].distanceM);
    if (!bothNaN && a[i].distanceM != b[i].distanceM) return false;
  }
  return true;
}

std::vector<std::string> ids(const QueryResult& r) {
  std::vector<std::string> out;
  for (const Hit& h : r.hits) out.push_back(h.id);
  return out;
}

}  // namespace

// ------------------------------------------------------------- mergeNearest

TEST_CASE("mergeNearest equals sorting everything by (distance, id)", "[reduce]") {
  std::vector<QueryResult> parts = {
      part({hit("a", 30), hit("b", 10), hit("c", 50)}),
      part({hit("d", 20), hit("e", 5)}),
      part({}),
      part({hit("f", 40), hit("g", 1), hit("h", 45), hit("i", 25)}),
  };
  const QueryResult r = mergeNearest(parts, 5);
  CHECK(ids(r) == std::vector<std::string>{"g", "e", "b", "d", "i"});
  CHECK(r.count == 5);
  REQUIRE(r.hits.size() == 5);
  CHECK(r.hits[0].distanceM == 1);
  CHECK(r.hits[4].distanceM == 25);

  const QueryResult all = mergeNearest(parts, 100);
  CHECK(ids(all) == std::vector<std::string>{"g", "e", "b", "d", "i", "a", "f", "h", "c"});
}

TEST_CASE("mergeNearest breaks distance ties by id", "[reduce]") {
  const QueryResult r =
      mergeNearest({part({hit("zeta", 7), hit("beta", 7)}),
                    part({hit("alpha", 7), hit("omega", 3)}), part({hit("gamma", 7)})},
                   4);
  CHECK(ids(r) == std::vector<std::string>{"omega", "alpha", "beta", "gamma"});
  // Bytewise id order: upper case before lower case, shorter prefix first.
  const QueryResult b =
      mergeNearest({part({hit("b", 1), hit("B", 1)}), part({hit("ab", 1), hit("a", 1)})}, 10);
  CHECK(ids(b) == std::vector<std::string>{"B", "a", "ab", "b"});
}

TEST_CASE("mergeNearest keeps the newest copy of a duplicated id", "[reduce]") {
  SECTION("the newer copy is farther: its distance is the one kept") {
    const QueryResult r = mergeNearest(
        {part({hit("a", 5, 100), hit("b", 10, 100)}), part({hit("a", 50, 200), hit("c", 20, 100)})},
        10);
    CHECK(ids(r) == std::vector<std::string>{"b", "c", "a"});
    CHECK(r.count == 3);
    REQUIRE(r.hits.size() == 3);
    CHECK(r.hits[2].tsMs == 200);
    CHECK(r.hits[2].distanceM == 50);
  }
  SECTION("the newer copy is nearer") {
    const QueryResult r =
        mergeNearest({part({hit("a", 50, 300)}), part({hit("a", 5, 100), hit("b", 10, 100)})}, 10);
    CHECK(ids(r) == std::vector<std::string>{"b", "a"});
    CHECK(r.hits[1].distanceM == 50);
    CHECK(r.hits[1].tsMs == 300);
  }
  SECTION("a stale copy does not take a slot from another device") {
    const QueryResult r = mergeNearest(
        {part({hit("a", 1, 100), hit("b", 2, 100)}), part({hit("a", 3, 200), hit("c", 4, 100)})},
        2);
    CHECK(ids(r) == std::vector<std::string>{"b", "a"});
    CHECK(r.hits[1].tsMs == 200);
  }
  SECTION("equal timestamps keep the nearer copy") {
    const QueryResult r = mergeNearest({part({hit("a", 9, 100)}), part({hit("a", 4, 100)})}, 10);
    REQUIRE(r.hits.size() == 1);
    CHECK(r.hits[0].distanceM == 4);
  }
}

TEST_CASE("mergeNearest with k larger than everything returns everything", "[reduce]") {
  const QueryResult r = mergeNearest({part({hit("x", 3)}), part({hit("y", 2), hit("z", 1)})}, 1000);
  CHECK(ids(r) == std::vector<std::string>{"z", "y", "x"});
  CHECK(r.count == 3);
  CHECK(mergeNearest({}, 10).hits.empty());
  CHECK(mergeNearest({part({}), part({})}, 10).count == 0);
  const QueryResult one = mergeNearest({part({hit("x", 3)}), part({hit("y", 2), hit("z", 1)})}, 1);
  CHECK(ids(one) == std::vector<std::string>{"z"});
  CHECK(one.count == 1);
}

// ---------------------------------------------------------------- unionArea

TEST_CASE("unionArea by distance orders by (distance, id) and cuts at limit", "[reduce]") {
  std::vector<QueryResult> parts = {part({hit("c", 3), hit("a", 9)}, 2),
                                    part({hit("b", 3), hit("d", 1)}, 2)};
  const QueryResult all = unionArea(parts, 0, true);
  CHECK(ids(all) == std::vector<std::string>{"d", "b", "c", "a"});
  CHECK(all.count == 4);

  const QueryResult cut = unionArea(parts, 2, true);
  CHECK(ids(cut) == std::vector<std::string>{"d", "b"});
  CHECK(cut.count == 4);  // count is all matches, not what the limit kept
}

TEST_CASE("unionArea by id orders bytewise and cuts at limit", "[reduce]") {
  std::vector<QueryResult> parts = {part({areaHit("m"), areaHit("b")}, 7),
                                    part({areaHit("z"), areaHit("a"), areaHit("k")}, 3),
                                    part({}, 0)};
  const QueryResult all = unionArea(parts, 0, false);
  CHECK(ids(all) == std::vector<std::string>{"a", "b", "k", "m", "z"});
  CHECK(all.count == 10);  // the parts' counts, not the hits seen
  for (const Hit& h : all.hits) CHECK(std::isnan(h.distanceM));

  const QueryResult cut = unionArea(parts, 3, false);
  CHECK(ids(cut) == std::vector<std::string>{"a", "b", "k"});
  CHECK(cut.count == 10);

  // Ordered by id even when distances say otherwise.
  const QueryResult byId = unionArea({part({hit("b", 1), hit("a", 2)})}, 0, false);
  CHECK(ids(byId) == std::vector<std::string>{"a", "b"});
  const QueryResult byDist = unionArea({part({hit("b", 1), hit("a", 2)})}, 0, true);
  CHECK(ids(byDist) == std::vector<std::string>{"b", "a"});
}

TEST_CASE("unionArea counts duplicates once and keeps the newest copy", "[reduce]") {
  const QueryResult r = unionArea({part({areaHit("a", 100), areaHit("b", 100)}, 5),
                                   part({areaHit("a", 300), areaHit("c", 100)}, 4),
                                   part({areaHit("a", 200), areaHit("b", 50)}, 2)},
                                  0, false);
  CHECK(ids(r) == std::vector<std::string>{"a", "b", "c"});
  REQUIRE(r.hits.size() == 3);
  CHECK(r.hits[0].tsMs == 300);
  CHECK(r.hits[1].tsMs == 100);
  CHECK(r.count == 5 + 4 + 2 - 3);  // "a" twice extra, "b" once extra

  const QueryResult d =
      unionArea({part({hit("a", 10, 100), hit("b", 20, 100)}), part({hit("a", 30, 200)})}, 0, true);
  CHECK(ids(d) == std::vector<std::string>{"b", "a"});
  CHECK(d.hits[1].distanceM == 30);
  CHECK(d.count == 2);
}

TEST_CASE("sumCounts and count-only unions", "[reduce]") {
  std::vector<QueryResult> parts = {part({}, 3), part({}, 0), part({}, 1000000000000ULL),
                                    part({}, 17)};
  CHECK(sumCounts(parts) == 1000000000020ULL);
  CHECK(sumCounts({}) == 0);
  const QueryResult r = unionArea(parts, 0, false);
  CHECK(r.hits.empty());
  CHECK(r.count == 1000000000020ULL);
}

// -------------------------------------------------------------- randomized

namespace {

// Brute force: the answer one unit holding all `hits` would give.
std::vector<Hit> globalTop(std::vector<Hit> hits, size_t keep, bool byDistance) {
  std::sort(hits.begin(), hits.end(), byDistance ? locus::nearerThan : locus::idBefore);
  if (hits.size() > keep) hits.resize(keep);
  return hits;
}

}  // namespace

TEST_CASE("reducing per-unit top-k lists equals the global top-k (randomized)", "[reduce]") {
  std::mt19937_64 rng(31337);
  for (int round = 0; round < 300; ++round) {
    const int n = std::uniform_int_distribution<int>(0, 400)(rng);
    const uint32_t k = std::uniform_int_distribution<uint32_t>(1, 60)(rng);
    // Few distinct distances, so ties are common.
    const int distinct = std::uniform_int_distribution<int>(1, 50)(rng);
    std::vector<Hit> all;
    std::vector<std::vector<Hit>> unit(4);
    for (int i = 0; i < n; ++i) {
      std::string id = "d";
      id.append(std::to_string(rng() % 1000000)).append("-").append(std::to_string(i));
      Hit h = hit(std::move(id), std::uniform_int_distribution<int>(0, distinct)(rng) * 12.5,
                  static_cast<int64_t>(rng() % 100000));
      all.push_back(h);
      unit[rng() % 4].push_back(h);
    }
    INFO("round " << round << " n " << n << " k " << k);

    {  // nearest
      std::vector<QueryResult> parts;
      for (auto& hits : unit) {
        std::shuffle(hits.begin(), hits.end(), rng);  // any order within a part
        std::vector<Hit> top = globalTop(hits, k, true);
        std::shuffle(top.begin(), top.end(), rng);
        parts.push_back(part(top, hits.size()));
      }
      const QueryResult got = mergeNearest(parts, k);
      const std::vector<Hit> expected = globalTop(all, k, true);
      INFO("got " << describe(got.hits) << "\nexpected " << describe(expected));
      REQUIRE(sameHits(got.hits, expected));
      REQUIRE(got.count == expected.size());
    }
    {  // area, by distance and by id
      for (bool byDistance : {true, false}) {
        const uint32_t limit = round % 5 == 0 ? 0 : k;
        std::vector<QueryResult> parts;
        for (const auto& hits : unit) {
          parts.push_back(
              part(globalTop(hits, limit == 0 ? hits.size() : limit, byDistance), hits.size()));
        }
        const QueryResult got = unionArea(parts, limit, byDistance);
        const std::vector<Hit> expected =
            globalTop(all, limit == 0 ? all.size() : limit, byDistance);
        INFO("byDistance " << byDistance << " limit " << limit);
        INFO("got " << describe(got.hits) << "\nexpected " << describe(expected));
        REQUIRE(sameHits(got.hits, expected));
        REQUIRE(got.count == all.size());
      }
    }
  }
}

TEST_CASE("reducing with stale copies equals brute force over the newest copies", "[reduce]") {
  std::mt19937_64 rng(777);
  for (int round = 0; round < 200; ++round) {
    const int devices = std::uniform_int_distribution<int>(1, 80)(rng);
    const uint32_t k = std::uniform_int_distribution<uint32_t>(1, 30)(rng);
    // Each device has a newest copy on one unit and maybe older copies on
    // others (distinct timestamps, as after resharding).
    std::map<std::string, Hit> newest;
    std::vector<std::vector<Hit>> unit(4);
    for (int d = 0; d < devices; ++d) {
      const std::string id = "dev-" + std::to_string(d);
      const int copies = 1 + static_cast<int>(rng() % 3);
      std::vector<int> units = {0, 1, 2, 3};
      std::shuffle(units.begin(), units.end(), rng);
      for (int c = 0; c < copies; ++c) {
        Hit h = hit(id, static_cast<double>(rng() % 5000), 1000 * (c + 1) + (rng() % 500));
        unit[units[c]].push_back(h);
        if (c == copies - 1) newest[id] = h;
      }
    }
    std::vector<Hit> truth;
    for (const auto& [id, h] : newest) truth.push_back(h);
    INFO("round " << round);
    // Without cutting the parts, the reduction is exact.
    std::vector<QueryResult> parts;
    for (const auto& hits : unit) parts.push_back(part(hits));
    const QueryResult nearest = mergeNearest(parts, k);
    const std::vector<Hit> expected = globalTop(truth, k, true);
    INFO("got " << describe(nearest.hits) << "\nexpected " << describe(expected));
    REQUIRE(sameHits(nearest.hits, expected));

    const QueryResult area = unionArea(parts, 0, false);
    REQUIRE(sameHits(area.hits, globalTop(truth, truth.size(), false)));
    REQUIRE(area.count == truth.size());
  }
}
