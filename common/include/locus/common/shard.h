// Which unit owns a device: the one sharding function used by the gateway
// (to route reports) and the server (to route `get`).
//
// Rendezvous (highest-random-weight) hashing over a stable 64-bit hash of the
// id (XXH3, the same on every platform and release, unlike std::hash): every
// shard scores the id and the highest score owns it. Growing N shards to N+1
// moves only the ids the new shard now wins, about 1/(N+1) of them, and the
// next-highest scores name distinct replicas.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace locus {

// Stable 64-bit hash of a device id (XXH3-64, seed 0).
uint64_t hashId(std::string_view id);

// The shard in [0, shardCount) that owns `id`. Precondition: shardCount >= 1.
uint32_t shardOf(std::string_view id, uint32_t shardCount);

// `replicas` distinct shards for `id`, the owner first, in preference order.
// Precondition: 1 <= replicas <= shardCount.
std::vector<uint32_t> replicasOf(std::string_view id, uint32_t shardCount, uint32_t replicas);

}  // namespace locus
