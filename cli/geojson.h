// Reading a GeoJSON Polygon (RFC 7946) for `locus polygon`.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "locus/common/geo.h"
#include "locus/common/status.h"

namespace locus::cli {

// An object's "type" when it is a string, else empty (json::value() would
// throw on a "type" of another kind: found by the geojson fuzzer).
inline std::string geoJsonType(const nlohmann::json& j) {
  if (!j.is_object()) return "";
  const auto type = j.find("type");
  return type != j.end() && type->is_string() ? type->get<std::string>() : "";
}

// A Polygon geometry, or a Feature whose geometry is a Polygon, as checked
// geo::Polygon rings (positions are [lon, lat]). Errors name what is wrong.
inline Result<geo::Polygon> polygonFromGeoJson(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return badRequest("the polygon is not valid JSON");
  const nlohmann::json* geometry = &j;
  if (geoJsonType(j) == "Feature") {
    if (!j.contains("geometry")) return badRequest("the Feature has no geometry");
    geometry = &j["geometry"];
  }
  if (geoJsonType(*geometry) != "Polygon") {
    return badRequest("expected a GeoJSON Polygon, or a Feature holding one");
  }
  const auto coordinates = geometry->find("coordinates");
  if (coordinates == geometry->end() || !coordinates->is_array()) {
    return badRequest("the Polygon has no coordinates array");
  }
  std::vector<geo::Polygon::Ring> rings;
  for (const auto& ring : *coordinates) {
    if (!ring.is_array()) return badRequest("each ring must be an array of positions");
    auto& out = rings.emplace_back();
    for (const auto& position : ring) {
      if (!position.is_array() || position.size() < 2 || !position[0].is_number() ||
          !position[1].is_number()) {
        return badRequest("each position must be [lon, lat]");
      }
      out.push_back({position[1].get<double>(), position[0].get<double>()});
    }
  }
  if (auto error = geo::Polygon::validate(rings)) return badRequest(*error);
  return geo::Polygon(std::move(rings));
}

}  // namespace locus::cli
