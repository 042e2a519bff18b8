// Compact storage for per-device data, built for a memory budget of a few
// dozen bytes per device (std::unordered_map<std::string, ...> alone costs
// about 80): chunked columns that never over-allocate by 2x, an arena for id
// bytes, and an open-addressing table of 4-byte slot numbers keyed by the ids
// in the arena.
#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

namespace locus::unit {

// A vector of trivially copyable T in fixed-size chunks: growth allocates one
// chunk at a time, so capacity exceeds size by less than one chunk.
template <typename T, unsigned kChunkBits = 14>
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
    assert(size_ > 0);
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

// Id bytes, each stored once as [length byte][bytes] in 1 MiB blocks and
// named by a 32-bit reference. Released ids leave holes until compaction.
class IdArena {
 public:
  static constexpr unsigned kBlockBits = 20;
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
// slot)` from the device columns, so each device costs 4 / load-factor bytes
// here (5.3 to 10.7 at loads between 0.375 and 0.75).
template <typename Keys>
class SlotTable {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit SlotTable(Keys keys) : keys_(std::move(keys)) { buckets_.assign(16, kEmpty); }

  uint32_t find(std::string_view id, uint64_t hash) const {
    for (size_t b = hash & mask();; b = (b + 1) & mask()) {
      const uint32_t v = buckets_[b];
      if (v == kEmpty) return kNone;
      if (keys_.id(v - 1) == id) return v - 1;
    }
  }
  // Precondition: the id of `slot` is not in the table.
  void insert(uint32_t slot, uint64_t hash) {
    if ((count_ + 1) * 4 > buckets_.size() * 3) grow();
    place(slot, hash);
    ++count_;
  }
  // Re-points the entry of a device whose slot number changed from `from`.
  void renumber(uint32_t from, uint32_t to, uint64_t hash) {
    buckets_[bucketOf(from, hash)] = to + 1;
  }
  void erase(uint32_t slot, uint64_t hash) {
    size_t hole = bucketOf(slot, hash);
    // Backward shift: move each later entry of the cluster into the hole when
    // the hole lies on its probe path, so lookups never need tombstones.
    for (size_t b = (hole + 1) & mask();; b = (b + 1) & mask()) {
      const uint32_t v = buckets_[b];
      if (v == kEmpty) break;
      const size_t home = keys_.hash(v - 1) & mask();
      if (((b - home) & mask()) >= ((b - hole) & mask())) {
        buckets_[hole] = v;
        hole = b;
      }
    }
    buckets_[hole] = kEmpty;
    --count_;
  }
  size_t capacityBytes() const { return buckets_.capacity() * sizeof(uint32_t); }

 private:
  static constexpr uint32_t kEmpty = 0;  // a bucket holds slot + 1

  size_t mask() const { return buckets_.size() - 1; }
  size_t bucketOf(uint32_t slot, uint64_t hash) const {
    for (size_t b = hash & mask();; b = (b + 1) & mask()) {
      if (buckets_[b] == slot + 1) return b;
      assert(buckets_[b] != kEmpty && "slot not in table");
    }
  }
  void place(uint32_t slot, uint64_t hash) {
    size_t b = hash & mask();
    while (buckets_[b] != kEmpty) b = (b + 1) & mask();
    buckets_[b] = slot + 1;
  }
  void grow() {
    std::vector<uint32_t> old(buckets_.size() * 2, kEmpty);
    old.swap(buckets_);
    for (uint32_t v : old) {
      if (v != kEmpty) place(v - 1, keys_.hash(v - 1));
    }
  }

  Keys keys_;
  std::vector<uint32_t> buckets_;
  size_t count_ = 0;
};

}  // namespace locus::unit
