// A unit's storage (location-unit/include/locus/unit/storage.h) at the
// SPEC's size: the cost of logging a batch, of a snapshot of 1M devices,
// and of a restart that recovers them.
//
//   build/bin/locus-index-bench --benchmark_filter=Storage
//
// The data dir is made under $TMPDIR (or /tmp): on this machine a disk.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "locus/common/city.h"
#include "locus/testkit/temp_dir.h"
#include "locus/unit/storage.h"

namespace {

using locus::Report;
using locus::unit::FsyncPolicy;
using locus::unit::LocationIndex;
using locus::unit::Storage;
using locus::unit::StorageOptions;

constexpr int64_t kTsMs = 1'763'000'000'000;
constexpr size_t kDevices = 1'000'000;

struct Reports {
  std::vector<std::string> ids;
  std::vector<Report> reports;
  explicit Reports(size_t n) {
    std::mt19937_64 rng(3);
    ids.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      ids.push_back("device-" + std::to_string(i));
      const auto p = locus::city::randomPoint(rng);
      reports.push_back(Report{.id = ids.back(), .lat = p.lat, .lon = p.lon, .tsMs = kTsMs});
    }
  }
};

// One gateway batch (1,000 reports) written to the log, by fsync policy,
// and applied (the same 1,000 devices each time, so snapshots stay small).
void BM_StorageAppend1000(benchmark::State& state) {
  const auto fsync = static_cast<FsyncPolicy>(state.range(0));
  locus::testkit::TempDir dir("locus-bench");
  LocationIndex index;
  Storage storage(StorageOptions{.dir = dir.path(), .fsync = fsync}, index);
  const Reports batch(1000);
  for (auto _ : state) {
    if (auto e = storage.append(batch.reports)) state.SkipWithError(e->c_str());
    for (const Report& r : batch.reports) index.apply(r);
    storage.tick(index);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
  state.SetLabel(locus::unit::toString(fsync));
}
BENCHMARK(BM_StorageAppend1000)
    ->Arg(static_cast<int>(FsyncPolicy::kAlways))
    ->Arg(static_cast<int>(FsyncPolicy::kInterval))
    ->Arg(static_cast<int>(FsyncPolicy::kNever));

// A snapshot of 1M devices, then a restart from it: the time until the
// unit could serve again (recovery reads and applies everything).
void BM_StorageSnapshotAndRecover1M(benchmark::State& state) {
  locus::testkit::TempDir dir("locus-bench");
  const Reports all(kDevices);
  double snapshotS = 0, recoverS = 0;
  for (auto _ : state) {
    {
      LocationIndex index;
      Storage storage(StorageOptions{.dir = dir.path(), .fsync = FsyncPolicy::kNever}, index);
      for (const Report& r : all.reports) index.apply(r);
      const auto start = std::chrono::steady_clock::now();
      if (auto e = storage.snapshot(index)) state.SkipWithError(e->c_str());
      snapshotS = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    const auto start = std::chrono::steady_clock::now();
    LocationIndex index;
    Storage storage(StorageOptions{.dir = dir.path()}, index);
    recoverS = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (index.size() != kDevices) state.SkipWithError("recovered the wrong number of devices");
  }
  state.counters["snapshot_s"] = snapshotS;
  state.counters["recover_s"] = recoverS;
}
BENCHMARK(BM_StorageSnapshotAndRecover1M)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
