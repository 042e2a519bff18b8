// `locus polygon` input: GeoJSON Polygons and Features, and clear errors.
#include "geojson.h"

#include <catch2/catch.hpp>

namespace locus::cli {
namespace {

TEST_CASE("a GeoJSON Polygon with a hole reads as [lon, lat] rings", "[cli][geojson]") {
  const auto polygon = polygonFromGeoJson(R"({"type":"Polygon","coordinates":[
      [[0,0],[10,0],[10,10],[0,10],[0,0]],
      [[4,4],[6,4],[6,6],[4,6],[4,4]]]})");
  REQUIRE(polygon.ok());
  REQUIRE(polygon->rings().size() == 2);
  REQUIRE(polygon->rings()[0][1] == geo::LatLon{0, 10});  // [lon 10, lat 0]
  REQUIRE(polygon->contains({2, 2}));
  REQUIRE_FALSE(polygon->contains({5, 5}));  // in the hole
}

TEST_CASE("a Feature holding a Polygon is accepted", "[cli][geojson]") {
  const auto polygon = polygonFromGeoJson(R"({"type":"Feature","properties":{},
      "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}})");
  REQUIRE(polygon.ok());
  REQUIRE(polygon->contains({0.1, 0.5}));
}

TEST_CASE("bad GeoJSON gets an error that names the problem", "[cli][geojson]") {
  const auto errorOf = [](const char* text) {
    auto r = polygonFromGeoJson(text);
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  CHECK_THAT(errorOf("{not json"), Catch::Contains("not valid JSON"));
  CHECK_THAT(errorOf(R"({"type":"Point","coordinates":[0,0]})"), Catch::Contains("Polygon"));
  CHECK_THAT(errorOf(R"({"type":"Feature"})"), Catch::Contains("no geometry"));
  CHECK_THAT(errorOf(R"({"type":"Polygon"})"), Catch::Contains("coordinates"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]})"),
             Catch::Contains("at least 4"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]})"),
             Catch::Contains("not closed"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,"x"],[1,1],[0,0]]]})"),
             Catch::Contains("[lon, lat]"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[190,0],[1,1],[0,0]]]})"),
             Catch::Contains("out of range"));
  // Found by the geojson fuzzer: a "type" that is not a string threw from
  // nlohmann::json::value() and took `locus polygon` down.
  CHECK_THAT(errorOf(R"({";Qmmmmmmm":6,"K":6,"type":3,"`":6,"S]":3})"), Catch::Contains("Polygon"));
  CHECK_THAT(errorOf(R"({"type":"Feature","geometry":{"type":[1]}})"), Catch::Contains("Polygon"));
  CHECK_THAT(errorOf(R"([{"type":"Polygon"}])"), Catch::Contains("Polygon"));
}

}  // namespace
}  // namespace locus::cli
