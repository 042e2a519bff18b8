// Big polygons: containment in a country-sized polygon of 4,894 vertices
// (testkit::bigCountry, about Russia's main part), by a scan of every edge
// and by the latitude bands Polygon::contains uses; and a whole `within`
// query for it in one LocationIndex over 200,000 devices spread over the
// world, the case that took ~200 ms per unit with the scan.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "locus/common/geo.h"
#include "locus/testkit/country.h"
#include "locus/unit/location_index.h"

namespace {

using locus::geo::LatLon;

std::vector<LatLon> pointsIn(const locus::geo::Box& b, size_t n) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> lat(b.south, b.north), lon(b.west, b.east);
  std::vector<LatLon> out;
  for (size_t i = 0; i < n; ++i) out.push_back({lat(rng), lon(rng)});
  return out;
}

void BM_PolygonContainsScan(benchmark::State& state) {
  const auto country = locus::testkit::bigCountry();
  const auto points = pointsIn(country.bounds(), 4096);
  size_t i = 0, inside = 0;
  for (auto _ : state) inside += country.containsByScan(points[i++ % points.size()]) ? 1 : 0;
  benchmark::DoNotOptimize(inside);
}
BENCHMARK(BM_PolygonContainsScan);

void BM_PolygonContainsBanded(benchmark::State& state) {
  const auto country = locus::testkit::bigCountry();
  const auto points = pointsIn(country.bounds(), 4096);
  size_t i = 0, inside = 0;
  for (auto _ : state) inside += country.contains(points[i++ % points.size()]) ? 1 : 0;
  benchmark::DoNotOptimize(inside);
}
BENCHMARK(BM_PolygonContainsBanded);

// Building the bands, which every unit does for every polygon query.
void BM_PolygonPrepare(benchmark::State& state) {
  const auto country = locus::testkit::bigCountry();
  for (auto _ : state) {
    locus::geo::Polygon copy(country.rings());
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_PolygonPrepare)->Unit(benchmark::kMicrosecond);

void BM_WithinBigPolygon200k(benchmark::State& state) {
  locus::unit::LocationIndex index;
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> lat(-80, 80), lon(-180, 180);
  std::vector<std::string> ids;
  for (int i = 0; i < 200'000; ++i) ids.push_back("w-" + std::to_string(i));
  for (const auto& id : ids) index.apply({id, lat(rng), lon(rng), 1'000});
  const locus::AreaQuery q{.area = locus::testkit::bigCountry(), .countOnly = true};
  uint64_t count = 0;
  for (auto _ : state) count = index.within(q, 0).count;
  state.counters["matches"] = static_cast<double>(count);
}
BENCHMARK(BM_WithinBigPolygon200k)->Unit(benchmark::kMillisecond);

}  // namespace
