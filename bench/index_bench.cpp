// LocationIndex on the SPEC's city workload: 1,000,000 devices uniform in
// lat 31.0–31.5, lon 121.2–121.8; a move shifts a random device by up to
// ~50 m; queries sit at uniform random points of the box.
//
//   build/bin/locus-index-bench --benchmark_counters_tabular=true
//
// LOCUS_BENCH_DEVICES overrides the device count (default 1,000,000) and
// LOCUS_BENCH_SLACK_E7 the index's slack (IndexOptions::slackE7).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>
#include <boost/iterator/function_output_iterator.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "locus/common/city.h"
#include "locus/common/geo.h"
#include "locus/common/placement.h"
#include "locus/unit/location_index.h"

namespace {

using locus::AreaQuery;
using locus::Circle;
using locus::NearestQuery;
using locus::Report;
using locus::unit::LocationIndex;

constexpr double kSouth = locus::geo::kCityBox.south, kNorth = locus::geo::kCityBox.north,
                 kWest = locus::geo::kCityBox.west, kEast = locus::geo::kCityBox.east;
constexpr int64_t kStartMs = 1'763'000'000'000;

size_t envOr(const char* name, size_t fallback) {
  const char* env = std::getenv(name);
  return env ? std::strtoull(env, nullptr, 10) : fallback;
}

// N devices ("device-<i>") at random points of the city box.
struct Fleet {
  std::vector<std::string> ids;
  std::vector<locus::geo::LatLon> positions;
  size_t idBytes = 0;

  Fleet(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    ids.reserve(n);
    positions.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ids.push_back("device-" + std::to_string(i));
      idBytes += ids.back().size();
      positions.push_back(locus::city::randomPoint(rng));
    }
  }
};

