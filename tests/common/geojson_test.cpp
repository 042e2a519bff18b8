// GeoJSON areas (Polygon, MultiPolygon, Feature, FeatureCollection) and
// answers as FeatureCollections, with clear errors for everything else.
#include "locus/common/geojson.h"

#include <catch2/catch.hpp>

namespace locus::geojson {
namespace {

TEST_CASE("a GeoJSON Polygon with a hole reads as [lon, lat] rings", "[geojson]") {
  const auto area = readArea(R"({"type":"Polygon","coordinates":[
      [[0,0],[10,0],[10,10],[0,10],[0,0]],
      [[4,4],[6,4],[6,6],[4,6],[4,4]]]})");
  REQUIRE(area.ok());
  REQUIRE(area->parts().size() == 1);
  const auto& polygon = area->parts()[0];
  REQUIRE(polygon.rings().size() == 2);
  REQUIRE(polygon.rings()[0][1] == geo::LatLon{0, 10});  // [lon 10, lat 0]
  REQUIRE(area->contains({2, 2}));
  REQUIRE_FALSE(area->contains({5, 5}));  // in the hole
}

TEST_CASE("a Feature holding a Polygon is accepted", "[geojson]") {
  const auto area = readArea(R"({"type":"Feature","properties":{},
      "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}})");
  REQUIRE(area.ok());
  REQUIRE(area->contains({0.1, 0.5}));
}

TEST_CASE("a MultiPolygon is the union of its polygons", "[geojson]") {
  const auto area = readArea(R"({"type":"MultiPolygon","coordinates":[
      [[[0,0],[2,0],[2,2],[0,2],[0,0]]],
      [[[10,10],[12,10],[12,12],[10,12],[10,10]],[[10.5,10.5],[11,10.5],[11,11],[10.5,10.5]]]]})");
  REQUIRE(area.ok());
  REQUIRE(area->parts().size() == 2);
  CHECK(area->contains({1, 1}));
  CHECK(area->contains({11.5, 11.5}));
  CHECK_FALSE(area->contains({5, 5}));  // between the parts
  CHECK(area->firstPartContaining({11.5, 11.5}) == 1);
  CHECK(area->firstPartContaining({5, 5}) == 2);
}

TEST_CASE("a FeatureCollection and a GeometryCollection are the union of their polygons",
          "[geojson]") {
  const auto area = readArea(R"({"type":"FeatureCollection","features":[
      {"type":"Feature","properties":{"name":"west"},
       "geometry":{"type":"Polygon","coordinates":[[[0,0],[2,0],[2,2],[0,2],[0,0]]]}},
      {"type":"Feature","properties":{"name":"east"},
       "geometry":{"type":"MultiPolygon","coordinates":[[[[10,0],[12,0],[12,2],[10,2],[10,0]]],
                                                        [[[20,0],[22,0],[22,2],[20,2],[20,0]]]]}},
      {"type":"Feature","properties":{},
       "geometry":{"type":"GeometryCollection","geometries":[
         {"type":"Polygon","coordinates":[[[30,0],[32,0],[32,2],[30,2],[30,0]]]}]}}]})");
  REQUIRE(area.ok());
  REQUIRE(area->parts().size() == 4);
  for (double lon : {1.0, 11.0, 21.0, 31.0}) CHECK(area->contains({1, lon}));
  CHECK_FALSE(area->contains({1, 5}));
}

TEST_CASE("an area across the antimeridian as RFC 7946 splits it holds both sides", "[geojson]") {
  // Fiji-like: 177°E..180° and -180°..-178°, one MultiPolygon.
  const auto area = readArea(R"({"type":"MultiPolygon","coordinates":[
      [[[177,-19],[180,-19],[180,-16],[177,-16],[177,-19]]],
      [[[-180,-19],[-178,-19],[-178,-16],[-180,-16],[-180,-19]]]]})");
  REQUIRE(area.ok());
  CHECK(area->contains({-17, 179.5}));
  CHECK(area->contains({-17, -179.5}));
  CHECK(area->contains({-17, 180}));
  CHECK(area->contains({-17, -180}));
  CHECK_FALSE(area->contains({-17, 0}));
  CHECK_FALSE(area->contains({-17, -170}));
}

