#include "locus/unit/location_index.h"

#include <kj/debug.h>

#include <algorithm>
#include <boost/geometry.hpp>
#include <boost/geometry/index/rtree.hpp>
#include <boost/iterator/function_output_iterator.hpp>
#include <cmath>
#include <limits>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <queue>
#include <unordered_map>

#include "compact_storage.h"
#include "locus/common/geo.h"
#include "locus/common/placement.h"
#include "locus/common/shard.h"

// How the index stays exact and cheap to update
// ---------------------------------------------
// The R-tree indexes each device by an *anchor*: the position it had when it
// was last (re)inserted, as a point in plain lon/lat degrees. A device that
// moves stays under its anchor while it is within `slackE7` of it on both
// axes; only the stored position (a column outside the tree) changes, so a
// typical move costs a hash lookup and two stores instead of a tree removal
// and insertion. Leaving the slack box re-anchors the device.
//
// Queries therefore look `slack` further than asked: every candidate region
// (a lon/lat box) is widened by the slack plus the float rounding of anchors,
// the tree yields every device whose true position can be inside, and each
// candidate's true position is then tested exactly with the functions of
// geo.h — the same ones a brute-force scan uses.
//
// Why lon/lat boxes rather than, say, 3-D unit vectors: box and polygon
// queries are defined in lon/lat, and circles and nearest queries reduce to
// lon/lat boxes with geo::circleCover, which handles the poles (a cap around
// a pole covers all longitudes) and the antimeridian (two boxes). 2-D float
// points keep a tree entry at 12 bytes. Nearest-k is an expanding circle:
// find every device within r; if at least k are found the k best are exact
// (everything outside is farther than r), else grow r — up to half the
// Earth's circumference, where the cover is the whole world.
//
// Memory, per device beyond its id's bytes (SPEC city, 100k-1M devices,
// see BENCHMARKS.md): columns 24 B (position and ts 16, id ref and anchor
// offsets 8), the id's length byte, the id table 4.6-6.7 B (compact_storage.h)
// and the R-tree ~28 B (12-byte entries in nodes ~70% full, plus malloc's
// headers), ~59-61 B in all. memoryUsage() counts capacity, and the tree's
// blocks as malloc sizes them, so it agrees with malloc's own count.

