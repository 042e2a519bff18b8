// Where a cluster keeps a device, as the gateway places it: for tests that
// load units directly or pick ids by the unit that holds them.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "locus/common/placement.h"

namespace locus::testkit {

// The units holding `id`'s partition, the owner first, in a cluster of
// `units` units (replicas 0 = the default for that many units).
inline std::vector<uint32_t> unitsHolding(std::string_view id, uint32_t units,
                                          uint32_t replicas = 0,
                                          uint32_t partitions = kDefaultPartitions) {
  const Placement placement(units, partitions, replicas != 0 ? replicas : defaultReplicas(units));
  const auto held = placement.replicasOf(partitionOf(id, partitions));
  return {held.begin(), held.end()};
}

// The unit owning `id` (the first of unitsHolding).
inline uint32_t ownerOf(std::string_view id, uint32_t units, uint32_t replicas = 0,
                        uint32_t partitions = kDefaultPartitions) {
  return unitsHolding(id, units, replicas, partitions).front();
}

}  // namespace locus::testkit