// The loaded city, built once and shared by every benchmark.
struct City : Fleet {
  LocationIndex index{locus::unit::IndexOptions{
      .slackE7 = static_cast<int32_t>(envOr("LOCUS_BENCH_SLACK_E7", 10'000))}};
  int64_t tsMs = kStartMs;

  City() : Fleet(envOr("LOCUS_BENCH_DEVICES", 1'000'000), 42) {
    for (size_t i = 0; i < ids.size(); ++i) {
      index.apply(Report{ids[i], positions[i].lat, positions[i].lon, tsMs});
    }
  }
};

City& city() {
  static City* c = new City();
  return *c;
}

void BM_Move(benchmark::State& state) {
  City& c = city();
  std::mt19937_64 rng(1);
  for (auto _ : state) {
    const size_t i = rng() % c.ids.size();
    auto& p = c.positions[i];
    p = locus::city::step(p, rng);
    benchmark::DoNotOptimize(c.index.apply(Report{c.ids[i], p.lat, p.lon, ++c.tsMs}));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Move);

void BM_Nearest10(benchmark::State& state) {
  City& c = city();
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> lat(kSouth, kNorth), lon(kWest, kEast);
  for (auto _ : state) {
    const NearestQuery q{{lat(rng), lon(rng)}, 10};
    benchmark::DoNotOptimize(c.index.nearest(q, c.tsMs));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Nearest10);

// A unit holding two replicas' devices answers for half of them (4 units,
// R = 2: the server asks each unit for the partitions it is the chosen
// replica of): the same city, every other partition served.
void BM_Nearest10HalfServed(benchmark::State& state) {
  City& c = city();
  std::vector<uint32_t> serve;
  for (uint32_t p = 0; p < locus::kDefaultPartitions; p += 2) serve.push_back(p);
  const locus::unit::PartitionFilter half(locus::kDefaultPartitions, serve);
  std::mt19937_64 rng(2);
  std::uniform_real_distribution<double> lat(kSouth, kNorth), lon(kWest, kEast);
  for (auto _ : state) {
    const NearestQuery q{{lat(rng), lon(rng)}, 10};
    benchmark::DoNotOptimize(c.index.nearest(q, c.tsMs, &half));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Nearest10HalfServed);

void BM_Radius500m(benchmark::State& state) {
  City& c = city();
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> lat(kSouth, kNorth), lon(kWest, kEast);
  size_t hits = 0;
  for (auto _ : state) {
    const AreaQuery q{Circle{{lat(rng), lon(rng)}, 500}};
    hits += c.index.within(q, c.tsMs).hits.size();
  }
  state.counters["hits/query"] = double(hits) / double(state.iterations());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Radius500m);

void BM_Count500m(benchmark::State& state) {
  City& c = city();
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> lat(kSouth, kNorth), lon(kWest, kEast);
  for (auto _ : state) {
    AreaQuery q{Circle{{lat(rng), lon(rng)}, 500}};
    q.countOnly = true;
    benchmark::DoNotOptimize(c.index.within(q, c.tsMs).count);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Count500m);

// The floor under nearest-10: Boost.Geometry's R-tree alone, 1M float points
// of the city, (a) a box query the size of the index's first nearest-10
// search box without slack (~30 points) and (b) Boost's own k-nearest query
// (k = 10, planar metric, not exact on a sphere). Shows what a query costs
// before any refinement.
struct BareTree {
  using Point = boost::geometry::model::point<float, 2, boost::geometry::cs::cartesian>;
  using Value = std::pair<Point, uint32_t>;
  boost::geometry::index::rtree<Value, boost::geometry::index::dynamic_rstar> tree{
      boost::geometry::index::dynamic_rstar(16)};
  BareTree() {
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<float> lat(kSouth, kNorth), lon(kWest, kEast);
    const size_t n = envOr("LOCUS_BENCH_DEVICES", 1'000'000);
    for (uint32_t i = 0; i < n; ++i) tree.insert(Value(Point(lon(rng), lat(rng)), i));
  }
};

BareTree& bareTree() {
  static BareTree* t = new BareTree();
  return *t;
}

void BM_RtreeFloorBox(benchmark::State& state) {
  namespace bgi = boost::geometry::index;
  BareTree& t = bareTree();
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> lat(kSouth, kNorth), lon(kWest, kEast);
  constexpr float kHalf = 0.0015f;  // ~130 m + float slop
  size_t found = 0;
  for (auto _ : state) {
    const float a = lat(rng), o = lon(rng);
    const boost::geometry::model::box<BareTree::Point> box({o - kHalf, a - kHalf},
                                                           {o + kHalf, a + kHalf});
    t.tree.query(bgi::intersects(box),
                 boost::make_function_output_iterator([&](const BareTree::Value&) { ++found; }));
  }
  state.counters["values/query"] = double(found) / double(state.iterations());
}
BENCHMARK(BM_RtreeFloorBox);

void BM_RtreeFloorKnn10(benchmark::State& state) {
  namespace bgi = boost::geometry::index;
  BareTree& t = bareTree();
  std::mt19937_64 rng(6);
  std::uniform_real_distribution<float> lat(kSouth, kNorth), lon(kWest, kEast);
  std::vector<BareTree::Value> out;
  for (auto _ : state) {
    out.clear();
    t.tree.query(bgi::nearest(BareTree::Point(lon(rng), lat(rng)), 10), std::back_inserter(out));
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RtreeFloorKnn10);

// Memory: the index's own accounting per device, without and with the ids'
// own bytes. One iteration: it only reads counters.
void BM_Memory(benchmark::State& state) {
  City& c = city();
  for (auto _ : state) benchmark::DoNotOptimize(c.index.memoryUsage());
  const auto m = c.index.memoryUsage();
  const double n = double(c.index.size());
  state.counters["devices"] = n;
  state.counters["bytes/device"] = double(m.total()) / n;
  state.counters["id bytes/device"] = double(c.idBytes) / n;
  state.counters["overhead/device"] = (double(m.total()) - double(c.idBytes)) / n;
  state.counters["tree/device"] = double(m.tree) / n;
  state.counters["columns/device"] = double(m.positions) / n;
  state.counters["table/device"] = double(m.idTable) / n;
}
BENCHMARK(BM_Memory)->Iterations(1);

// Heap bytes in use according to malloc (chunk headers and rounding
// included), to hold the index's own accounting against.
size_t heapInUse() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Resident set size of this process in bytes (Linux), 0 when unknown.
size_t rssBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  if (!(statm >> pages >> resident)) return 0;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

// Memory at one index size, built fresh: range(0) devices of the city, then
// range(1) moves per device (random devices, as in BM_Move), which re-anchor
// some devices and so split and merge R-tree nodes. A cluster of N units
// holds 1/N of the devices in each index, so 250,000 is the SPEC's 1M over
// 4 units. "overhead/device" is the index's accounting less the ids' own
// bytes (the goal: at most 64); "heap overhead/device" is the same from
// malloc's count of bytes in use, which includes what the accounting cannot
// see; "rss delta/device" is the growth of the process's resident set while
// building, which also holds memory malloc has freed but not returned (run
// one size per process for it to mean anything).
void BM_MemoryAt(benchmark::State& state) {
  const auto n = static_cast<size_t>(state.range(0));
  const auto moves = static_cast<size_t>(state.range(1)) * n;
  Fleet fleet(n, 42);
  std::mt19937_64 rng(43);
  auto& [ids, positions, idBytes] = fleet;
  std::optional<LocationIndex> index;
  size_t heapBytes = 0, rssDelta = 0;
  for (auto _ : state) {
    index.reset();
    const size_t heapBefore = heapInUse();
    const size_t rssBefore = rssBytes();
    index.emplace();
    int64_t tsMs = kStartMs;
    for (size_t i = 0; i < n; ++i) {
      index->apply(Report{ids[i], positions[i].lat, positions[i].lon, tsMs});
    }
    for (size_t m = 0; m < moves; ++m) {
      const size_t i = rng() % n;
      auto& p = positions[i];
      p = locus::city::step(p, rng);
      index->apply(Report{ids[i], p.lat, p.lon, ++tsMs});
    }
    heapBytes = heapInUse() - heapBefore;
    rssDelta = rssBytes() - rssBefore;
  }
  const auto m = index->memoryUsage();
  const double d = double(n);
  state.counters["devices"] = d;
  state.counters["overhead/device"] = (double(m.total()) - double(idBytes)) / d;
  state.counters["heap overhead/device"] = (double(heapBytes) - double(idBytes)) / d;
  state.counters["rss delta/device"] = double(rssDelta) / d;
  state.counters["id bytes/device"] = double(idBytes) / d;
  state.counters["columns/device"] = double(m.positions) / d;
  state.counters["ids/device"] = double(m.ids) / d;
  state.counters["table/device"] = double(m.idTable) / d;
  state.counters["tree/device"] = double(m.tree) / d;
}
BENCHMARK(BM_MemoryAt)
    ->ArgNames({"devices", "moves/device"})
    ->ArgsProduct({{100'000, 250'000, 300'000, 400'000, 500'000, 700'000, 1'000'000}, {0}})
    ->Args({250'000, 2})
    ->Args({1'000'000, 2})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