namespace locus::unit {
namespace {

namespace bg = boost::geometry;
namespace bgi = boost::geometry::index;

using TreePoint = bg::model::point<float, 2, bg::cs::cartesian>;  // (lon, lat) degrees
using TreeBox = bg::model::box<TreePoint>;
using TreeValue = std::pair<TreePoint, uint32_t>;  // anchor, slot

// Counts the bytes the tree takes from the heap, for MemoryUsage. The tree
// makes two small allocations per node (the node, its element array), so
// malloc's chunk header and rounding are ~10% of it: each block counts as
// what malloc really set aside for it (glibc: its usable size plus the 8-byte
// header; elsewhere the bytes asked for).
template <typename T>
struct CountingAllocator {
  using value_type = T;
  size_t* bytes;
  explicit CountingAllocator(size_t* counter) : bytes(counter) {}
  template <typename U>
  CountingAllocator(const CountingAllocator<U>& other) : bytes(other.bytes) {}
  T* allocate(size_t n) {
    T* p = std::allocator<T>().allocate(n);
    *bytes += heapBytes(p, n);
    return p;
  }
  void deallocate(T* p, size_t n) {
    *bytes -= heapBytes(p, n);
    std::allocator<T>().deallocate(p, n);
  }
  static size_t heapBytes([[maybe_unused]] T* p, [[maybe_unused]] size_t n) {
#ifdef __GLIBC__
    return malloc_usable_size(p) + sizeof(size_t);
#else
    return n * sizeof(T);
#endif
  }
  template <typename U>
  bool operator==(const CountingAllocator<U>& o) const {
    return bytes == o.bytes;
  }
  template <typename U>
  bool operator!=(const CountingAllocator<U>& o) const {
    return bytes != o.bytes;
  }
};

// Run-time parameters on purpose: Boost's compile-time variants make every
// node as large as an internal node (~43 bytes per device here), its
// run-time ones size each node's element array to fit (~26 bytes), for ~20%
// slower queries. See BENCHMARKS.md.
using Tree = bgi::rtree<TreeValue, bgi::dynamic_rstar, bgi::indexable<TreeValue>,
                        bgi::equal_to<TreeValue>, CountingAllocator<TreeValue>>;

// An anchor in float degrees is within this of its exact value (half a float
// ulp at 180 is 7.6e-6), and so is a query bound converted to float.
constexpr double kFloatSlopDeg = 2e-5;

// Widest relative error of the haversine term we guard against when deciding
// on `a` alone; closer calls are settled by computing metres exactly.
constexpr double kARelTolerance = 1e-9;

// What the index keeps per device, hot and cold parts apart so that query
// refinement touches 16 bytes per candidate.
struct Position {
  int32_t latE7;
  int32_t lonE7;
  int64_t tsMs;
};
struct Record {
  uint32_t idRef;      // into IdArena
  int16_t anchorDLat;  // anchor - position, 1e-7 degree
  int16_t anchorDLon;
};
struct Extras {
  float speedMps;
  float headingDeg;
  float accuracyM;
};

TreePoint anchorPoint(int32_t latE7, int32_t lonE7) {
  return TreePoint(static_cast<float>(geo::fromE7(lonE7)), static_cast<float>(geo::fromE7(latE7)));
}

geo::LatLon latLonOf(const Position& p) {
  return {geo::fromE7(p.latE7), geo::fromE7(p.lonE7)};
}

bool hasExtras(const Report& r) {
  return !std::isnan(r.speedMps) || !std::isnan(r.headingDeg) || !std::isnan(r.accuracyM);
}

}  // namespace

class LocationIndex::Impl {
  struct Scored;
  struct ByDistance;
  struct ById;

 public:
  explicit Impl(IndexOptions options)
      : options_(options),
        slackDeg_(options.slackE7 * 1e-7),
        table_(Keys{this}),
        tree_(bgi::dynamic_rstar(16), bgi::indexable<TreeValue>(), bgi::equal_to<TreeValue>(),
              CountingAllocator<TreeValue>(&treeBytes_)) {
    // Anchor offsets are stored as int16_t.
    KJ_REQUIRE(options.slackE7 >= 0 && options.slackE7 <= INT16_MAX, options.slackE7);
  }

  ApplyOutcome apply(const Report& r) {
    const int32_t latE7 = geo::toE7(r.lat);
    const int32_t lonE7 = geo::toE7(r.lon);
    const uint64_t hash = hashId(r.id);
    table_.advance();  // a growth of the id table ends while devices only move, too
    const uint32_t slot = table_.find(r.id, hash);
    if (slot == Table::kNone) {
      insertNew(r, latE7, lonE7, hash);
      return ApplyOutcome::kInserted;
    }
    Position& pos = positions_[slot];
    if (!supersedes(r.tsMs, latE7, lonE7, pos.tsMs, pos.latE7, pos.lonE7))
      return ApplyOutcome::kStale;
    Record& rec = records_[slot];
    if (loading_) {  // endLoad() builds the tree from the positions
      rec.anchorDLat = rec.anchorDLon = 0;
      pos = Position{latE7, lonE7, r.tsMs};
      setExtras(slot, r);
      return ApplyOutcome::kMoved;
    }
    const int32_t anchorLat = pos.latE7 + rec.anchorDLat;
    const int32_t anchorLon = pos.lonE7 + rec.anchorDLon;
    const int64_t dLat = int64_t{anchorLat} - latE7;
    const int64_t dLon = int64_t{anchorLon} - lonE7;
    if (std::abs(dLat) <= options_.slackE7 && std::abs(dLon) <= options_.slackE7) {
      rec.anchorDLat = static_cast<int16_t>(dLat);
      rec.anchorDLon = static_cast<int16_t>(dLon);
    } else {
      const size_t removed = tree_.remove(TreeValue(anchorPoint(anchorLat, anchorLon), slot));
      KJ_ASSERT(removed == 1, "a device's anchor is in the tree once", slot, removed);
      tree_.insert(TreeValue(anchorPoint(latE7, lonE7), slot));
      rec.anchorDLat = rec.anchorDLon = 0;
    }
    pos = Position{latE7, lonE7, r.tsMs};
    setExtras(slot, r);
    return ApplyOutcome::kMoved;
  }

