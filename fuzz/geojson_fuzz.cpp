// The GeoJSON area reader on any text, then containment tests on what it
// accepted (the latitude bands of polygons built from hostile rings): an
// error or an answer, never a crash, and the banded answer is the full
// scan's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "locus/common/geojson.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto area = locus::geojson::readArea(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!area) return 0;
  for (const auto& polygon : area->parts()) {
    const auto b = polygon.bounds();
    // The corners, the centre and every vertex: the places bands get wrong.
    std::vector<locus::geo::LatLon> points{
        {b.south, b.west}, {b.north, b.east}, {(b.south + b.north) / 2, (b.west + b.east) / 2}};
    for (const auto& ring : polygon.rings())
      for (const auto& v : ring) points.push_back(v);
    for (const auto& p : points) {
      if (polygon.contains(p) != polygon.containsByScan(p)) std::abort();
      if (polygon.contains(p) && !area->contains(p)) std::abort();
    }
  }
  return 0;
}
