// GeoJSON (RFC 7946) in and out: areas to query from any GeoJSON that holds
// polygons, and answers as a FeatureCollection of Points for a map.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "locus/common/geo.h"
#include "locus/common/query.h"
#include "locus/common/status.h"

namespace locus::geojson {

// An object's "type" when it is a string, else empty (json::value() would
// throw on a "type" of another kind: found by the geojson fuzzer).
std::string typeOf(const nlohmann::json& j);

// The area a GeoJSON text covers: a Polygon, a MultiPolygon, a Feature
// holding either, or a FeatureCollection or GeometryCollection of them (the
// union of every polygon). Positions are [lon, lat]; edges are straight in
// lon/lat, and an area across the antimeridian is given as RFC 7946 splits
// it, one polygon on each side. Errors name what is wrong and where.
Result<geo::MultiPolygon> readArea(std::string_view text);
Result<geo::MultiPolygon> readAreaJson(const nlohmann::json& geometry);

// An answer as a FeatureCollection: one Point per hit, properties id, ts
// and what the hit carries (distance_m, speed_mps...), with the answer's
// count, partial, shards, partitions and took_us as foreign members.
nlohmann::ordered_json featureCollection(const QueryResult& result, Coverage shards,
                                         uint64_t tookUs);

}  // namespace locus::geojson