  void beginLoad() { loading_ = true; }

  void endLoad() {
    KJ_REQUIRE(loading_, "endLoad() without beginLoad()");
    loading_ = false;
    std::vector<TreeValue> values;
    values.reserve(size());
    for (uint32_t slot = 0; slot < size(); ++slot) values.push_back(treeValueOf(slot));
    // The range constructor packs (STR bulk loading); inserting one by one
    // would run the R* split and reinsertion for every value.
    Tree packed(values.begin(), values.end(), bgi::dynamic_rstar(16), bgi::indexable<TreeValue>(),
                bgi::equal_to<TreeValue>(), CountingAllocator<TreeValue>(&treeBytes_));
    tree_.clear();
    tree_.swap(packed);
  }

  bool remove(std::string_view id) {
    const uint32_t slot = table_.find(id, hashId(id));
    if (slot == Table::kNone) return false;
    removeSlot(slot);
    return true;
  }

  size_t expire(int64_t nowMs, size_t maxScan) {
    if (options_.ttlMs <= 0) return 0;
    const int64_t cutoff = nowMs - options_.ttlMs;
    size_t removed = 0;
    for (size_t scanned = 0; scanned < maxScan && size() > 0; ++scanned) {
      if (expireCursor_ >= size()) expireCursor_ = 0;
      if (positions_[expireCursor_].tsMs < cutoff) {
        removeSlot(static_cast<uint32_t>(expireCursor_));  // the last device moves in here
        ++removed;
      } else {
        ++expireCursor_;
      }
    }
    return removed;
  }

  std::optional<Hit> get(std::string_view id, int64_t nowMs) const {
    const uint32_t slot = table_.find(id, hashId(id));
    if (slot == Table::kNone || positions_[slot].tsMs < minTs(0, nowMs)) return std::nullopt;
    return hitOf(slot, std::numeric_limits<double>::quiet_NaN());
  }

  // Whether `only` takes the device in `slot`: from its partition bits when
  // they decide it, else from its id.
  bool serves(const PartitionFilter& only, uint32_t slot) const {
    return only.decidedByLowBits() ? only.containsLowBits(partitionBits_[slot])
                                   : only.contains(idOf(slot));
  }

  // Whether a query filtered by `only` and `prefix` leaves out `slot`.
  bool excluded(uint32_t slot, const PartitionFilter* only, std::string_view prefix) const {
    if (only && !serves(*only, slot)) return true;
    return !prefix.empty() && idOf(slot).substr(0, prefix.size()) != prefix;
  }

