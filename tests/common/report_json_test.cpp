// The NDJSON report line: every kind of bad line gets a reason to act on.
#include "locus/common/report_json.h"

#include <catch2/catch.hpp>
#include <cmath>

namespace locus {
namespace {

std::string errorOf(std::string_view line) {
  auto r = parseReportLine(line);
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

TEST_CASE("a good line parses with optional fields and survives a move", "[report][json]") {
  auto r = parseReportLine(
      R"({"id":"truck-7","lat":31.23,"lon":121.47,"ts":1763000000000,"speed_mps":3.5,"extra":1})");
  REQUIRE(r.ok());
  const OwnedReport owned = std::move(*r);  // the view must not dangle after a move
  const Report v = owned.view();
  CHECK(v.id == "truck-7");
  CHECK(v.lat == 31.23);
  CHECK(v.lon == 121.47);
  CHECK(v.tsMs == 1763000000000);
  CHECK(v.speedMps == 3.5f);
  CHECK(std::isnan(v.headingDeg));
}

TEST_CASE("ts is optional and may be written as a whole float", "[report][json]") {
  CHECK(parseReportLine(R"({"id":"a","lat":1,"lon":2})")->view().tsMs == 0);
  CHECK(parseReportLine(R"({"id":"a","lat":1,"lon":2,"ts":1.763e12})")->view().tsMs ==
        1763000000000);
}

TEST_CASE("bad lines are refused with a reason", "[report][json]") {
  CHECK_THAT(errorOf("{\"id\":"), Catch::Contains("invalid JSON"));
  CHECK_THAT(errorOf("garbage \x01\xff"), Catch::Contains("invalid JSON"));
  CHECK_THAT(errorOf("[1,2]"), Catch::Contains("object"));
  CHECK_THAT(errorOf(R"({"lat":1,"lon":2})"), Catch::Contains("missing \"id\""));
  CHECK_THAT(errorOf(R"({"id":7,"lat":1,"lon":2})"), Catch::Contains("\"id\" must be a string"));
  CHECK_THAT(errorOf(R"({"id":"a","lon":2})"), Catch::Contains("missing \"lat\""));
  CHECK_THAT(errorOf(R"({"id":"a","lat":"1","lon":2})"),
             Catch::Contains("\"lat\" must be a number"));
  CHECK_THAT(errorOf(R"({"id":"a","lat":95,"lon":2})"), Catch::Contains("out of range"));
  CHECK_FALSE(parseReportLine(R"({"id":"a","lat":1,"lon":1e400})").ok());  // overflows JSON
  CHECK_THAT(errorOf(R"({"id":"a","lat":1,"lon":2,"ts":"now"})"), Catch::Contains("ts"));
  CHECK_THAT(errorOf(R"({"id":"a","lat":1,"lon":2,"ts":1.5})"), Catch::Contains("ts"));
  CHECK_THAT(errorOf(R"({"id":"a","lat":1,"lon":2,"ts":-5})"), Catch::Contains("negative"));
  CHECK_THAT(errorOf(R"({"id":"","lat":1,"lon":2})"), Catch::Contains("empty"));
  CHECK_THAT(errorOf(R"({"id":"a","lat":1,"lon":2,"heading_deg":400})"),
             Catch::Contains("heading"));
  CHECK_THAT(errorOf(R"({"id":"a","lat":1,"lon":2,"speed_mps":"fast"})"),
             Catch::Contains("speed_mps"));
  CHECK_THAT(errorOf(std::string(kMaxLineBytes + 1, ' ')), Catch::Contains("at most 4096"));
}

TEST_CASE("reportToJsonLine round-trips", "[report][json]") {
  Report r{"dev-1", -33.5, 151.25, 42};
  r.accuracyM = 5;
  const auto back = parseReportLine(reportToJsonLine(r));
  REQUIRE(back.ok());
  const Report v = back->view();
  CHECK(v.id == "dev-1");
  CHECK(v.lat == -33.5);
  CHECK(v.lon == 151.25);
  CHECK(v.tsMs == 42);
  CHECK(v.accuracyM == 5);
}

}  // namespace
}  // namespace locus
