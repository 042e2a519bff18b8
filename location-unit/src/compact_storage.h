// Compact storage for per-device data, built for a memory budget of a few
// dozen bytes per device (std::unordered_map<std::string, ...> alone costs
// about 80): chunked columns that never over-allocate by 2x, an arena for id
// bytes, and an open-addressing table of 4-byte slot numbers keyed by the ids
// in the arena.
#pragma once

#include <kj/debug.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

namespace locus::unit {

// A vector of trivially copyable T in fixed-size chunks: growth allocates one
// chunk at a time, so capacity exceeds size by less than one chunk (4,096
// elements: at most 96 KiB for the index's two columns, 0.4 B per device at
// 250,000 devices), and a chunk is small enough for malloc's heap.
template <typename T, unsigned kChunkBits = 12>
class ChunkedVector {
 public:
  static constexpr size_t kChunkSize = size_t{1} << kChunkBits;

  T& operator[](size_t i) { return chunks_[i >> kChunkBits][i & (kChunkSize - 1)]; }
  const T& operator[](size_t i) const { return chunks_[i >> kChunkBits][i & (kChunkSize - 1)]; }
  size_t size() const { return size_; }

  void pushBack(const T& value) {
    if (size_ == chunks_.size() * kChunkSize) chunks_.push_back(std::make_unique<T[]>(kChunkSize));
    (*this)[size_++] = value;
  }
  void popBack() {
    KJ_ASSERT(size_ > 0, "popBack() of an empty column");
    --size_;
    // Keep one spare chunk so a push/pop at a boundary does not thrash.
    if (chunks_.size() * kChunkSize >= size_ + 2 * kChunkSize) chunks_.pop_back();
  }
  size_t capacityBytes() const {
    return chunks_.size() * kChunkSize * sizeof(T) + chunks_.capacity() * sizeof(chunks_[0]);
  }

 private:
  std::vector<std::unique_ptr<T[]>> chunks_;
  size_t size_ = 0;
};

// Id bytes, each stored once as [length byte][bytes] in 64 KiB blocks (so the
// last block's slack is small even for a quarter-million devices) and named by
// a 32-bit reference: block number in the high 16 bits, offset in the low 16
// (4 GiB of ids in all). Released ids leave holes until compaction.
class IdArena {
 public:
  static constexpr unsigned kBlockBits = 16;
  static constexpr uint32_t kBlockSize = uint32_t{1} << kBlockBits;

  // Precondition: 1 <= id.size() <= 255.
  uint32_t add(std::string_view id) {
    const uint32_t need = static_cast<uint32_t>(id.size()) + 1;
    if (blocks_.empty() || used_ + need > kBlockSize) {
      blocks_.push_back(std::make_unique<char[]>(kBlockSize));
      used_ = 0;
    }
    const uint32_t ref = static_cast<uint32_t>(blocks_.size() - 1) << kBlockBits | used_;
    char* at = blocks_.back().get() + used_;
    at[0] = static_cast<char>(id.size());
    std::memcpy(at + 1, id.data(), id.size());
    used_ += need;
    live_ += need;
    return ref;
  }
  std::string_view get(uint32_t ref) const {
    const char* at = blocks_[ref >> kBlockBits].get() + (ref & (kBlockSize - 1));
    return {at + 1, static_cast<unsigned char>(at[0])};
  }
  void release(uint32_t ref) { live_ -= get(ref).size() + 1; }
  // Asks the CPU to start loading id `ref` (a hint: no effect on results).
  void prefetch(uint32_t ref) const {
    __builtin_prefetch(blocks_[ref >> kBlockBits].get() + (ref & (kBlockSize - 1)));
  }