  QueryResult nearest(const NearestQuery& q, int64_t nowMs, const PartitionFilter* only) const {
    QueryResult out;
    if (size() == 0) return out;
    const int64_t minTsMs = minTs(q.maxAgeS, nowMs);
    const geo::DistanceFrom from(q.center);
    const double maxR = q.maxDistanceM > 0 ? q.maxDistanceM : geo::kHalfCircumferenceM;
    // Only the partitions served count towards k: look as far as holds k
    // of those.
    const double share = only ? std::max(only->servedFraction(), 1.0 / only->partitions()) : 1.0;
    double r = std::min(initialRadiusM(q.k) / std::sqrt(share), maxR);
    std::vector<Scored> best;  // max-heap on (distance, id): the worst kept on top
    for (;;) {
      best.clear();
      const double aR = geo::DistanceFrom::aFromMetres(r);
      forEachCandidate(geo::circleCover(q.center, r), [&](uint32_t slot) {
        const Position& p = positions_[slot];
        if (p.tsMs < minTsMs) return;
        const geo::LatLon at = latLonOf(p);
        const double bar = best.size() == q.k ? std::min(aR, best.front().a) : aR;
        if (from.aLowerBound(at) > bar * (1 + 2 * kARelTolerance)) return;  // no trig spent
        const double a = from.a(at);
        if (a > aR * (1 + kARelTolerance)) return;
        if (best.size() == q.k && a > best.front().a * (1 + kARelTolerance)) return;
        const double d = geo::DistanceFrom::metresFromA(a);
        if (d > r) return;
        if (excluded(slot, only, q.idPrefix)) return;
        offer(best, Scored{d, a, slot}, q.k, byDistance());
      });
      if (best.size() == q.k || r >= maxR) break;
      // Too few within r: grow by the shortfall (as if density were uniform).
      const double shortfall = best.empty() ? 16.0 : double(q.k) / double(best.size());
      r = std::min(maxR, r * std::clamp(1.2 * std::sqrt(shortfall), 1.5, 4.0));
    }
    std::sort_heap(best.begin(), best.end(), byDistance());
    appendHits(best, /*withDistance=*/true, out);
    out.count = out.hits.size();
    return out;
  }

  QueryResult within(const AreaQuery& q, int64_t nowMs, const PartitionFilter* only) const {
    const int64_t minTsMs = minTs(q.maxAgeS, nowMs);
    if (const auto* c = std::get_if<Circle>(&q.area)) return withinCircle(*c, q, minTsMs, only);
    std::vector<Scored> kept;
    QueryResult out;
    if (q.grid.on()) out.cells.assign(q.grid.cells(), 0);
    const auto keep = [&](uint32_t slot) {
      if (excluded(slot, only, q.idPrefix)) return;
      ++out.count;
      if (q.grid.on()) {
        ++out.cells[gridCellOf(std::get<geo::Box>(q.area), q.grid, latLonOf(positions_[slot]))];
      }
      if (!q.countOnly) offer(kept, Scored{0, 0, slot}, q.limit, byId());
    };
    if (const auto* box = std::get_if<geo::Box>(&q.area)) {
      forEachCandidate(geo::splitAtAntimeridian(*box), [&](uint32_t slot) {
        const Position& p = positions_[slot];
        if (p.tsMs >= minTsMs && box->contains(latLonOf(p))) keep(slot);
      });
    } else {
      // Part by part, over its own bounds (the two halves of an area across
      // the antimeridian stay two small searches); a device inside several
      // parts is kept by the first only.
      const auto& polygons = std::get<geo::MultiPolygon>(q.area);
      for (size_t i = 0; i < polygons.parts().size(); ++i) {
        geo::BoxSet cover;
        cover.boxes[cover.size++] = polygons.parts()[i].bounds();
        forEachCandidate(cover, [&](uint32_t slot) {
          const Position& p = positions_[slot];
          if (p.tsMs >= minTsMs && polygons.firstPartContaining(latLonOf(p)) == i) keep(slot);
        });
      }
    }
    finish(kept, byId(), /*withDistance=*/false, out);
    return out;
  }

  size_t size() const { return positions_.size(); }

  MemoryUsage memoryUsage() const {
    MemoryUsage m;
    m.positions =
        positions_.capacityBytes() + records_.capacityBytes() + partitionBits_.capacityBytes();
    // An unordered_map node per device with extras, plus the bucket array.
    m.extras = extras_.size() * (sizeof(std::pair<const uint32_t, Extras>) + 2 * sizeof(void*)) +
               extras_.bucket_count() * sizeof(void*);
    m.ids = ids_.capacityBytes();
    m.idTable = table_.capacityBytes();
    m.tree = treeBytes_;
    return m;
  }

