// Tests for locus/common/report.h and query.h: what a report or a query
// must look like, and the one-line reasons given when it does not.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "locus/common/query.h"
#include "locus/common/report.h"

namespace {

using locus::AreaQuery;
using locus::Circle;
using locus::NearestQuery;
using locus::Report;
using locus::validateId;
using locus::validateReport;
using locus::geo::Box;
using locus::geo::LatLon;
using locus::geo::Polygon;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInff = std::numeric_limits<float>::infinity();

Report goodReport() {
  Report r;
  r.id = "truck-7";
  r.lat = 31.23;
  r.lon = 121.47;
  r.tsMs = 1763000000000;
  return r;
}

// The reason `report` is refused; fails the test when it is accepted.
std::string reasonFor(const Report& report) {
  const std::optional<std::string> e = validateReport(report);
  if (!e) {
    FAIL_CHECK("report with id '" << report.id << "' was accepted");
    return "";
  }
  CHECK(e->find('\n') == std::string::npos);  // one line
  CHECK_FALSE(e->empty());
  return *e;
}

std::string reasonForId(std::string_view id) {
  Report r = goodReport();
  r.id = id;
  return reasonFor(r);
}

Polygon::Ring ring(std::initializer_list<std::pair<double, double>> lonLat) {
  Polygon::Ring r;
  for (const auto& [lon, lat] : lonLat) r.push_back(LatLon{lat, lon});
  return r;
}

AreaQuery areaOf(locus::Area area) {
  AreaQuery q;
  q.area = std::move(area);
  return q;
}

TEST_CASE("grid cells split a box evenly, across the antimeridian too", "[query][grid]") {
  const locus::Grid g{4, 2};
  const locus::geo::Box box{0, 0, 10, 40};
  CHECK(locus::gridCellOf(box, g, {0, 0}) == 0);
  CHECK(locus::gridCellOf(box, g, {4.9, 9.9}) == 0);
  CHECK(locus::gridCellOf(box, g, {5, 10}) == 5);    // row 1, column 1
  CHECK(locus::gridCellOf(box, g, {10, 40}) == 7);   // the north-east corner is in the last cell
  const locus::geo::Box across{-10, 170, 10, -170};  // 20 degrees wide
  CHECK(locus::gridCellOf(across, g, {0, 170}) == 4);
  CHECK(locus::gridCellOf(across, g, {0, 179.9}) == 5);
  CHECK(locus::gridCellOf(across, g, {0, 180}) == 6);
  CHECK(locus::gridCellOf(across, g, {0, -180}) == 6);  // the same meridian
  CHECK(locus::gridCellOf(across, g, {-10, -170}) == 3);
}

TEST_CASE("grid queries are checked: a box, count only, bounded cells", "[query][grid]") {
  AreaQuery q{locus::geo::Box{0, 0, 1, 1}, 0, true};
  q.grid = locus::Grid{10, 10};
  CHECK_FALSE(locus::validate(q));
  q.countOnly = false;
  CHECK_THAT(*locus::validate(q), Catch::Contains("count"));
  q.countOnly = true;
  q.grid = locus::Grid{locus::kMaxGridSide + 1, 1};
  CHECK_THAT(*locus::validate(q), Catch::Contains("columns and rows"));
  q.grid = locus::Grid{512, 512};
  CHECK_THAT(*locus::validate(q), Catch::Contains("cells"));
  q.grid = locus::Grid{0, 3};
  CHECK(locus::validate(q));
  q.grid = locus::Grid{4, 4};
  q.area = locus::Circle{{0, 0}, 100};
  CHECK_THAT(*locus::validate(q), Catch::Contains("box"));
}

}  // namespace

// ------------------------------------------------------------------- reports

