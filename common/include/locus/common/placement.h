// Partitions and where they live (SPEC "Replication and durability").
//
// A cluster has a fixed number of partitions (--partitions, 256 by default,
// the same on every role). A device belongs to partitionOf(id); a partition
// lives on `replicas` distinct units, chosen by rendezvous hashing of the
// partition number over the units (the units' order in --units names them),
// the highest score first: that one is the partition's owner, the one asked
// first. Growing N units to N+1 moves only the replicas the new unit now
// wins: about R/(N+1) of them, and about 1/(N+1) of the owners.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace locus {

inline constexpr uint32_t kDefaultPartitions = 256;
inline constexpr uint32_t kMaxPartitions = 65'536;
inline constexpr uint32_t kMaxReplicas = 8;

// The partition of a device id, in [0, partitions). Stable across releases
// (XXH3 of the id, as hashId). Precondition: partitions >= 1.
uint32_t partitionOf(std::string_view id, uint32_t partitions);

// The replica count a cluster of `units` units gets unless told: 2 once
// there are two units, else 1.
inline uint32_t defaultReplicas(uint32_t units) {
  return units >= 2 ? 2 : 1;
}

class Placement {
 public:
  // Precondition: check() found nothing.
  Placement(uint32_t units, uint32_t partitions, uint32_t replicas);

  // Why these counts cannot form a placement, or nothing.
  static std::optional<std::string> check(uint32_t units, uint32_t partitions, uint32_t replicas);

  uint32_t units() const { return units_; }
  uint32_t partitions() const { return partitions_; }
  uint32_t replicas() const { return replicas_; }

  // The units holding `partition`, the owner first, in preference order.
  std::span<const uint32_t> replicasOf(uint32_t partition) const {
    return {replicaTable_.data() + size_t{partition} * replicas_, replicas_};
  }
  uint32_t ownerOf(uint32_t partition) const { return replicasOf(partition)[0]; }
  // The partitions `unit` holds (as any replica), ascending.
  const std::vector<uint32_t>& partitionsOf(uint32_t unit) const { return held_[unit]; }

 private:
  uint32_t units_, partitions_, replicas_;
  std::vector<uint32_t> replicaTable_;       // partitions x replicas
  std::vector<std::vector<uint32_t>> held_;  // by unit
};

}  // namespace locus