  const IndexOptions& options() const { return options_; }

  void forEach(const std::function<void(const Report&)>& visit) const {
    scan(0, SIZE_MAX, nullptr, visit);
  }

  size_t scan(size_t from, size_t limit, const PartitionFilter* only,
              const std::function<void(const Report&)>& visit) const {
    size_t visited = 0;
    size_t slot = from;
    for (; slot < size() && visited < limit; ++slot) {
      if (only && !serves(*only, static_cast<uint32_t>(slot))) continue;
      ++visited;
      const Position& p = positions_[slot];
      Report r{.id = idOf(static_cast<uint32_t>(slot)),
               .lat = geo::fromE7(p.latE7),
               .lon = geo::fromE7(p.lonE7),
               .tsMs = p.tsMs};
      if (!extras_.empty()) {
        if (auto it = extras_.find(static_cast<uint32_t>(slot)); it != extras_.end()) {
          r.speedMps = it->second.speedMps;
          r.headingDeg = it->second.headingDeg;
          r.accuracyM = it->second.accuracyM;
        }
      }
      visit(r);
    }
    return slot;
  }

 private:
  // The SlotTable's view of the keys: ids live in the arena.
  struct Keys {
    const Impl* impl;
    std::string_view id(uint32_t slot) const { return impl->idOf(slot); }
    uint64_t hash(uint32_t slot) const { return hashId(impl->idOf(slot)); }
  };
  using Table = SlotTable<Keys>;

  // A candidate answer: its distance (or 0), haversine term, and slot.
  struct Scored {
    double distanceM;
    double a;
    uint32_t slot;
  };
  // "x before y" in answer order. As a heap comparator it keeps the worst
  // answer on top.
  struct ByDistance {
    const Impl* impl;
    bool operator()(const Scored& x, const Scored& y) const {
      if (x.distanceM != y.distanceM) return x.distanceM < y.distanceM;
      return impl->idOf(x.slot) < impl->idOf(y.slot);
    }
  };
  struct ById {
    const Impl* impl;
    bool operator()(const Scored& x, const Scored& y) const {
      return impl->idOf(x.slot) < impl->idOf(y.slot);
    }
  };
  ByDistance byDistance() const { return ByDistance{this}; }
  ById byId() const { return ById{this}; }

  // Keeps the best `limit` (0 = all) of the offered answers in a heap.
  template <typename Less>
  static void offer(std::vector<Scored>& heap, const Scored& s, uint32_t limit, Less less) {
    if (limit == 0) {
      heap.push_back(s);
      return;
    }
    if (heap.size() < limit) {
      heap.push_back(s);
      std::push_heap(heap.begin(), heap.end(), less);
    } else if (less(s, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), less);
      heap.back() = s;
      std::push_heap(heap.begin(), heap.end(), less);
    }
  }

  // Orders the kept answers and turns them into hits, with their distance
  // when the query has a centre.
  template <typename Less>
  void finish(std::vector<Scored>& kept, Less less, bool withDistance, QueryResult& out) const {
    std::sort(kept.begin(), kept.end(), less);
    appendHits(kept, withDistance, out);
  }

  // The hits of `sorted`, in its order. A hit reads its record, then the id
  // it points at: both are prefetched ahead, the record further.
  void appendHits(const std::vector<Scored>& sorted, bool withDistance, QueryResult& out) const {
    out.hits.reserve(out.hits.size() + sorted.size());
    constexpr size_t kAhead = 4;
    const size_t n = sorted.size();
    for (size_t i = 0; i < std::min(n, 2 * kAhead); ++i)
      __builtin_prefetch(&records_[sorted[i].slot]);
    for (size_t i = 0; i < std::min(n, kAhead); ++i) ids_.prefetch(records_[sorted[i].slot].idRef);
    for (size_t i = 0; i < n; ++i) {
      if (i + 2 * kAhead < n) __builtin_prefetch(&records_[sorted[i + 2 * kAhead].slot]);
      if (i + kAhead < n) ids_.prefetch(records_[sorted[i + kAhead].slot].idRef);
      out.hits.push_back(hitOf(sorted[i].slot, withDistance
                                                   ? sorted[i].distanceM
                                                   : std::numeric_limits<double>::quiet_NaN()));
    }
  }