TEST_CASE("validateReport accepts good reports", "[report]") {
  CHECK_FALSE(validateReport(goodReport()).has_value());

  Report r = goodReport();
  r.speedMps = 0;
  r.headingDeg = 0;
  r.accuracyM = 0;
  CHECK_FALSE(validateReport(r).has_value());
  r.speedMps = 12.5f;
  r.headingDeg = 359.99f;
  r.accuracyM = 4000;
  CHECK_FALSE(validateReport(r).has_value());

  for (LatLon p : {LatLon{90, 180}, LatLon{-90, -180}, LatLon{0, 0}, LatLon{-0.0, -0.0}}) {
    Report edge = goodReport();
    edge.lat = p.lat;
    edge.lon = p.lon;
    CHECK_FALSE(validateReport(edge).has_value());
  }
  Report unset = goodReport();
  unset.tsMs = 0;  // stamped by the gateway
  CHECK_FALSE(validateReport(unset).has_value());
  unset.tsMs = std::numeric_limits<int64_t>::max();
  CHECK_FALSE(validateReport(unset).has_value());
}

TEST_CASE("validateReport: NaN optional fields mean absent", "[report]") {
  Report r = goodReport();
  CHECK(std::isnan(r.speedMps));  // the default is absent
  r.speedMps = kNaNf;
  r.headingDeg = -kNaNf;
  r.accuracyM = std::nanf("0x7");
  CHECK_FALSE(validateReport(r).has_value());
}

TEST_CASE("validateId accepts UTF-8 ids of 1..128 bytes", "[report][id]") {
  for (std::string_view id :
       {std::string_view("a"), std::string_view("truck-7"), std::string_view("café-🚚"),
        std::string_view("司机-7"), std::string_view("with space and \"quotes\""),
        std::string_view("\xC2\xA0"),          // U+00A0, right after the C1 controls
        std::string_view("\xE0\xA0\x80"),      // U+0800, smallest 3-byte form
        std::string_view("\xED\x9F\xBF"),      // U+D7FF, just below the surrogates
        std::string_view("\xEE\x80\x80"),      // U+E000, just above them
        std::string_view("\xEF\xBF\xBD"),      // U+FFFD
        std::string_view("\xF0\x90\x80\x80"),  // U+10000, smallest 4-byte form
        std::string_view("\xF4\x8F\xBF\xBF"),  // U+10FFFF, the largest code point
        std::string_view("~")}) {
    INFO("id " << id);
    CHECK_FALSE(validateId(id).has_value());
  }
  CHECK_FALSE(validateId(std::string(128, 'x')).has_value());
  std::string emoji;
  for (int i = 0; i < 32; ++i) emoji += "🚚";  // 4 bytes each
  REQUIRE(emoji.size() == 128);
  CHECK_FALSE(validateId(emoji).has_value());
}

TEST_CASE("validateReport: id length", "[report][id]") {
  CHECK_THAT(reasonForId(""), Catch::Contains("empty"));
  const std::string long129(129, 'x');
  const std::string e = reasonForId(long129);
  CHECK_THAT(e, Catch::Contains("129 bytes"));
  CHECK_THAT(e, Catch::Contains("128"));
  std::string emoji;
  for (int i = 0; i < 32; ++i) emoji += "🚚";
  emoji += "x";
  CHECK_THAT(reasonForId(emoji), Catch::Contains("129 bytes"));
  CHECK_THAT(reasonForId(std::string(100000, 'x')), Catch::Contains("100000 bytes"));
}

TEST_CASE("validateReport: control characters", "[report][id]") {
  for (std::string_view id :
       {std::string_view("\x01"), std::string_view("a\nb"), std::string_view("tab\there"),
        std::string_view("cr\r"), std::string_view("\x1F"), std::string_view("del\x7F"),
        std::string_view("nul\0inside", 10), std::string_view("\x1B[31mred")}) {
    INFO("id bytes " << id.size());
    CHECK_THAT(reasonForId(id), Catch::Contains("control character"));
  }
  CHECK_THAT(reasonForId("ab\ncd"), Catch::Contains("byte 2"));
  // C1 controls (U+0080..U+009F) are control characters too.
  for (std::string_view id : {std::string_view("a\xC2\x85z"), std::string_view("\xC2\x80"),
                              std::string_view("\xC2\x9F")}) {
    INFO("id " << id);
    CHECK_THAT(reasonForId(id), Catch::Contains("control character"));
  }
}

