// Tests for locus/common/shard.h: a stable hash, balanced rendezvous
// sharding, minimal movement on growth and distinct replicas.
#include "locus/common/shard.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace {

std::string devId(int i) {
  return "dev-" + std::to_string(i);
}

}  // namespace

TEST_CASE("hashId is XXH3-64 with seed 0 and never changes", "[shard]") {
  // Computed once (and cross-checked against libxxhash directly). A change
  // here re-homes every stored device: do not update these casually.
  CHECK(locus::hashId("") == 0x2D06800538D394C2ULL);  // XXH3 reference vector
  CHECK(locus::hashId("truck-7") == 1139902011822593125ULL);
  CHECK(locus::hashId("dev-0") == 3109162013300164714ULL);
  CHECK(locus::hashId("dev-999999") == 7657217865241814429ULL);
  // Only the bytes matter, not how they are held.
  const std::string s = "truck-7";
  CHECK(locus::hashId(std::string_view(s)) == locus::hashId("truck-7"));
  CHECK(locus::hashId("truck-8") != locus::hashId("truck-7"));
  CHECK(locus::hashId(std::string_view("a\0b", 3)) != locus::hashId(std::string_view("a\0c", 3)));
}

TEST_CASE("shardOf is stable for known ids", "[shard]") {
  // Pinned like hashId: the gateway and the server of different releases
  // must agree on where a device lives.
  CHECK(locus::shardOf("truck-7", 1) == 0);
  CHECK(locus::shardOf("truck-7", 2) == 1);
  CHECK(locus::shardOf("truck-7", 4) == 3);
  CHECK(locus::shardOf("truck-7", 16) == 14);
  CHECK(locus::shardOf("dev-0", 8) == 6);
  CHECK(locus::shardOf("c17", 8) == 5);
  CHECK(locus::shardOf("c17", 16) == 8);
}

TEST_CASE("shardOf is in range and deterministic", "[shard]") {
  for (uint32_t n : {1u, 2u, 3u, 7u, 64u, 1000u}) {
    for (int i = 0; i < 2000; ++i) {
      const std::string id = devId(i);
      const uint32_t s = locus::shardOf(id, n);
      REQUIRE(s < n);
      REQUIRE(locus::shardOf(id, n) == s);
    }
  }
  // One shard owns everything.
  CHECK(locus::shardOf("anything", 1) == 0);
  CHECK(locus::shardOf("", 1) == 0);
}

TEST_CASE("shardOf balances 1,000,000 ids across 4 shards within 5%", "[shard]") {
  constexpr int kIds = 1000000;
  constexpr uint32_t kShards = 4;
  std::vector<int> counts(kShards, 0);
  for (int i = 0; i < kIds; ++i) ++counts[locus::shardOf(devId(i), kShards)];
  const double expected = double(kIds) / kShards;
  for (uint32_t s = 0; s < kShards; ++s) {
    INFO("shard " << s << " holds " << counts[s]);
    CHECK(counts[s] >= 0.95 * expected);
    CHECK(counts[s] <= 1.05 * expected);
  }
}

TEST_CASE("growing N shards to N+1 moves about 1/(N+1) of ids, all to the new shard", "[shard]") {
  constexpr int kIds = 1000000;
  std::vector<std::string> ids;
  ids.reserve(kIds);
  for (int i = 0; i < kIds; ++i) ids.push_back(devId(i));
  for (uint32_t n : {1u, 2u, 4u, 8u}) {
    int moved = 0, movedElsewhere = 0;
    for (const std::string& id : ids) {
      const uint32_t before = locus::shardOf(id, n);
      const uint32_t after = locus::shardOf(id, n + 1);
      if (before != after) {
        ++moved;
        if (after != n) ++movedElsewhere;
      }
    }
    const double fraction = double(moved) / kIds;
    const double expected = 1.0 / (n + 1);
    INFO("N=" << n << ": moved fraction " << fraction << ", expected " << expected);
    CHECK(fraction >= 0.9 * expected);
    CHECK(fraction <= 1.1 * expected);
    CHECK(movedElsewhere == 0);
  }
}

TEST_CASE("replicasOf gives R distinct shards, the owner first", "[shard]") {
  for (uint32_t n : {1u, 2u, 3u, 5u, 8u, 16u}) {
    for (int i = 0; i < 500; ++i) {
      const std::string id = devId(i);
      std::vector<uint32_t> previous;
      for (uint32_t r = 1; r <= n; ++r) {
        const std::vector<uint32_t> reps = locus::replicasOf(id, n, r);
        INFO("id " << id << " n " << n << " r " << r);
        REQUIRE(reps.size() == r);
        REQUIRE(reps.front() == locus::shardOf(id, n));
        for (uint32_t s : reps) REQUIRE(s < n);
        std::vector<uint32_t> sorted = reps;
        std::sort(sorted.begin(), sorted.end());
        REQUIRE(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
        // Asking for one more replica extends the list; preference order
        // does not depend on how many are asked for.
        REQUIRE(std::equal(previous.begin(), previous.end(), reps.begin()));
        previous = reps;
      }
    }
  }
  CHECK(locus::replicasOf("truck-7", 8, 3) == std::vector<uint32_t>{3, 1, 2});
  CHECK(locus::replicasOf("dev-0", 8, 3) == std::vector<uint32_t>{6, 3, 4});
}

TEST_CASE("replicas spread evenly: each shard is second choice equally often", "[shard]") {
  constexpr uint32_t kShards = 4;
  constexpr int kIds = 100000;
  std::vector<int> second(kShards, 0);
  for (int i = 0; i < kIds; ++i) ++second[locus::replicasOf(devId(i), kShards, 2)[1]];
  for (uint32_t s = 0; s < kShards; ++s) {
    INFO("shard " << s << " is second for " << second[s]);
    CHECK(second[s] >= 0.95 * kIds / kShards);
    CHECK(second[s] <= 1.05 * kIds / kShards);
  }
}