  QueryResult withinCircle(const Circle& c, const AreaQuery& q, int64_t minTsMs,
                           const PartitionFilter* only) const {
    QueryResult out;
    std::vector<Scored> kept;
    const geo::DistanceFrom from(c.center);
    const double aR = geo::DistanceFrom::aFromMetres(c.radiusM);
    forEachCandidate(geo::circleCover(c.center, c.radiusM), [&](uint32_t slot) {
      const Position& p = positions_[slot];
      if (p.tsMs < minTsMs) return;
      const geo::LatLon at = latLonOf(p);
      if (from.aLowerBound(at) > aR * (1 + 2 * kARelTolerance)) return;  // no trig spent
      const double a = from.a(at);
      if (a > aR * (1 + kARelTolerance)) return;
      if (excluded(slot, only, q.idPrefix)) return;
      if (q.countOnly && a < aR * (1 - kARelTolerance)) {
        ++out.count;  // certainly inside; no need for metres
        return;
      }
      const double d = geo::DistanceFrom::metresFromA(a);
      if (d > c.radiusM) return;
      ++out.count;
      if (!q.countOnly) offer(kept, Scored{d, a, slot}, q.limit, byDistance());
    });
    finish(kept, byDistance(), /*withDistance=*/true, out);
    return out;
  }