TEST_CASE("validateReport: invalid UTF-8", "[report][id]") {
  struct Case {
    std::string_view bytes;
    const char* what;
  };
  const Case cases[] = {
      {"\x80", "lone continuation byte"},
      {"abc\xFF", "0xFF"},
      {"\xFE", "0xFE"},
      {"\xC3", "truncated 2-byte sequence at the end"},
      {"\xE2\x82", "truncated 3-byte sequence"},
      {"\xF0\x9F\x9A", "truncated 4-byte sequence"},
      {"\xE2\x28\xA1", "bad continuation byte"},
      {"\xC3\x28", "bad continuation byte (2-byte)"},
      {"\xC0\xAF", "overlong '/' (2 bytes)"},
      {"\xC1\xBF", "overlong U+007F"},
      {"\xC0\x80", "overlong NUL"},
      {"\xE0\x80\xAF", "overlong '/' (3 bytes)"},
      {"\xE0\x9F\xBF", "overlong U+07FF"},
      {"\xF0\x80\x80\xAF", "overlong '/' (4 bytes)"},
      {"\xF0\x8F\xBF\xBF", "overlong U+FFFF"},
      {"\xED\xA0\x80", "surrogate U+D800"},
      {"\xED\xBF\xBF", "surrogate U+DFFF"},
      {"\xED\xA0\xBD\xED\xB8\x80", "CESU-8 surrogate pair"},
      {"\xF4\x90\x80\x80", "above U+10FFFF"},
      {"\xF5\x80\x80\x80", "lead byte 0xF5"},
      {"\xF8\x88\x80\x80\x80", "5-byte form"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    CHECK_THAT(reasonForId(c.bytes), Catch::Contains("not valid UTF-8"));
  }
  CHECK_THAT(reasonForId("ok\xC0\xAF"), Catch::Contains("byte 2"));
}

TEST_CASE("validateReport: coordinates", "[report]") {
  auto withLatLon = [](double lat, double lon) {
    Report r = goodReport();
    r.lat = lat;
    r.lon = lon;
    return reasonFor(r);
  };
  std::string e = withLatLon(95, 0);
  CHECK_THAT(e, Catch::Contains("lat 95"));
  CHECK_THAT(e, Catch::Contains("[-90, 90]"));
  CHECK_THAT(withLatLon(-91, 0), Catch::Contains("lat -91"));
  CHECK_THAT(withLatLon(90.0000001, 0), Catch::Contains("lat"));
  CHECK_THAT(withLatLon(kNaN, 0), Catch::Contains("lat nan"));
  CHECK_THAT(withLatLon(kInf, 0), Catch::Contains("lat inf"));
  CHECK_THAT(withLatLon(-kInf, 0), Catch::Contains("lat -inf"));
  e = withLatLon(0, 181);
  CHECK_THAT(e, Catch::Contains("lon 181"));
  CHECK_THAT(e, Catch::Contains("[-180, 180]"));
  CHECK_THAT(withLatLon(0, -180.5), Catch::Contains("lon -180.5"));
  CHECK_THAT(withLatLon(0, kNaN), Catch::Contains("lon nan"));
  CHECK_THAT(withLatLon(0, -kInf), Catch::Contains("lon"));
}

TEST_CASE("validateReport: timestamp and optional fields", "[report]") {
  Report r = goodReport();
  r.tsMs = -1;
  std::string e = reasonFor(r);
  CHECK_THAT(e, Catch::Contains("ts -1"));
  CHECK_THAT(e, Catch::Contains("negative"));
  r.tsMs = std::numeric_limits<int64_t>::min();
  CHECK_THAT(reasonFor(r), Catch::Contains("negative"));

  r = goodReport();
  r.speedMps = -1;
  CHECK_THAT(reasonFor(r), Catch::Contains("speed_mps -1"));
  r.speedMps = kInff;
  CHECK_THAT(reasonFor(r), Catch::Contains("speed_mps"));

  r = goodReport();
  r.headingDeg = 360;
  e = reasonFor(r);
  CHECK_THAT(e, Catch::Contains("heading_deg 360"));
  CHECK_THAT(e, Catch::Contains("[0, 360)"));
  r.headingDeg = -0.5f;
  CHECK_THAT(reasonFor(r), Catch::Contains("heading_deg"));
  r.headingDeg = -kInff;
  CHECK_THAT(reasonFor(r), Catch::Contains("heading_deg"));

  r = goodReport();
  r.accuracyM = -3;
  CHECK_THAT(reasonFor(r), Catch::Contains("accuracy_m -3"));
  r.accuracyM = kInff;
  CHECK_THAT(reasonFor(r), Catch::Contains("accuracy_m"));
}

// ------------------------------------------------------------------- queries

TEST_CASE("validate(NearestQuery)", "[query]") {
  NearestQuery q;
  q.center = {31.2, 121.5};
  CHECK_FALSE(locus::validate(q).has_value());
  q.maxDistanceM = 500;
  q.maxAgeS = 30;
  q.k = 1;
  CHECK_FALSE(locus::validate(q).has_value());

  auto reason = [](NearestQuery bad) {
    const auto e = locus::validate(bad);
    if (!e) FAIL_CHECK("query accepted");
    return e.value_or("");
  };
  NearestQuery bad = q;
  bad.k = 0;
  CHECK(reason(bad) == "k must be at least 1");
  bad = q;
  bad.center.lat = 95;
  CHECK_THAT(reason(bad), Catch::Contains("lat 95"));
  bad.center.lat = kNaN;
  CHECK_THAT(reason(bad), Catch::Contains("lat"));
  bad = q;
  bad.center.lon = -181;
  CHECK_THAT(reason(bad), Catch::Contains("lon -181"));
  bad = q;
  bad.maxDistanceM = -1;
  CHECK_THAT(reason(bad), Catch::Contains("max distance -1"));
  bad.maxDistanceM = kNaN;
  CHECK_THAT(reason(bad), Catch::Contains("max distance"));
  bad.maxDistanceM = kInf;
  CHECK_THAT(reason(bad), Catch::Contains("max distance"));
  bad = q;
  bad.maxAgeS = -5;
  CHECK_THAT(reason(bad), Catch::Contains("max age -5"));
  bad.maxAgeS = kNaN;
  CHECK_THAT(reason(bad), Catch::Contains("max age"));
}

TEST_CASE("validate(AreaQuery)", "[query]") {
  auto reason = [](const AreaQuery& bad) {
    const auto e = locus::validate(bad);
    if (!e) FAIL_CHECK("query accepted");
    return e.value_or("");
  };

  SECTION("circles") {
    CHECK_FALSE(locus::validate(areaOf(Circle{{31.2, 121.5}, 500})).has_value());
    CHECK_FALSE(locus::validate(areaOf(Circle{{90, 180}, 0})).has_value());
    CHECK_THAT(reason(areaOf(Circle{{31.2, 121.5}, -1})), Catch::Contains("radius -1"));
    CHECK_THAT(reason(areaOf(Circle{{31.2, 121.5}, kNaN})), Catch::Contains("radius"));
    CHECK_THAT(reason(areaOf(Circle{{31.2, 121.5}, kInf})), Catch::Contains("radius"));
    CHECK_THAT(reason(areaOf(Circle{{95, 121.5}, 10})), Catch::Contains("lat 95"));
    CHECK_THAT(reason(areaOf(Circle{{0, 200}, 10})), Catch::Contains("lon 200"));
  }
  SECTION("boxes") {
    CHECK_FALSE(locus::validate(areaOf(Box{31, 121, 32, 122})).has_value());
    CHECK_FALSE(locus::validate(areaOf(Box{-10, 170, 10, -170})).has_value());  // crosses
    CHECK_FALSE(locus::validate(areaOf(Box{5, 5, 5, 5})).has_value());
    const std::string e = reason(areaOf(Box{40, 0, 30, 10}));
    CHECK_THAT(e, Catch::Contains("south 40"));
    CHECK_THAT(e, Catch::Contains("north 30"));
    CHECK_THAT(reason(areaOf(Box{-91, 0, 30, 10})), Catch::Contains("latitude -91"));
    CHECK_THAT(reason(areaOf(Box{0, 0, 91, 10})), Catch::Contains("latitude 91"));
    CHECK_THAT(reason(areaOf(Box{0, -181, 10, 10})), Catch::Contains("longitude -181"));
    CHECK_THAT(reason(areaOf(Box{0, 0, 10, 180.5})), Catch::Contains("longitude 180.5"));
    CHECK_THAT(reason(areaOf(Box{kNaN, 0, 10, 10})), Catch::Contains("latitude"));
  }
  SECTION("polygons") {
    const auto square = ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}});
    CHECK_FALSE(locus::validate(areaOf(Polygon({square}))).has_value());
    CHECK_THAT(reason(areaOf(Polygon({ring({{0, 0}, {10, 0}, {0, 0}})}))),
               Catch::Contains("at least 4"));
    CHECK_THAT(reason(areaOf(Polygon({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}})}))),
               Catch::Contains("not closed"));
    CHECK_THAT(reason(areaOf(Polygon(std::vector<Polygon::Ring>{}))),
               Catch::Contains("at least one ring"));
    CHECK_THAT(reason(areaOf(Polygon({square, ring({{1, 1}, {2, 1}, {1, 1}})}))),
               Catch::Contains("hole 1"));
  }
  SECTION("max age") {
    AreaQuery q = areaOf(Box{0, 0, 1, 1});
    q.maxAgeS = 10;
    q.limit = 5;
    q.countOnly = true;
    CHECK_FALSE(locus::validate(q).has_value());
    q.maxAgeS = -1;
    CHECK_THAT(reason(q), Catch::Contains("max age -1"));
    q.maxAgeS = kInf;
    CHECK_THAT(reason(q), Catch::Contains("max age"));
  }
}

