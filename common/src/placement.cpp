#include "locus/common/placement.h"

#include <fmt/format.h>
#include <kj/debug.h>

#include <algorithm>
#include <utility>

#include "locus/common/shard.h"

namespace locus {
namespace {

// A SplitMix64 finalizer: independent, uniform scores per (partition, unit).
uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

uint64_t score(uint32_t partition, uint32_t unit) {
  return mix(mix(uint64_t{partition} + 0x632BE59BD9B4E019ULL) ^
             ((uint64_t{unit} + 1) * 0x9E3779B97F4A7C15ULL));
}

}  // namespace

uint32_t partitionOf(std::string_view id, uint32_t partitions) {
  KJ_REQUIRE(partitions >= 1, partitions);
  // The high bits: hashId's low bits also pick shards (shard.h).
  return static_cast<uint32_t>((hashId(id) >> 32) % partitions);
}

std::optional<std::string> Placement::check(uint32_t units, uint32_t partitions,
                                            uint32_t replicas) {
  if (units < 1) return "a cluster has at least one unit";
  if (partitions < 1 || partitions > kMaxPartitions)
    return fmt::format("--partitions {} must be in [1, {}]", partitions, kMaxPartitions);
  if (replicas < 1 || replicas > units || replicas > kMaxReplicas)
    return fmt::format("--replicas {} must be in [1, {}] (the number of units, at most {})",
                       replicas, std::min(units, kMaxReplicas), kMaxReplicas);
  return std::nullopt;
}

Placement::Placement(uint32_t units, uint32_t partitions, uint32_t replicas)
    : units_(units), partitions_(partitions), replicas_(replicas), held_(units) {
  if (auto why = check(units, partitions, replicas)) KJ_FAIL_REQUIRE("bad placement", *why);
  replicaTable_.reserve(size_t{partitions} * replicas);
  std::vector<std::pair<uint64_t, uint32_t>> scored(units);
  for (uint32_t p = 0; p < partitions; ++p) {
    for (uint32_t u = 0; u < units; ++u) scored[u] = {score(p, u), u};
    std::partial_sort(scored.begin(), scored.begin() + replicas, scored.end(),
                      [](const auto& a, const auto& b) { return a.first > b.first; });
    for (uint32_t r = 0; r < replicas; ++r) {
      replicaTable_.push_back(scored[r].second);
      held_[scored[r].second].push_back(p);
    }
  }
}

}  // namespace locus
