// The SPEC's city workload, for the simulator (`locus local`) and the
// benchmarks: devices uniform over geo::kCityBox, each move a step of up to
// ~50 m on each axis that stays inside the box.
#pragma once

#include <algorithm>
#include <random>

#include "locus/common/geo.h"

namespace locus::city {

// Up to ~50 m of latitude (and less of longitude at 31°N) per move and axis.
inline constexpr double kStepDeg = 0.00045;

// A point uniform over the city box.
inline geo::LatLon randomPoint(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> lat(geo::kCityBox.south, geo::kCityBox.north);
  std::uniform_real_distribution<double> lon(geo::kCityBox.west, geo::kCityBox.east);
  return {lat(rng), lon(rng)};
}

// `p` moved by up to kStepDeg on each axis, clamped to the city box.
inline geo::LatLon step(geo::LatLon p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> d(-kStepDeg, kStepDeg);
  return {std::clamp(p.lat + d(rng), geo::kCityBox.south, geo::kCityBox.north),
          std::clamp(p.lon + d(rng), geo::kCityBox.west, geo::kCityBox.east)};
}

}  // namespace locus::city