  // Calls fn(slot) once for every device whose position may lie in one of
  // the boxes (each with west <= east): a superset the caller refines.
  //
  // The tree's values are collected first and refined after, with each
  // candidate's position (and record) prefetched a few candidates ahead:
  // slots are in arrival order, so every candidate's column entries are a
  // cache miss of their own, and overlapping those misses is most of the
  // difference between a search and the bare tree.
  template <typename Fn>
  void forEachCandidate(const geo::BoxSet& boxes, Fn&& fn) const {
    thread_local std::vector<uint32_t> candidates;
    candidates.clear();
    collectCandidates(boxes, candidates);
    constexpr size_t kAhead = 8;
    const size_t n = candidates.size();
    for (size_t i = 0; i < std::min(n, kAhead); ++i) prefetchSlot(candidates[i]);
    for (size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) prefetchSlot(candidates[i + kAhead]);
      fn(candidates[i]);
    }
  }

  void prefetchSlot(uint32_t slot) const {
    __builtin_prefetch(&positions_[slot]);
    __builtin_prefetch(&partitionBits_[slot]);
  }

  void collectCandidates(const geo::BoxSet& boxes, std::vector<uint32_t>& out) const {
    const double pad = slackDeg_ + kFloatSlopDeg;
    // Longitudes ±180 are one meridian: a box reaching one also searches a
    // strip at the other, so devices stored at either are candidates.
    std::array<TreeBox, 4> search;
    size_t n = 0;
    const auto add = [&](double south, double west, double north, double east) {
      search[n++] =
          TreeBox(TreePoint(static_cast<float>(west - pad), static_cast<float>(south - pad)),
                  TreePoint(static_cast<float>(east + pad), static_cast<float>(north + pad)));
    };
    for (const geo::Box& b : boxes) {
      add(b.south, b.west, b.north, b.east);
      if (b.east >= 180 && b.west > -180) add(b.south, -180, b.north, -180);
      if (b.west <= -180 && b.east < 180) add(b.south, 180, b.north, 180);
    }
    for (size_t i = 0; i < n; ++i) {
      tree_.query(bgi::intersects(search[i]),
                  boost::make_function_output_iterator([&](const TreeValue& v) {
                    // A device under an overlap of two search boxes counts once.
                    for (size_t j = 0; j < i; ++j) {
                      if (bg::covered_by(v.first, search[j])) return;
                    }
                    out.push_back(v.second);
                  }));
    }
  }

  // A first radius for nearest-k: the circle that would hold ~k devices if
  // they were spread evenly over the extent of the tree.
  double initialRadiusM(uint32_t k) const {
    const TreeBox bounds = tree_.bounds();
    constexpr double kRad = geo::kPi / 180;
    const double south = std::max(-90.0, double(bounds.min_corner().get<1>()));
    const double north = std::min(90.0, double(bounds.max_corner().get<1>()));
    const double dLon =
        std::min(360.0, double(bounds.max_corner().get<0>() - bounds.min_corner().get<0>()));
    const double areaM2 = geo::kEarthRadiusM * geo::kEarthRadiusM * dLon * kRad *
                          (std::sin(north * kRad) - std::sin(south * kRad));
    const double perM2 = double(size()) / std::max(areaM2, 1.0);
    return std::max(1.0, 1.3 * std::sqrt(double(k) / (geo::kPi * perM2)));
  }

  int64_t minTs(double maxAgeS, int64_t nowMs) const {
    int64_t m = minTsForAge(maxAgeS, nowMs);
    if (options_.ttlMs > 0) m = std::max(m, nowMs - options_.ttlMs);
    return m;
  }

  std::string_view idOf(uint32_t slot) const { return ids_.get(records_[slot].idRef); }

  Hit hitOf(uint32_t slot, double distanceM) const {
    const Position& p = positions_[slot];
    Hit h;
    h.id = std::string(idOf(slot));
    h.lat = geo::fromE7(p.latE7);
    h.lon = geo::fromE7(p.lonE7);
    h.tsMs = p.tsMs;
    h.distanceM = distanceM;
    if (!extras_.empty()) {
      if (auto it = extras_.find(slot); it != extras_.end()) {
        h.speedMps = it->second.speedMps;
        h.headingDeg = it->second.headingDeg;
        h.accuracyM = it->second.accuracyM;
      }
    }
    return h;
  }

  void insertNew(const Report& r, int32_t latE7, int32_t lonE7, uint64_t hash) {
    const auto slot = static_cast<uint32_t>(size());
    positions_.pushBack(Position{latE7, lonE7, r.tsMs});
    records_.pushBack(Record{ids_.add(r.id), 0, 0});
    partitionBits_.pushBack(static_cast<uint16_t>(hash >> 32));
    setExtras(slot, r);
    table_.insert(slot, hash);
    if (!loading_) tree_.insert(TreeValue(anchorPoint(latE7, lonE7), slot));
  }

  void setExtras(uint32_t slot, const Report& r) {
    if (hasExtras(r)) {
      extras_[slot] = Extras{r.speedMps, r.headingDeg, r.accuracyM};
    } else if (!extras_.empty()) {
      extras_.erase(slot);
    }
  }

  TreeValue treeValueOf(uint32_t slot) const {
    const Position& p = positions_[slot];
    const Record& rec = records_[slot];
    return TreeValue(anchorPoint(p.latE7 + rec.anchorDLat, p.lonE7 + rec.anchorDLon), slot);
  }

  // Removes the device in `slot`; the last device moves into the hole so the
  // columns stay dense.
  void removeSlot(uint32_t slot) {
    const std::string_view id = idOf(slot);
    size_t removed = tree_.remove(treeValueOf(slot));
    KJ_ASSERT(removed == 1, "a device's anchor is in the tree once", slot, removed);
    table_.erase(slot, hashId(id));
    ids_.release(records_[slot].idRef);
    extras_.erase(slot);
    const auto last = static_cast<uint32_t>(size() - 1);
    if (slot != last) {
      const TreeValue moved = treeValueOf(last);
      removed = tree_.remove(moved);
      KJ_ASSERT(removed == 1, "the last device's anchor is in the tree once", last, removed);
      tree_.insert(TreeValue(moved.first, slot));
      table_.renumber(last, slot, hashId(idOf(last)));
      positions_[slot] = positions_[last];
      records_[slot] = records_[last];
      partitionBits_[slot] = partitionBits_[last];
      if (auto it = extras_.find(last); it != extras_.end()) {
        extras_[slot] = it->second;
        extras_.erase(last);
      }
    }
    positions_.popBack();
    records_.popBack();
    partitionBits_.popBack();
    if (ids_.wantsCompaction()) compactIds();
  }

  void compactIds() {
    IdArena fresh;
    for (uint32_t s = 0; s < size(); ++s) records_[s].idRef = fresh.add(idOf(s));
    ids_ = std::move(fresh);
  }

  IndexOptions options_;
  double slackDeg_;
  ChunkedVector<Position> positions_;
  ChunkedVector<Record> records_;
  // The low 16 bits of hashId(id) >> 32, of which partitionOf() takes the
  // remainder: a query for some partitions filters on these, reading no id.
  ChunkedVector<uint16_t> partitionBits_;
  // Optional attributes by slot: only devices that send them pay for them.
  std::unordered_map<uint32_t, Extras> extras_;
  IdArena ids_;
  Table table_;
  size_t treeBytes_ = 0;
  Tree tree_;
  bool loading_ = false;  // between beginLoad() and endLoad()
  size_t expireCursor_ = 0;
};