  // Worth compacting when more than half of at least a few blocks is holes.
  bool wantsCompaction() const {
    return blocks_.size() > 4 && live_ * 2 < static_cast<size_t>(blocks_.size()) * kBlockSize;
  }
  size_t capacityBytes() const {
    return blocks_.size() * kBlockSize + blocks_.capacity() * sizeof(blocks_[0]);
  }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  uint32_t used_ = 0;  // bytes used in the last block
  size_t live_ = 0;    // bytes of ids still referenced
};

// id → slot, as an open-addressing table (linear probing, backward-shift
// deletion) of 4-byte entries. It stores no keys: `Keys` answers
// `std::string_view id(uint32_t slot)` and `uint64_t hash(uint32_t slot)`
// from the device columns. An entry holds slot + 1 in its low bits and, in
// the bits slot numbers do not need yet, a fingerprint of the hash, so a
// probe reads an id (a cache miss) only when the fingerprints match.
//
// Any bucket count will do (a hash's home bucket is a multiply-shift of its
// low 32 bits, not a mask), so the table grows by ~1.46x, not 2x: it stays
// between kMinLoad and kMaxLoad full, and a device costs 4.6 to 6.7 bytes.
//
// Growth is incremental, as Redis rehashes its dicts: rebuilding the table
// at once stalls the unit for ~0.8 s at 8M devices (a random write and an id
// hash per device), past the gateway's batch timeout, which then takes the
// unit for stalled and has it copy its partitions again. Instead a growth
// allocates the bigger table and each insert() and advance() then moves
// kMigrateStep buckets of the old one into it, finishing long before the new
// one fills. Meanwhile lookups try the new table and then the old one (where
// a bucket before the cursor has moved and is ignored), and an entry erased
// from the old one leaves a tombstone so its probe chains stay whole.
//
// Precondition: the table holds exactly the slots 0 .. size() - 1 when
// insert() is called (the index keeps its columns dense).
template <typename Keys>
class SlotTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr double kMaxLoad = 0.875;
  static constexpr double kMinLoad = 0.6;  // right after growth
  // Old buckets moved per insert() or advance() during a growth: the new
  // table has room for ~0.46 inserts per old bucket, so 8 per insert ends the
  // growth when it is ~5% fuller than it started.
  static constexpr size_t kMigrateStep = 8;

  explicit SlotTable(Keys keys) : keys_(std::move(keys)) { table_ = Buckets(16); }

