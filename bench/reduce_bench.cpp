// The server's reduce step (common/reduce.h) on what units send back: four
// parts, each already in the answer's order, merged into one answer.
//
//   build/bin/locus-index-bench --benchmark_filter=Reduce
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "locus/common/reduce.h"

namespace {

using locus::Hit;
using locus::QueryResult;

constexpr int kUnits = 4;

// `perUnit` hits per unit with distinct ids, each part sorted by distance
// (byDistance) or by id, as a unit answers.
std::vector<QueryResult> unitParts(size_t perUnit, bool byDistance) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> metres(0, 5000);
  std::vector<QueryResult> parts(kUnits);
  for (int u = 0; u < kUnits; ++u) {
    for (size_t i = 0; i < perUnit; ++i) {
      parts[u].hits.push_back(Hit{.id = "device-" + std::to_string(i * kUnits + u),
                                  .lat = 31.2,
                                  .lon = 121.5,
                                  .tsMs = 1,
                                  .distanceM = metres(rng)});
    }
    std::sort(parts[u].hits.begin(), parts[u].hits.end(),
              byDistance ? locus::nearerThan : locus::idBefore);
    parts[u].count = perUnit;
  }
  return parts;
}

// The k = 10 nearest of four units' top 10: every nearest query pays this.
void BM_ReduceNearest10(benchmark::State& state) {
  const auto parts = unitParts(10, true);
  for (auto _ : state) {
    auto copy = parts;
    benchmark::DoNotOptimize(locus::mergeNearest(std::move(copy), 10));
  }
}
BENCHMARK(BM_ReduceNearest10);

// An area answer of `perUnit` hits from each unit, by id, no limit (the copy
// of the parts is part of the time, as the server moves them in).
void BM_ReduceArea(benchmark::State& state) {
  const auto parts = unitParts(static_cast<size_t>(state.range(0)), false);
  for (auto _ : state) {
    auto copy = parts;
    benchmark::DoNotOptimize(locus::unionArea(std::move(copy), 0, false));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0) * kUnits);
}
BENCHMARK(BM_ReduceArea)->ArgName("perUnit")->Arg(100)->Arg(12'500);

}  // namespace