TEST_CASE("hasCenter and the answer orders", "[query]") {
  CHECK(locus::hasCenter(Circle{{0, 0}, 1}));
  CHECK_FALSE(locus::hasCenter(Box{0, 0, 1, 1}));
  locus::Hit a{.id = std::string("b"), .distanceM = 1};
  locus::Hit b{.id = std::string("a"), .distanceM = 2};
  CHECK(locus::nearerThan(a, b));
  CHECK_FALSE(locus::nearerThan(b, a));
  CHECK(locus::idBefore(b, a));
  b.distanceM = 1;
  CHECK(locus::nearerThan(b, a));  // tie: by id
  CHECK_FALSE(locus::nearerThan(a, a));
}

// ------------------------------------------------------------- minTsForAge

TEST_CASE("minTsForAge", "[query]") {
  constexpr int64_t kNow = 1763000000000;
  constexpr int64_t kAny = std::numeric_limits<int64_t>::min();
  CHECK(locus::minTsForAge(0, kNow) == kAny);
  CHECK(locus::minTsForAge(-1, kNow) == kAny);
  CHECK(locus::minTsForAge(1e16, kNow) == kAny);  // older than the epoch: any age
  CHECK(locus::minTsForAge(1, kNow) == kNow - 1000);
  CHECK(locus::minTsForAge(60, kNow) == kNow - 60000);
  CHECK(locus::minTsForAge(1.5, kNow) == kNow - 1500);
  CHECK(locus::minTsForAge(0.001, kNow) == kNow - 1);
  CHECK(locus::minTsForAge(1e15, kNow) == kNow - 1000000000000000000LL);
  // A position exactly maxAgeS old is young enough; a millisecond older is
  // not, even where maxAgeS * 1000 is not exact in binary.
  CHECK(locus::minTsForAge(2.007, kNow) == kNow - 2007);  // 2007.0000000000002
  CHECK(locus::minTsForAge(1.001, kNow) == kNow - 1001);  // 1000.9999999999999
  // Sub-millisecond ages: a position 1 ms old is older than 0.5 ms.
  CHECK(locus::minTsForAge(0.0005, kNow) == kNow);
  CHECK(locus::minTsForAge(1.0005, kNow) == kNow - 1000);
}

