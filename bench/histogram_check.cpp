// Checks of bench/histogram.h without a test framework: exits non-zero and
// names the failed check. Run by ctest as bench/histogram.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "histogram.h"

namespace {

int failures = 0;

void check(bool ok, const char* what, uint64_t got, uint64_t want) {
  if (ok) return;
  ++failures;
  std::fprintf(stderr, "FAILED: %s: got %llu, want %llu\n", what,
               static_cast<unsigned long long>(got), static_cast<unsigned long long>(want));
}

}  // namespace

int main() {
  using locus::bench::Histogram;

  // Buckets tile the value range without gaps, in order.
  for (size_t i = 0; i + 1 < Histogram::kBuckets; ++i) {
    check(Histogram::highestOf(i) + 1 == Histogram::lowestOf(i + 1), "buckets are contiguous",
          Histogram::highestOf(i) + 1, Histogram::lowestOf(i + 1));
    if (failures > 0) return 1;
  }
  std::mt19937_64 rng(7);
  for (int n = 0; n < 100000; ++n) {
    const uint64_t v = rng() >> (rng() % 64);
    const size_t i = Histogram::indexOf(v);
    check(i < Histogram::kBuckets && Histogram::lowestOf(i) <= v && v <= Histogram::highestOf(i),
          "value lies in its bucket", v, Histogram::lowestOf(i));
    if (failures > 0) return 1;
  }
  check(Histogram::indexOf(UINT64_MAX) == Histogram::kBuckets - 1, "last bucket",
        Histogram::indexOf(UINT64_MAX), Histogram::kBuckets - 1);

  // Small values are exact.
  Histogram exact;
  for (uint64_t v = 1; v <= 100; ++v) exact.record(v);
  check(exact.percentile(50) == 50, "p50 of 1..100", exact.percentile(50), 50);
  check(exact.percentile(99) == 99, "p99 of 1..100", exact.percentile(99), 99);
  check(exact.percentile(100) == 100, "p100 of 1..100", exact.percentile(100), 100);
  check(exact.min() == 1 && exact.max() == 100, "min/max", exact.max(), 100);

  // Large values: within 1/128 of the exact order statistic, and merging
  // equals recording into one histogram.
  std::vector<uint64_t> values;
  Histogram a, b, all;
  std::lognormal_distribution<double> latency(11.0, 1.0);  // ~60 us median in ns
  for (int n = 0; n < 200000; ++n) {
    const auto v = static_cast<uint64_t>(latency(rng));
    values.push_back(v);
    (n % 2 ? a : b).record(v);
    all.record(v);
  }
  a.merge(b);
  std::sort(values.begin(), values.end());
  for (double p : {50.0, 90.0, 99.0, 99.9}) {
    const uint64_t want = values[static_cast<size_t>(p / 100 * values.size() + 0.999999) - 1];
    const uint64_t got = all.percentile(p);
    check(got >= want && got - want <= want / 128 + 1, "percentile within 1/128", got, want);
    check(a.percentile(p) == got, "merged percentile", a.percentile(p), got);
  }
  check(a.count() == all.count(), "merged count", a.count(), all.count());
  if (failures == 0) std::printf("histogram: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
