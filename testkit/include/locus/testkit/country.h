// A country-like polygon for tests and benchmarks: a ring of N vertices
// around a centre whose radius wanders (a ragged, concave coast, many
// edges at every latitude), with an optional hole. Not a real border: the
// repository holds no Natural Earth data; what matters to the cost of
// containment is the vertex count and how the edges spread over latitude.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "locus/common/geo.h"

namespace locus::testkit {

// A closed ring of `vertices` positions (+ the closing one) around
// `centre`, with half-extents `latRadius` and `lonRadius` degrees, each
// vertex's radius a random walk within [0.5, 1] of them.
inline geo::Polygon::Ring raggedRing(geo::LatLon centre, double latRadius, double lonRadius,
                                     size_t vertices, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> step(-0.04, 0.04);
  geo::Polygon::Ring ring;
  ring.reserve(vertices + 1);
  double r = 0.8;
  for (size_t i = 0; i < vertices; ++i) {
    r = std::clamp(r + step(rng), 0.5, 1.0);
    const double angle = 2 * M_PI * static_cast<double>(i) / static_cast<double>(vertices);
    // On the 1e-7 degree grid the units store, as a real border would be.
    ring.push_back({geo::quantize(centre.lat + latRadius * r * std::sin(angle)),
                    geo::quantize(centre.lon + lonRadius * r * std::cos(angle))});
  }
  ring.push_back(ring.front());
  return ring;
}

// About Russia's main part: 4,894 vertices over 41–82°N, 27–180°E, with a
// 200-vertex hole.
inline geo::Polygon bigCountry(size_t vertices = 4'894) {
  return geo::Polygon(
      {raggedRing({61.5, 103.5}, 20.5, 76.5, vertices, 7), raggedRing({62, 100}, 3, 8, 200, 8)});
}

}  // namespace locus::testkit
