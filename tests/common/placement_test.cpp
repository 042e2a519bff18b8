// Tests for locus/common/placement.h: partitions of ids, R distinct replicas
// per partition, balance, stability and minimal movement when units grow.
#include "locus/common/placement.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

namespace locus {

TEST_CASE("partitionOf spreads ids evenly and never changes", "[placement]") {
  // Pinned: every role of every release must agree on a device's partition.
  CHECK(partitionOf("truck-7", 256) == 215);
  CHECK(partitionOf("dev-0", 256) == 96);
  CHECK(partitionOf("dev-999999", 65'536) == 59'156);
  std::vector<int> counts(256);
  for (int i = 0; i < 256'000; ++i) ++counts[partitionOf("dev-" + std::to_string(i), 256)];
  const auto [least, most] = std::minmax_element(counts.begin(), counts.end());
  CHECK(*least > 800);  // 1,000 expected each
  CHECK(*most < 1200);
  CHECK(partitionOf("anything", 1) == 0);
}

TEST_CASE("placement is pinned: every role computes the same one", "[placement]") {
  const Placement p(4, 256, 2);
  CHECK(std::vector<uint32_t>(p.replicasOf(0).begin(), p.replicasOf(0).end()) ==
        std::vector<uint32_t>{0, 1});
  CHECK(std::vector<uint32_t>(p.replicasOf(255).begin(), p.replicasOf(255).end()) ==
        std::vector<uint32_t>{2, 3});
}

TEST_CASE("every partition lives on R distinct units, the owner first", "[placement]") {
  for (uint32_t units : {1u, 2u, 3u, 4u, 7u, 16u}) {
    for (uint32_t replicas = 1; replicas <= std::min(units, 3u); ++replicas) {
      INFO(units << " units, R " << replicas);
      const Placement p(units, 256, replicas);
      std::vector<size_t> held(units);
      for (uint32_t part = 0; part < 256; ++part) {
        const auto r = p.replicasOf(part);
        REQUIRE(r.size() == replicas);
        CHECK(std::set<uint32_t>(r.begin(), r.end()).size() == replicas);
        for (uint32_t u : r) {
          REQUIRE(u < units);
          ++held[u];
          const auto& mine = p.partitionsOf(u);
          CHECK(std::binary_search(mine.begin(), mine.end(), part));
        }
        CHECK(p.ownerOf(part) == r[0]);
      }
      // Balanced: each unit holds about 256 * R / N partitions.
      const double fair = 256.0 * replicas / units;
      for (uint32_t u = 0; u < units; ++u) {
        CHECK(held[u] == p.partitionsOf(u).size());
        CHECK(held[u] > fair * 0.5);
        CHECK(held[u] < fair * 1.5 + 2);
      }
    }
  }
}

TEST_CASE("adding a unit moves about R/(N+1) of the replicas, only to the new unit",
          "[placement]") {
  constexpr uint32_t kPartitions = 4096;
  for (uint32_t units : {2u, 4u, 8u}) {
    for (uint32_t replicas : {1u, 2u}) {
      INFO(units << " -> " << units + 1 << " units, R " << replicas);
      const Placement before(units, kPartitions, replicas), after(units + 1, kPartitions, replicas);
      size_t moved = 0, ownersMoved = 0;
      for (uint32_t part = 0; part < kPartitions; ++part) {
        const auto a = before.replicasOf(part), b = after.replicasOf(part);
        const std::set<uint32_t> was(a.begin(), a.end()), now(b.begin(), b.end());
        for (uint32_t u : now) {
          if (!was.count(u)) {
            ++moved;
            CHECK(u == units);  // a replica only ever moves to the new unit
          }
        }
        if (a[0] != b[0]) {
          ++ownersMoved;
          CHECK(b[0] == units);
        }
      }
      const double expected = double(kPartitions) * replicas / (units + 1);
      CHECK(moved > expected * 0.8);
      CHECK(moved < expected * 1.2);
      const double expectedOwners = double(kPartitions) / (units + 1);
      CHECK(ownersMoved > expectedOwners * 0.8);
      CHECK(ownersMoved < expectedOwners * 1.2);
    }
  }
}

TEST_CASE("a placement that cannot be is refused with the reason", "[placement]") {
  CHECK(Placement::check(4, 256, 2) == std::nullopt);
  CHECK(Placement::check(1, 256, 2).value_or("").find("--replicas") != std::string::npos);
  CHECK(Placement::check(4, 0, 1).value_or("").find("--partitions") != std::string::npos);
  CHECK(Placement::check(4, kMaxPartitions + 1, 1).has_value());
  CHECK(Placement::check(0, 256, 1).has_value());
  CHECK(defaultReplicas(1) == 1);
  CHECK(defaultReplicas(2) == 2);
  CHECK(defaultReplicas(9) == 2);
}

}  // namespace locus
