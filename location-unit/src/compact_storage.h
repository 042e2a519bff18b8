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
#include <cstring>
#include <memory>
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
// deletion, no tombstones) of 4-byte entries. It stores no keys: `Keys`
// answers `std::string_view id(uint32_t slot)` and `uint64_t hash(uint32_t
// slot)` from the device columns. An entry holds slot + 1 in its low bits and,
// in the bits slot numbers do not need yet, a fingerprint of the hash, so a
// probe reads an id (a cache miss) only when the fingerprints match.
//
// Any bucket count will do (a hash's home bucket is a multiply-shift of its
// low 32 bits, not a mask), so the table grows by ~1.46x, not 2x: it stays
// between kMinLoad and kMaxLoad full, and a device costs 4.6 to 6.7 bytes.
//
// Precondition: the table holds exactly the slots 0 .. size() - 1 when
// insert() is called (the index keeps its columns dense), so growth rehashes
// in slot order, reading the ids where they are stored one after another.
template <typename Keys>
class SlotTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;
  static constexpr double kMaxLoad = 0.875;
  static constexpr double kMinLoad = 0.6;  // right after growth

  explicit SlotTable(Keys keys) : keys_(std::move(keys)) { resize(16); }

  uint32_t find(std::string_view id, uint64_t hash) const {
    const uint32_t fp = fingerprint(hash);
    for (size_t b = home(hash);; b = next(b)) {
      const uint32_t v = buckets_[b];
      if (v == kEmpty) return kNone;
      if ((v & ~slotMask_) == fp && keys_.id((v & slotMask_) - 1) == id) {
        return (v & slotMask_) - 1;
      }
    }
  }
  // Precondition: the id of `slot` is not in the table, and slot == size().
  void insert(uint32_t slot, uint64_t hash) {
    KJ_ASSERT(slot == count_, "ids are inserted in slot order", slot, count_);
    if (count_ + 1 > maxCount_) {
      resize(std::max(buckets_.size() + 1, static_cast<size_t>(double(count_ + 1) / kMinLoad)));
    }
    place(slot, hash);
    ++count_;
  }
  // Re-points the entry of a device whose slot number changed from `from`.
  void renumber(uint32_t from, uint32_t to, uint64_t hash) {
    buckets_[bucketOf(from, hash)] = entry(to, hash);
  }
  void erase(uint32_t slot, uint64_t hash) {
    size_t hole = bucketOf(slot, hash);
    // Backward shift: move each later entry of the cluster into the hole when
    // the hole lies on its probe path, so lookups never need tombstones.
    for (size_t b = next(hole);; b = next(b)) {
      const uint32_t v = buckets_[b];
      if (v == kEmpty) break;
      const size_t h = home(keys_.hash((v & slotMask_) - 1));
      if (distance(h, b) >= distance(hole, b)) {
        buckets_[hole] = v;
        hole = b;
      }
    }
    buckets_[hole] = kEmpty;
    --count_;
  }
  size_t size() const { return count_; }
  size_t capacityBytes() const { return buckets_.capacity() * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kEmpty = 0;

  size_t home(uint64_t hash) const {
    return static_cast<size_t>((hash & UINT32_MAX) * buckets_.size() >> 32);
  }
  size_t next(size_t b) const { return b + 1 == buckets_.size() ? 0 : b + 1; }
  // Probe steps from bucket `from` forward to bucket `to`.
  size_t distance(size_t from, size_t to) const {
    return to >= from ? to - from : to + buckets_.size() - from;
  }
  uint32_t fingerprint(uint64_t hash) const {
    return static_cast<uint32_t>(hash >> 32) & ~slotMask_;
  }
  uint32_t entry(uint32_t slot, uint64_t hash) const { return fingerprint(hash) | (slot + 1); }

  size_t bucketOf(uint32_t slot, uint64_t hash) const {
    const uint32_t want = entry(slot, hash);
    for (size_t b = home(hash);; b = next(b)) {
      if (buckets_[b] == want) return b;
      KJ_ASSERT(buckets_[b] != kEmpty, "slot not in the id table", slot);
    }
  }
  void place(uint32_t slot, uint64_t hash) {
    size_t b = home(hash);
    while (buckets_[b] != kEmpty) b = next(b);
    buckets_[b] = entry(slot, hash);
  }
  // Rebuilds the table with `buckets` buckets from the slots it holds.
  void resize(size_t buckets) {
    buckets_ = std::vector<uint32_t>(buckets, kEmpty);  // exactly `buckets`, no spare capacity
    maxCount_ = static_cast<size_t>(double(buckets) * kMaxLoad);
    // Slot numbers up to maxCount_ (+1, as an entry holds slot + 1) must fit.
    const int slotBits = std::bit_width(maxCount_);
    slotMask_ = slotBits >= 32 ? UINT32_MAX : (uint32_t{1} << slotBits) - 1;
    for (uint32_t s = 0; s < count_; ++s) place(s, keys_.hash(s));
  }

  Keys keys_;
  std::vector<uint32_t> buckets_;
  size_t count_ = 0;
  size_t maxCount_ = 0;  // grow beyond this many entries
  uint32_t slotMask_ = 0;
};

}  // namespace locus::unit
