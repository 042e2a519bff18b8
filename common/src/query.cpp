#include "locus/common/query.h"

#include <fmt/format.h>

#include <algorithm>

namespace locus {
namespace {

std::optional<std::string> validateCenter(const geo::LatLon& c) {
  if (!std::isfinite(c.lat) || c.lat < -90 || c.lat > 90) {
    return fmt::format("lat {} is out of range [-90, 90]", c.lat);
  }
  if (!std::isfinite(c.lon) || c.lon < -180 || c.lon > 180) {
    return fmt::format("lon {} is out of range [-180, 180]", c.lon);
  }
  return std::nullopt;
}

std::optional<std::string> validateMaxAge(double maxAgeS) {
  if (!std::isfinite(maxAgeS) || maxAgeS < 0) {
    return fmt::format("max age {} s must be a finite number >= 0", maxAgeS);
  }
  return std::nullopt;
}

struct AreaValidator {
  std::optional<std::string> operator()(const Circle& c) const {
    if (auto e = validateCenter(c.center)) return e;
    if (!std::isfinite(c.radiusM) || c.radiusM < 0) {
      return fmt::format("radius {} m must be a finite number >= 0", c.radiusM);
    }
    return std::nullopt;
  }
  std::optional<std::string> operator()(const geo::Box& b) const {
    for (double lat : {b.south, b.north}) {
      if (!std::isfinite(lat) || lat < -90 || lat > 90) {
        return fmt::format("box latitude {} is out of range [-90, 90]", lat);
      }
    }
    for (double lon : {b.west, b.east}) {
      if (!std::isfinite(lon) || lon < -180 || lon > 180) {
        return fmt::format("box longitude {} is out of range [-180, 180]", lon);
      }
    }
    if (b.south > b.north) {
      return fmt::format("box south {} is north of north {}", b.south, b.north);
    }
    return std::nullopt;
  }
  std::optional<std::string> operator()(const geo::MultiPolygon& m) const {
    if (m.parts().empty()) return "a multipolygon needs at least one polygon";
    for (const geo::Polygon& p : m.parts()) {
      if (auto e = geo::Polygon::validate(p.rings())) return e;
    }
    return std::nullopt;
  }
};

}  // namespace

std::optional<std::string> validatePrefix(std::string_view prefix) {
  if (prefix.empty()) return std::nullopt;
  if (prefix.size() > kMaxIdBytes) {
    return fmt::format("an id prefix of {} bytes is longer than an id may be ({})", prefix.size(),
                       kMaxIdBytes);
  }
  if (auto e = validateId(prefix)) return "id prefix: " + *e;
  return std::nullopt;
}

std::optional<std::string> validate(const NearestQuery& q) {
  if (auto e = validateCenter(q.center)) return e;
  if (q.k == 0) return "k must be at least 1";
  if (q.k > kMaxResults) return fmt::format("k {} is more than the {} allowed", q.k, kMaxResults);
  if (!std::isfinite(q.maxDistanceM) || q.maxDistanceM < 0) {
    return fmt::format("max distance {} m must be a finite number >= 0", q.maxDistanceM);
  }
  if (auto e = validatePrefix(q.idPrefix)) return e;
  return validateMaxAge(q.maxAgeS);
}

std::optional<std::string> validate(const AreaQuery& q) {
  if (auto e = std::visit(AreaValidator{}, q.area)) return e;
  if (q.limit > kMaxResults) {
    return fmt::format("limit {} is more than the {} allowed (0 = all, up to {})", q.limit,
                       kMaxResults, kMaxResults);
  }
  if (q.grid.on() || q.grid.rows > 0) {
    if (!std::holds_alternative<geo::Box>(q.area)) return "a grid divides a box: ask with a box";
    if (!q.countOnly) return "a grid query counts only: set count";
    if (q.grid.columns < 1 || q.grid.rows < 1 || q.grid.columns > kMaxGridSide ||
        q.grid.rows > kMaxGridSide || q.grid.cells() > kMaxGridCells) {
      return fmt::format(
          "a grid of {} x {} cells: columns and rows must be in 1..{}, at most {} "
          "cells in all",
          q.grid.columns, q.grid.rows, kMaxGridSide, kMaxGridCells);
    }
  }
  if (auto e = validatePrefix(q.idPrefix)) return e;
  return validateMaxAge(q.maxAgeS);
}

namespace {

// The bounds every batch shares, then each point's own query.
template <typename Many>
std::optional<std::string> validateBatch(const Many& many, uint64_t hitsEach) {
  if (many.points.empty()) return "no points: give at least one";
  if (many.points.size() > kMaxBatchPoints)
    return fmt::format("{} points are more than the {} allowed in one call", many.points.size(),
                       kMaxBatchPoints);
  if (hitsEach * many.points.size() > kMaxResults)
    return fmt::format(
        "{} points x {} results each is more than the {} results one call may carry: ask fewer "
        "points per call",
        many.points.size(), hitsEach, kMaxResults);
  for (size_t i = 0; i < many.points.size(); ++i) {
    if (auto e = validate(many.at(i))) return fmt::format("point {}: {}", i, *e);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> validate(const NearestMany& many) {
  return validateBatch(many, many.each.k);
}

std::optional<std::string> validate(const WithinMany& many) {
  if (many.each.grid.on() || many.each.grid.rows > 0) return "a grid divides a box: ask within";
  if (!many.each.countOnly && many.each.limit == 0)
    return "many points without count need a limit per point";
  return validateBatch(many, many.each.countOnly ? 0 : many.each.limit);
}

size_t gridCellOf(const geo::Box& box, const Grid& grid, geo::LatLon p) {
  double width = box.east - box.west;
  double x = p.lon - box.west;
  if (box.crossesAntimeridian()) {
    width += 360;
    if (x < 0) x += 360;
  }
  const double height = box.north - box.south;
  const auto index = [](double offset, double span, uint32_t n) {
    if (!(span > 0)) return uint32_t{0};
    const double at = std::floor(offset / span * n);
    return static_cast<uint32_t>(std::clamp(at, 0.0, double(n - 1)));
  };
  const uint32_t column = index(x, width, grid.columns);
  const uint32_t row = index(p.lat - box.south, height, grid.rows);
  return size_t{row} * grid.columns + column;
}

std::string tooManyMatches(uint64_t count, bool atLeast) {
  return fmt::format(
      "{}{} devices match, more than the {} one answer carries: set a limit, narrow the area, "
      "or ask for the count only",
      atLeast ? "at least " : "", count, kMaxResults);
}

int64_t minTsForAge(double maxAgeS, int64_t nowMs) {
  // Ages beyond ~30 million years reach past the epoch: treat as "any age".
  if (maxAgeS <= 0 || maxAgeS > 1e15) return std::numeric_limits<int64_t>::min();
  // Whole milliseconds, rounded down: a position exactly maxAgeS old is young
  // enough, one a millisecond older is not. A product within rounding noise
  // of a whole number is that number (2.007 * 1000 is 2007.0000000000002).
  const double ms = maxAgeS * 1000;
  const double whole = std::round(ms);
  const double allowedMs =
      std::abs(ms - whole) <= std::max(1e-6, whole * 1e-15) ? whole : std::floor(ms);
  return nowMs - static_cast<int64_t>(allowedMs);
}

}  // namespace locus
