// The unit's id table (SlotTable) against a reference map, through growths
// that are still moving buckets while devices are inserted, erased and
// renumbered (the index keeps its slots dense: an erase moves the last slot
// into the hole).
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "compact_storage.h"
#include "locus/common/shard.h"

namespace {

struct Keys {
  const std::vector<std::string>* ids;
  std::string_view id(uint32_t slot) const { return (*ids)[slot]; }
  uint64_t hash(uint32_t slot) const { return hashOf((*ids)[slot]); }
  static uint64_t hashOf(std::string_view id) { return locus::hashId(id); }
};

using Table = locus::unit::SlotTable<Keys>;

// The dense columns the table indexes, and the reference answer.
struct Model {
  std::vector<std::string> ids;  // by slot
  std::unordered_map<std::string, uint32_t> slots;
  Table table{Keys{&ids}};
  uint64_t next = 0;

  void insert() {
    ids.push_back(fmt::format("device-{}", next++));
    const auto slot = static_cast<uint32_t>(ids.size() - 1);
    slots[ids.back()] = slot;
    table.insert(slot, Keys::hashOf(ids.back()));
  }
  void erase(uint32_t slot) {
    table.erase(slot, Keys::hashOf(ids[slot]));
    slots.erase(ids[slot]);
    const auto last = static_cast<uint32_t>(ids.size() - 1);
    if (slot != last) {
      table.renumber(last, slot, Keys::hashOf(ids[last]));
      ids[slot] = ids[last];
      slots[ids[slot]] = slot;
    }
    ids.pop_back();
  }
  void checkAll(uint64_t erasedBelow) const {
    REQUIRE(table.size() == ids.size());
    for (const auto& [id, slot] : slots) REQUIRE(table.find(id, Keys::hashOf(id)) == slot);
    // Some ids that were erased (or never inserted) are not found.
    for (uint64_t i = 0; i < erasedBelow; i += 97) {
      const std::string id = fmt::format("device-{}", i);
      if (!slots.contains(id)) REQUIRE(table.find(id, Keys::hashOf(id)) == Table::kNone);
    }
    const std::string never = "never-inserted";
    REQUIRE(table.find(never, Keys::hashOf(never)) == Table::kNone);
  }
};

}  // namespace

TEST_CASE("the id table grows a few buckets at a time and answers exactly meanwhile", "[index]") {
  Model m;
  std::mt19937_64 rng(5);
  size_t growthsSeen = 0, checksDuringGrowth = 0;
  bool was = false;
  for (int round = 0; round < 60; ++round) {
    for (int i = 0; i < 3'000; ++i) {
      m.insert();
      const bool now = m.table.migrating();
      if (now && !was) ++growthsSeen;
      was = now;
      // Erase and renumber while a growth runs, too.
      if (rng() % 4 == 0) m.erase(static_cast<uint32_t>(rng() % m.ids.size()));
      if (now && rng() % 500 == 0) {
        ++checksDuringGrowth;
        m.checkAll(m.next);
      }
    }
    m.checkAll(m.next);
  }
  // The table grew many times, and each growth took more than one insert.
  REQUIRE(growthsSeen >= 8);
  REQUIRE(checksDuringGrowth > 0);
  // A growth ends while devices only move (advance() from every report).
  Model moving;
  while (moving.ids.size() < 10'000 || !moving.table.migrating()) moving.insert();
  size_t steps = 0;
  while (moving.table.migrating()) {
    moving.table.advance();
    ++steps;
  }
  REQUIRE(steps > 100);  // ~12,000 old buckets, 8 per step
  moving.checkAll(moving.next);
}
