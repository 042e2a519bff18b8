#include "locus/common/geojson.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

#include "locus/common/json.h"

namespace locus::geojson {
namespace {

using json = nlohmann::json;

// Nested collections are read this deep at most: a hostile body cannot
// recurse the reader off its stack.
constexpr int kMaxDepth = 8;

class AreaReader {
 public:
  // Adds the polygons of `j` (`where` names it in errors), or returns why not.
  std::optional<Error> add(const json& j, const std::string& where, int depth) {
    if (depth > kMaxDepth) return badRequest(where + " is nested too deep");
    const std::string type = typeOf(j);
    if (type == "Polygon") return addPolygon(coordinatesOf(j), where);
    if (type == "MultiPolygon") {
      const json* polygons = coordinatesOf(j);
      if (polygons == nullptr)
        return badRequest(where + ": the MultiPolygon has no coordinates array");
      if (polygons->empty()) return badRequest(where + ": the MultiPolygon has no polygons");
      for (size_t i = 0; i < polygons->size(); ++i) {
        if (auto e = addPolygon(&(*polygons)[i], fmt::format("{}, polygon {}", where, i))) return e;
      }
      return std::nullopt;
    }
    if (type == "Feature") {
      const auto geometry = j.find("geometry");
      if (geometry == j.end() || geometry->is_null())
        return badRequest(where + ": the Feature has no geometry");
      return add(*geometry, where, depth + 1);
    }
    if (type == "FeatureCollection" || type == "GeometryCollection") {
      const bool features = type == "FeatureCollection";
      const auto members = j.find(features ? "features" : "geometries");
      if (members == j.end() || !members->is_array()) {
        return badRequest(fmt::format("{}: the {} has no {} array", where, type,
                                      features ? "features" : "geometries"));
      }
      if (members->empty()) return badRequest(fmt::format("{}: the {} is empty", where, type));
      for (size_t i = 0; i < members->size(); ++i) {
        const std::string at = fmt::format("{}{} {}", where == "the area" ? "" : where + ", ",
                                           features ? "feature" : "geometry", i);
        if (auto e = add((*members)[i], at, depth + 1)) return e;
      }
      return std::nullopt;
    }
    const std::string what = type.empty() ? "not a GeoJSON object" : "a " + type;
    return badRequest(
        fmt::format("{} is {}: expected a GeoJSON Polygon or MultiPolygon, or a Feature or "
                    "FeatureCollection of them",
                    where, what));
  }

  std::vector<geo::Polygon> take() { return std::move(parts_); }

 private:
  static const json* coordinatesOf(const json& j) {
    const auto c = j.find("coordinates");
    return c != j.end() && c->is_array() ? &*c : nullptr;
  }

  std::optional<Error> addPolygon(const json* coordinates, const std::string& where) {
    const std::string in = where == "the area" ? "" : where + ": ";
    if (coordinates == nullptr || !coordinates->is_array()) {
      return badRequest(in + "the Polygon has no coordinates array");
    }
    std::vector<geo::Polygon::Ring> rings;
    for (const auto& ring : *coordinates) {
      if (!ring.is_array()) return badRequest(in + "each ring must be an array of positions");
      auto& out = rings.emplace_back();
      out.reserve(ring.size());
      for (const auto& position : ring) {
        if (!position.is_array() || position.size() < 2 || !position[0].is_number() ||
            !position[1].is_number()) {
          return badRequest(in + "each position must be [lon, lat]");
        }
        out.push_back({position[1].get<double>(), position[0].get<double>()});
      }
    }
    if (auto error = geo::Polygon::validate(rings)) return badRequest(in + *error);
    parts_.emplace_back(std::move(rings));
    return std::nullopt;
  }

  std::vector<geo::Polygon> parts_;
};

}  // namespace

std::string typeOf(const nlohmann::json& j) {
  if (!j.is_object()) return "";
  const auto type = j.find("type");
  return type != j.end() && type->is_string() ? type->get<std::string>() : "";
}

Result<geo::MultiPolygon> readAreaJson(const nlohmann::json& geometry) {
  AreaReader reader;
  if (auto e = reader.add(geometry, "the area", 0)) return *e;
  return geo::MultiPolygon(reader.take());
}

Result<geo::MultiPolygon> readArea(std::string_view text) {
  const auto j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return badRequest("the area is not valid JSON");
  return readAreaJson(j);
}

nlohmann::ordered_json featureCollection(const QueryResult& result, Coverage shards,
                                         uint64_t tookUs) {
  nlohmann::ordered_json features = nlohmann::ordered_json::array();
  for (const Hit& hit : result.hits) {
    nlohmann::ordered_json properties = toJson(hit);
    properties.erase("lat");
    properties.erase("lon");
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "Point"}, {"coordinates", {hit.lon, hit.lat}}}},
                        {"properties", std::move(properties)}});
  }
  nlohmann::ordered_json j = {{"type", "FeatureCollection"}, {"features", std::move(features)}};
  // The answer's other members, as the JSON output has them.
  nlohmann::ordered_json plain = toJson(QueryResult{{}, result.count, {}}, shards, tookUs);
  plain.erase("results");
  for (auto& [key, value] : plain.items()) j[key] = value;
  return j;
}

}  // namespace locus::geojson