LocationIndex::LocationIndex(IndexOptions options) : impl_(std::make_unique<Impl>(options)) {}
LocationIndex::~LocationIndex() = default;
LocationIndex::LocationIndex(LocationIndex&&) noexcept = default;
LocationIndex& LocationIndex::operator=(LocationIndex&&) noexcept = default;

ApplyOutcome LocationIndex::apply(const Report& report) {
  return impl_->apply(report);
}
bool LocationIndex::remove(std::string_view id) {
  return impl_->remove(id);
}
size_t LocationIndex::expire(int64_t nowMs, size_t maxScan) {
  return impl_->expire(nowMs, maxScan);
}
std::optional<Hit> LocationIndex::get(std::string_view id, int64_t nowMs) const {
  return impl_->get(id, nowMs);
}
QueryResult LocationIndex::nearest(const NearestQuery& q, int64_t nowMs,
                                   const PartitionFilter* only) const {
  return impl_->nearest(q, nowMs, only);
}
QueryResult LocationIndex::within(const AreaQuery& q, int64_t nowMs,
                                  const PartitionFilter* only) const {
  return impl_->within(q, nowMs, only);
}

PartitionFilter::PartitionFilter(uint32_t partitions, const std::vector<uint32_t>& serve)
    : serve_(partitions, false) {
  KJ_REQUIRE(partitions >= 1, partitions);
  uint32_t served = 0;
  for (uint32_t p : serve) {
    KJ_REQUIRE(p < partitions, "a partition out of range", p, partitions);
    served += serve_[p] ? 0 : 1;
    serve_[p] = true;
  }
  fraction_ = static_cast<double>(served) / partitions;
}

bool PartitionFilter::contains(std::string_view id) const {
  return serve_[partitionOf(id, partitions())];
}
void LocationIndex::beginLoad() {
  impl_->beginLoad();
}
void LocationIndex::endLoad() {
  impl_->endLoad();
}
size_t LocationIndex::scan(size_t from, size_t limit, const PartitionFilter* only,
                           const std::function<void(const Report&)>& visit) const {
  return impl_->scan(from, limit, only, visit);
}
void LocationIndex::forEach(const std::function<void(const Report&)>& visit) const {
  impl_->forEach(visit);
}
size_t LocationIndex::size() const {
  return impl_->size();
}
MemoryUsage LocationIndex::memoryUsage() const {
  return impl_->memoryUsage();
}
const IndexOptions& LocationIndex::options() const {
  return impl_->options();
}

}  // namespace locus::unit