TEST_CASE("minTsForAge keeps exactly the positions young enough (ms ages)", "[query]") {
  constexpr int64_t kNow = 1763000000000;
  // Every age written with millisecond precision, as a user would type it.
  for (int64_t ms = 1; ms <= 3000000; ms += (ms < 100000 ? 1 : 997)) {
    const double maxAgeS = static_cast<double>(ms) / 1000;
    INFO("max age " << ms << " ms");
    REQUIRE(locus::minTsForAge(maxAgeS, kNow) == kNow - ms);
  }
}

TEST_CASE("admitReport stamps an unset ts and refuses one beyond the future skew", "[report]") {
  using locus::Admission;
  using locus::admitReport;
  constexpr int64_t kNow = 1'763'000'000'000;
  const Admission gateway{kNow, 300'000, "gateway"};

  Report r = goodReport();
  r.tsMs = 0;
  CHECK_FALSE(admitReport(r, gateway).has_value());
  CHECK(r.tsMs == kNow);

  r.tsMs = kNow + 300'000;  // exactly at the bound: accepted
  CHECK_FALSE(admitReport(r, gateway).has_value());
  r.tsMs = kNow - 10LL * 365 * 86'400'000;  // the past is fine: it loses to newer reports
  CHECK_FALSE(admitReport(r, gateway).has_value());

  r.tsMs = kNow + 300'001;
  auto e = admitReport(r, gateway);
  REQUIRE(e);
  CHECK_THAT(*e, Catch::Contains("ahead of the gateway's clock"));
  CHECK_THAT(*e, Catch::Contains("--max-future-skew"));
  for (int64_t far : {int64_t{32'503'680'000'000}, std::numeric_limits<int64_t>::max()}) {
    r.tsMs = far;
    INFO(far);
    CHECK(admitReport(r, gateway).has_value());
  }
  // A skew of 0: nothing from the future at all.
  r.tsMs = kNow + 1;
  CHECK(admitReport(r, Admission{kNow, 0, "unit"}).has_value());
  // The ordinary checks come first.
  r = goodReport();
  r.lat = 95;
  CHECK_THAT(admitReport(r, gateway).value_or(""), Catch::Contains("lat 95"));
}

TEST_CASE("validate bounds k and limit by kMaxResults", "[query]") {
  using locus::kMaxResults;
  NearestQuery n{LatLon{31, 121}, kMaxResults};
  CHECK_FALSE(locus::validate(n).has_value());
  n.k = kMaxResults + 1;
  CHECK_THAT(locus::validate(n).value_or(""), Catch::Contains("more than the 50000 allowed"));

  AreaQuery a{.area = Box{30, 120, 32, 122}, .limit = kMaxResults};
  CHECK_FALSE(locus::validate(a).has_value());
  a.limit = kMaxResults + 1;
  CHECK_THAT(locus::validate(a).value_or(""), Catch::Contains("limit 50001"));
  a.limit = 0;  // all: bounded when answered, not here
  CHECK_FALSE(locus::validate(a).has_value());
}