  uint32_t find(std::string_view id, uint64_t hash) const {
    if (const uint32_t slot = findIn(table_, id, hash, 0); slot != kNone) return slot;
    return migrating() ? findIn(old_, id, hash, cursor_) : kNone;
  }
  // Precondition: the id of `slot` is not in the table, and slot == size().
  void insert(uint32_t slot, uint64_t hash) {
    KJ_ASSERT(slot == count_, "ids are inserted in slot order", slot, count_);
    if (count_ + 1 > table_.maxCount) {
      finishMigration();  // never two growths at once (it does not come to that)
      startMigration(
          std::max(table_.size() + 1, static_cast<size_t>(double(count_ + 1) / kMinLoad)));
    }
    place(table_, slot, hash);
    ++count_;
    advance();
  }
  // Moves a few buckets of a growth in progress (called for every report, so
  // a growth also ends while devices only move).
  void advance() {
    if (!migrating()) return;
    for (size_t end = std::min(old_.size(), cursor_ + kMigrateStep); cursor_ < end; ++cursor_) {
      const uint32_t v = old_.buckets[cursor_];
      if (!old_.holdsEntry(v)) continue;
      const uint32_t slot = (v & old_.slotMask) - 1;
      place(table_, slot, keys_.hash(slot));
    }
    if (cursor_ == old_.size()) old_ = Buckets();
  }
  // Re-points the entry of a device whose slot number changed from `from`.
  void renumber(uint32_t from, uint32_t to, uint64_t hash) {
    if (const size_t b = bucketIn(table_, from, hash, 0); b != kNowhere) {
      table_.buckets[b] = table_.entry(to, hash);
      return;
    }
    old_.buckets[mustFindInOld(from, hash)] = old_.entry(to, hash);
  }
  void erase(uint32_t slot, uint64_t hash) {
    --count_;
    if (const size_t b = bucketIn(table_, slot, hash, 0); b != kNowhere) {
      eraseAt(b);
      return;
    }
    old_.buckets[mustFindInOld(slot, hash)] = old_.tombstone();
  }
  size_t size() const { return count_; }
  bool migrating() const { return !old_.empty(); }
  size_t capacityBytes() const { return (table_.size() + old_.size()) * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kEmpty = 0;
  static constexpr size_t kNowhere = SIZE_MAX;

  // One bucket array and how its entries are encoded. The array comes from
  // calloc: a big one is fresh zero pages from the kernel, touched as they
  // fill, so a growth does not stop to clear 4 bytes per bucket either.
  struct Buckets {
    struct Free {
      void operator()(uint32_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint32_t[], Free> buckets;
    size_t count = 0;     // buckets
    size_t maxCount = 0;  // grow beyond this many entries
    uint32_t slotMask = 0;

    Buckets() = default;
    explicit Buckets(size_t n)
        : buckets(static_cast<uint32_t*>(std::calloc(n, sizeof(uint32_t)))),
          count(n),
          maxCount(static_cast<size_t>(double(n) * kMaxLoad)) {
      static_assert(kEmpty == 0, "calloc's zeros are empty buckets");
      if (!buckets) throw std::bad_alloc();
      // Slot numbers up to maxCount (+1, as an entry holds slot + 1) must fit.
      const int slotBits = std::bit_width(maxCount);
      slotMask = slotBits >= 32 ? UINT32_MAX : (uint32_t{1} << slotBits) - 1;
    }
    size_t size() const { return count; }
    bool empty() const { return count == 0; }
    size_t home(uint64_t hash) const {
      return static_cast<size_t>((hash & UINT32_MAX) * count >> 32);
    }
    size_t next(size_t b) const { return b + 1 == count ? 0 : b + 1; }
    uint32_t fingerprint(uint64_t hash) const {
      return static_cast<uint32_t>(hash >> 32) & ~slotMask;
    }
    uint32_t entry(uint32_t slot, uint64_t hash) const { return fingerprint(hash) | (slot + 1); }
    // An erased entry of a table being migrated: slot bits 0, which no
    // entry has (it holds slot + 1), and not empty.
    uint32_t tombstone() const { return ~slotMask; }
    bool holdsEntry(uint32_t v) const { return (v & slotMask) != 0; }
  };

  // Probe steps from bucket `from` forward to bucket `to`.
  size_t distance(size_t from, size_t to) const {
    return to >= from ? to - from : to + table_.size() - from;
  }
  // The slot of `id` in `t`, ignoring buckets before `from` (moved ones).
  uint32_t findIn(const Buckets& t, std::string_view id, uint64_t hash, size_t from) const {
    const uint32_t fp = t.fingerprint(hash);
    for (size_t b = t.home(hash);; b = t.next(b)) {
      const uint32_t v = t.buckets[b];
      if (v == kEmpty) return kNone;
      if (b >= from && t.holdsEntry(v) && (v & ~t.slotMask) == fp &&
          keys_.id((v & t.slotMask) - 1) == id) {
        return (v & t.slotMask) - 1;
      }
    }
  }
  // The bucket of `slot`'s entry in `t` at or after bucket `from`, or kNowhere.
  size_t bucketIn(const Buckets& t, uint32_t slot, uint64_t hash, size_t from) const {
    const uint32_t want = t.entry(slot, hash);
    for (size_t b = t.home(hash);; b = t.next(b)) {
      if (t.buckets[b] == kEmpty) return kNowhere;
      if (t.buckets[b] == want && b >= from) return b;
    }
  }
  size_t mustFindInOld(uint32_t slot, uint64_t hash) const {
    const size_t b = migrating() ? bucketIn(old_, slot, hash, cursor_) : kNowhere;
    KJ_ASSERT(b != kNowhere, "slot not in the id table", slot);
    return b;
  }
  static void place(Buckets& t, uint32_t slot, uint64_t hash) {
    size_t b = t.home(hash);
    while (t.buckets[b] != kEmpty) b = t.next(b);
    t.buckets[b] = t.entry(slot, hash);
  }
  // Backward shift: move each later entry of the cluster into the hole when
  // the hole lies on its probe path, so lookups in table_ never need
  // tombstones.
  void eraseAt(size_t hole) {
    for (size_t b = table_.next(hole);; b = table_.next(b)) {
      const uint32_t v = table_.buckets[b];
      if (v == kEmpty) break;
      const size_t h = table_.home(keys_.hash((v & table_.slotMask) - 1));
      if (distance(h, b) >= distance(hole, b)) {
        table_.buckets[hole] = v;
        hole = b;
      }
    }
    table_.buckets[hole] = kEmpty;
  }
  void startMigration(size_t buckets) {
    old_ = std::move(table_);
    table_ = Buckets(buckets);  // exactly `buckets`, no spare capacity
    cursor_ = 0;
  }
  void finishMigration() {
    while (migrating()) advance();
  }

  Keys keys_;
  Buckets table_;
  Buckets old_;        // being moved into table_ (empty when no growth runs)
  size_t cursor_ = 0;  // old_'s buckets before it have moved
  size_t count_ = 0;
};

}  // namespace locus::unit
