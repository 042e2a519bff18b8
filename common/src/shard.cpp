#include "locus/common/shard.h"

#include <kj/debug.h>
#include <xxhash.h>

#include <algorithm>

namespace locus {
namespace {

// The score shard `shard` gives an id with hash `h`: a SplitMix64 finalizer
// over the pair, so each shard's scores are independent and uniform.
uint64_t score(uint64_t h, uint32_t shard) {
  uint64_t x = h ^ ((static_cast<uint64_t>(shard) + 1) * 0x9E3779B97F4A7C15ULL);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace

uint64_t hashId(std::string_view id) {
  return XXH3_64bits(id.data(), id.size());
}

uint32_t shardOf(std::string_view id, uint32_t shardCount) {
  KJ_REQUIRE(shardCount >= 1, "a cluster has at least one shard", shardCount);
  const uint64_t h = hashId(id);
  uint32_t best = 0;
  uint64_t bestScore = score(h, 0);
  for (uint32_t s = 1; s < shardCount; ++s) {
    const uint64_t sc = score(h, s);
    if (sc > bestScore) best = s, bestScore = sc;
  }
  return best;
}

std::vector<uint32_t> replicasOf(std::string_view id, uint32_t shardCount, uint32_t replicas) {
  KJ_REQUIRE(shardCount >= 1 && replicas >= 1 && replicas <= shardCount,
             "replicas must be 1..shardCount", shardCount, replicas);
  const uint64_t h = hashId(id);
  std::vector<std::pair<uint64_t, uint32_t>> scored(shardCount);
  for (uint32_t s = 0; s < shardCount; ++s) scored[s] = {score(h, s), s};
  std::partial_sort(scored.begin(), scored.begin() + replicas, scored.end(),
                    [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<uint32_t> out(replicas);
  for (uint32_t i = 0; i < replicas; ++i) out[i] = scored[i].second;
  return out;
}

}  // namespace locus