TEST_CASE("bad GeoJSON gets an error that names the problem", "[geojson]") {
  const auto errorOf = [](const char* text) {
    auto r = readArea(text);
    REQUIRE_FALSE(r.ok());
    return r.error().message;
  };
  CHECK_THAT(errorOf("{not json"), Catch::Contains("not valid JSON"));
  CHECK_THAT(errorOf(R"({"type":"Point","coordinates":[0,0]})"), Catch::Contains("a Point"));
  CHECK_THAT(errorOf(R"({"type":"Feature"})"), Catch::Contains("no geometry"));
  CHECK_THAT(errorOf(R"({"type":"Feature","geometry":null})"), Catch::Contains("no geometry"));
  CHECK_THAT(errorOf(R"({"type":"Polygon"})"), Catch::Contains("coordinates"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1]]]})"),
             Catch::Contains("at least 4"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1]]]})"),
             Catch::Contains("not closed"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,"x"],[1,1],[0,0]]]})"),
             Catch::Contains("[lon, lat]"));
  CHECK_THAT(errorOf(R"({"type":"Polygon","coordinates":[[[0,0],[190,0],[1,1],[0,0]]]})"),
             Catch::Contains("out of range"));
  CHECK_THAT(errorOf(R"({"type":"MultiPolygon","coordinates":[]})"),
             Catch::Contains("no polygons"));
  CHECK_THAT(errorOf(R"({"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]],
                                                              [[[0,0],[1,0],[1,1]]]]})"),
             Catch::Contains("polygon 1"));
  CHECK_THAT(errorOf(R"({"type":"FeatureCollection","features":[]})"), Catch::Contains("empty"));
  CHECK_THAT(errorOf(R"({"type":"FeatureCollection"})"), Catch::Contains("no features"));
  CHECK_THAT(errorOf(R"({"type":"FeatureCollection","features":[
      {"type":"Feature","geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}},
      {"type":"Feature","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]}}]})"),
             Catch::Contains("feature 1 is a LineString"));
  // Found by the geojson fuzzer: a "type" that is not a string threw from
  // nlohmann::json::value() and took `locus polygon` down.
  CHECK_THAT(errorOf(R"({";Qmmmmmmm":6,"K":6,"type":3,"`":6,"S]":3})"), Catch::Contains("Polygon"));
  CHECK_THAT(errorOf(R"({"type":"Feature","geometry":{"type":[1]}})"), Catch::Contains("Polygon"));
  CHECK_THAT(errorOf(R"([{"type":"Polygon"}])"), Catch::Contains("Polygon"));
  // Collections in collections, deeper than any real file, are refused.
  std::string deep = R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]})";
  for (int i = 0; i < 20; ++i)
    deep = R"({"type":"GeometryCollection","geometries":[)" + deep + "]}";
  CHECK_THAT(errorOf(deep.c_str()), Catch::Contains("nested too deep"));
}

TEST_CASE("an answer as GeoJSON is a FeatureCollection of Points with the answer's members",
          "[geojson]") {
  QueryResult result;
  result.hits.push_back(Hit{.id = "a", .lat = 31.25, .lon = 121.5, .tsMs = 7, .distanceM = 12.5});
  result.count = 3;
  const auto j = featureCollection(result, Coverage{4, 4, 256, 256}, 99);
  CHECK(j["type"] == "FeatureCollection");
  REQUIRE(j["features"].size() == 1);
  const auto& f = j["features"][0];
  CHECK(f["type"] == "Feature");
  CHECK(f["geometry"]["type"] == "Point");
  CHECK(f["geometry"]["coordinates"] == nlohmann::ordered_json::array({121.5, 31.25}));
  CHECK(f["properties"]["id"] == "a");
  CHECK(f["properties"]["ts"] == 7);
  CHECK(f["properties"]["distance_m"] == 12.5);
  CHECK_FALSE(f["properties"].contains("lat"));
  CHECK(j["count"] == 3);
  CHECK(j["partial"] == false);
  CHECK(j["partitions"]["answered"] == 256);
  CHECK(j["took_us"] == 99);
}

}  // namespace
}  // namespace locus::geojson
