// Queries and their answers as plain C++ values, shared by the units (which
// execute them), the server (which scatters and reduces them) and clients.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "locus/common/geo.h"
#include "locus/common/report.h"

namespace locus {

struct Circle {
  geo::LatLon center;
  double radiusM = 0;  // great-circle metres, >= 0
};

// What an area query covers. Circles have a centre (answers carry distances
// and are ordered nearest first); boxes and polygons are ordered by id. A
// single polygon is a MultiPolygon of one part.
using Area = std::variant<Circle, geo::Box, geo::MultiPolygon>;

// The most hits one answer carries: the largest k, the largest limit, and
// the most matches an area query without a limit may have (beyond it the
// query is refused: ask with a limit, or for the count only). It keeps every
// message between a unit and the server, whose ids are up to 128 bytes,
// below kMaxMessageBytes (common/wire.h), ~190 bytes a hit at the most.
inline constexpr uint32_t kMaxResults = 50'000;

struct NearestQuery {
  geo::LatLon center;
  uint32_t k = 10;          // 1..kMaxResults
  double maxDistanceM = 0;  // 0 = unlimited
  double maxAgeS = 0;       // 0 = any age
  std::string idPrefix;     // only devices whose id starts with this; "" = all
};

// Counts per cell of a lon/lat grid over a box query's box: `columns`
// cells west to east by `rows` south to north, each the same span of
// degrees; the map-reduce beyond top-k (units count, the server sums).
struct Grid {
  uint32_t columns = 0;  // 0 = no grid
  uint32_t rows = 0;
  bool on() const { return columns > 0; }
  size_t cells() const { return size_t{columns} * rows; }
};
inline constexpr uint32_t kMaxGridSide = 512;
inline constexpr size_t kMaxGridCells = 65'536;

struct AreaQuery {
  Area area;
  uint32_t limit = 0;      // 0 = all matches (refused beyond kMaxResults), else <= kMaxResults
  bool countOnly = false;  // count the matches, return none
  double maxAgeS = 0;      // 0 = any age
  Grid grid;               // on: count per cell too (a box area, count only)
  std::string idPrefix;    // only devices whose id starts with this; "" = all
};

// Many points, one query (nearestMany, withinMany): one answer per point,
// in order. Bounded so that the answers fit one RPC message: at most
// kMaxBatchPoints points, and points x k (or x limit) at most kMaxResults.
inline constexpr size_t kMaxBatchPoints = 1000;

struct NearestMany {
  std::vector<geo::LatLon> points;
  NearestQuery each;  // k, maxDistanceM, maxAgeS and idPrefix; its center is unused

  // Point i's query.
  NearestQuery at(size_t i) const {
    NearestQuery q = each;
    q.center = points[i];
    return q;
  }
};

struct WithinMany {
  std::vector<geo::LatLon> points;
  double radiusM = 0;
  AreaQuery each;  // limit, countOnly, maxAgeS and idPrefix; its area is unused (no grid)

  // Point i's query: the circle of radiusM around it.
  AreaQuery at(size_t i) const {
    AreaQuery q = each;
    q.area = Circle{points[i], radiusM};
    return q;
  }
};

// One device in an answer.
struct Hit {
  std::string id;
  double lat = 0;
  double lon = 0;
  int64_t tsMs = 0;
  double distanceM = std::numeric_limits<double>::quiet_NaN();  // NaN without a centre
  float speedMps = kAbsent;
  float headingDeg = kAbsent;
  float accuracyM = kAbsent;
};

// The order of answers: by (distance, id) when there is a centre, else by id
// (bytewise). Every producer and reducer uses exactly this order.
inline bool nearerThan(const Hit& a, const Hit& b) {
  if (a.distanceM != b.distanceM) return a.distanceM < b.distanceM;
  return a.id < b.id;
}
inline bool idBefore(const Hit& a, const Hit& b) {
  return a.id < b.id;
}

struct QueryResult {
  std::vector<Hit> hits;  // in answer order, at most `limit` / `k`
  uint64_t count = 0;     // all matches, even when a limit or countOnly cut `hits`
  // With a grid: matches per cell, row by row from the south-west corner
  // (cells[row * columns + column]); they sum to count.
  std::vector<uint64_t> cells;
};

// One unit's counters, as `stats` reports them.
struct UnitStats {
  std::string name;
  uint64_t devices = 0;          // positions held
  uint64_t reportsApplied = 0;   // reports that changed a position
  uint64_t reportsStale = 0;     // reports older than the stored position
  uint64_t reportsRejected = 0;  // reports that failed validation
  uint64_t queriesServed = 0;
  uint64_t memoryBytes = 0;  // the index's own accounting
  // The unit's data: per data dir, or per start if memory-only; 0 = unknown.
  uint64_t incarnation = 0;
  // Where its positions live: a data dir (durable), and whether it stores
  // writes (false after a failed sync), and the bytes in its logs.
  bool durable = false;
  bool writable = true;
  uint64_t logBytes = 0;
  // Its partitions (SPEC "Replication and durability"): the cluster's
  // count, those it does not answer for yet (ascending), whether a catch-up
  // copy runs, the positions copied so far, and how many of notServing that
  // copy will bring up.
  uint32_t partitions = 0;
  std::vector<uint32_t> notServing;
  bool copying = false;
  uint64_t copiedDevices = 0;
  uint32_t catchUpPending = 0;
  double catchUpSeconds = 0;  // since it last served every partition; 0 = it does
};

// How much of the cluster an answer covers: the units asked and those that
// answered, and the partitions a serving replica answered for. With
// `partitions` 0 (a peer that predates partitions) units are the measure.
struct Coverage {
  uint32_t total = 1;
  uint32_t answered = 1;
  uint32_t partitions = 0;
  uint32_t partitionsAnswered = 0;
  bool partial() const {
    return partitions > 0 ? partitionsAnswered < partitions : answered < total;
  }
};

// What `stats` answers: the counters of the units that answered, in shard
// order, and the cluster's shape.
struct ClusterStats {
  std::vector<UnitStats> units;
  Coverage shards;
  uint32_t partitions = 0;
  uint32_t replicas = 1;  // each device is on this many units (0 from an older server: 1)
  bool partial() const { return shards.partial(); }
};

// Why a query must be refused, or nothing when it is valid. One line a
// person can act on ("k must be at least 1").
std::optional<std::string> validate(const NearestQuery& query);
// Why `prefix` cannot be a query's idPrefix (longer than an id, or not the
// start of a valid one), or nothing.
std::optional<std::string> validatePrefix(std::string_view prefix);
std::optional<std::string> validate(const AreaQuery& query);
// Why many points' queries cannot be asked: the bounds above, or the first
// bad point's query ("point 3: latitude ...").
std::optional<std::string> validate(const NearestMany& many);
std::optional<std::string> validate(const WithinMany& many);

// The grid cell of a point inside `box` (row * columns + column). Across
// the antimeridian, columns run on east from `west` through ±180.
// Precondition: grid.on(), box.contains(p).
size_t gridCellOf(const geo::Box& box, const Grid& grid, geo::LatLon p);

// Whether answers to this area are ordered by distance (circles) or by id.
inline bool hasCenter(const Area& area) {
  return std::holds_alternative<Circle>(area);
}

// The error for an area query without a limit that matches `count` devices
// (`atLeast`: of the units that answered), more than kMaxResults.
std::string tooManyMatches(uint64_t count, bool atLeast = false);

// The earliest tsMs still young enough for a maxAgeS filter at nowMs
// (INT64_MIN when maxAgeS is 0).
int64_t minTsForAge(double maxAgeS, int64_t nowMs);

}  // namespace locus
