#include "locus/common/geo.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace locus::geo {
namespace {

constexpr double kDegToRad = kPi / 180.0;
constexpr double kRadToDeg = 180.0 / kPi;

// Padding that keeps circleCover conservative against rounding in haversine
// (relative error ~1e-15): a millionth of a degree is about 11 cm.
constexpr double kCoverPadDeg = 1e-6;

Box wholeWorld() {
  return Box{-90, -180, 90, 180};
}

bool lonInRange(double lon, double west, double east) {
  return west <= lon && lon <= east;
}

enum class Side { kOutside, kInside, kBoundary };

// Where p lies relative to one closed ring (x = lon, y = lat). Crossing
// number with a half-open rule for vertices, plus an explicit on-segment test
// so boundary points get one deterministic answer.
// One edge's part in ringSide: flips `inside` when the rightward ray from
// p crosses it; true when p lies on it.
inline bool onOrCrossing(const LatLon& a, const LatLon& b, LatLon p, bool& inside) {
  const double cross = (b.lon - a.lon) * (p.lat - a.lat) - (b.lat - a.lat) * (p.lon - a.lon);
  if (cross == 0 && std::min(a.lon, b.lon) <= p.lon && p.lon <= std::max(a.lon, b.lon) &&
      std::min(a.lat, b.lat) <= p.lat && p.lat <= std::max(a.lat, b.lat)) {
    return true;
  }
  if (a.lat <= p.lat && p.lat < b.lat) {
    if (cross > 0) inside = !inside;  // upward edge, p strictly left of it
  } else if (b.lat <= p.lat && p.lat < a.lat) {
    if (cross < 0) inside = !inside;  // downward edge, p strictly right of it
  }
  return false;
}

// ringSide over some of the ring's edges (indices, in ring order): the
// answer of the full scan whenever they include every edge whose closed
// latitude range holds p.lat, since no other edge can cross p's ray or
// carry p.
Side ringSideOver(const Polygon::Ring& ring, LatLon p, const uint32_t* begin, const uint32_t* end) {
  bool inside = false;
  for (const uint32_t* e = begin; e != end; ++e) {
    if (onOrCrossing(ring[*e], ring[*e + 1], p, inside)) return Side::kBoundary;
  }
  return inside ? Side::kInside : Side::kOutside;
}

Side ringSide(const Polygon::Ring& ring, LatLon p) {
  bool inside = false;
  for (size_t i = 0; i + 1 < ring.size(); ++i) {
    if (onOrCrossing(ring[i], ring[i + 1], p, inside)) return Side::kBoundary;
  }
  return inside ? Side::kInside : Side::kOutside;
}

}  // namespace

bool isValidLatLon(double lat, double lon) {
  return std::isfinite(lat) && std::isfinite(lon) && lat >= -90 && lat <= 90 && lon >= -180 &&
         lon <= 180;
}

DistanceFrom::DistanceFrom(LatLon origin)
    : origin_(origin),
      latRad_(origin.lat * kDegToRad),
      cosLat_(std::cos(latRad_)),
      absSinLat_(std::abs(std::sin(latRad_))) {}

double DistanceFrom::aLowerBound(LatLon p) const {
  // |sin x| >= |x| - |x|³/6 for |x| <= √6, and cos φp = cos(φ0 + Δφ) >=
  // cos φ0 (1 - Δφ²/2) - |sin φ0| |Δφ|; both clamped at 0. sin²(Δλ/2) has
  // period 2π in Δλ, so Δλ is first brought into [-π, π].
  const double dLat = p.lat * kDegToRad - latRad_;
  double dLonDeg = p.lon - origin_.lon;
  if (dLonDeg > 180) dLonDeg -= 360;
  if (dLonDeg < -180) dLonDeg += 360;
  const auto sinBelow = [](double x) {
    x = std::abs(x);
    return std::max(0.0, x - x * x * x / 6);
  };
  const double s1 = sinBelow(dLat * 0.5);
  const double s2 = sinBelow(dLonDeg * kDegToRad * 0.5);
  const double cosLatP =
      std::max(0.0, cosLat_ * (1 - dLat * dLat * 0.5) - absSinLat_ * std::abs(dLat));
  return (s1 * s1 + cosLat_ * cosLatP * s2 * s2) * (1 - 1e-12);
}

double DistanceFrom::a(LatLon p) const {
  const double latRad = p.lat * kDegToRad;
  const double sinDLat = std::sin((latRad - latRad_) * 0.5);
  const double sinDLon = std::sin((p.lon - origin_.lon) * kDegToRad * 0.5);
  const double a = sinDLat * sinDLat + cosLat_ * std::cos(latRad) * sinDLon * sinDLon;
  return std::clamp(a, 0.0, 1.0);
}

double DistanceFrom::metresFromA(double a) {
  return 2 * kEarthRadiusM * std::asin(std::sqrt(a));
}

double DistanceFrom::aFromMetres(double metres) {
  if (metres >= kHalfCircumferenceM) return 1;
  const double s = std::sin(metres / (2 * kEarthRadiusM));
  return s * s;
}

bool Box::contains(LatLon p) const {
  if (!(south <= p.lat && p.lat <= north)) return false;
  auto inLon = [this](double lon) {
    return crossesAntimeridian() ? (lon >= west || lon <= east) : lonInRange(lon, west, east);
  };
  if (inLon(p.lon)) return true;
  // +180 and -180 are one meridian.
  if (p.lon == 180) return inLon(-180);
  if (p.lon == -180) return inLon(180);
  return false;
}

BoxSet splitAtAntimeridian(const Box& box) {
  BoxSet set;
  if (!box.crossesAntimeridian()) {
    set.boxes[set.size++] = box;
  } else {
    set.boxes[set.size++] = Box{box.south, box.west, box.north, 180};
    set.boxes[set.size++] = Box{box.south, -180, box.north, box.east};
  }
  return set;
}

BoxSet circleCover(LatLon center, double radiusM) {
  BoxSet set;
  const double delta = radiusM / kEarthRadiusM;  // angular radius, radians
  if (delta >= kPi) {
    set.boxes[set.size++] = wholeWorld();
    return set;
  }
  const double deltaDeg = delta * kRadToDeg;
  const double south = center.lat - deltaDeg - kCoverPadDeg;
  const double north = center.lat + deltaDeg + kCoverPadDeg;
  if (south <= -90 || north >= 90) {
    // The circle contains a pole: every longitude is reached.
    set.boxes[set.size++] = Box{std::max(south, -90.0), -180, std::min(north, 90.0), 180};
    return set;
  }
  // Widest longitude of a cap not containing a pole: sin Δλ = sin δ / cos φ.
  const double ratio = std::sin(delta) / std::cos(center.lat * kDegToRad);
  if (ratio >= 1) {
    set.boxes[set.size++] = Box{south, -180, north, 180};
    return set;
  }
  const double dLonDeg = std::asin(ratio) * kRadToDeg + kCoverPadDeg;
  const double west = center.lon - dLonDeg;
  const double east = center.lon + dLonDeg;
  if (east - west >= 360) {
    set.boxes[set.size++] = Box{south, -180, north, 180};
  } else if (west < -180) {
    set.boxes[set.size++] = Box{south, west + 360, north, 180};
    set.boxes[set.size++] = Box{south, -180, north, east};
  } else if (east > 180) {
    set.boxes[set.size++] = Box{south, west, north, 180};
    set.boxes[set.size++] = Box{south, -180, north, east - 360};
  } else {
    set.boxes[set.size++] = Box{south, west, north, east};
  }
  return set;
}

std::optional<std::string> Polygon::validate(const std::vector<Ring>& rings) {
  if (rings.empty()) return "a polygon needs at least one ring";
  for (size_t r = 0; r < rings.size(); ++r) {
    const Ring& ring = rings[r];
    const std::string which = r == 0 ? "the outer ring" : "hole " + std::to_string(r);
    if (ring.size() < 4) {
      return which + " has " + std::to_string(ring.size()) +
             " positions; a ring needs at least 4 (first == last)";
    }
    if (!(ring.front() == ring.back())) {
      return which + " is not closed: its first and last positions differ";
    }
    for (const LatLon& p : ring) {
      if (!isValidLatLon(p.lat, p.lon)) {
        return which + " has a position out of range (lat in [-90, 90], lon in [-180, 180])";
      }
    }
  }
  return std::nullopt;
}

Polygon::Polygon(std::vector<Ring> rings) : rings_(std::move(rings)) {
  bounds_ = Box{90, 180, -90, -180};  // empty until a position widens it
  if (rings_.empty()) return;
  for (const LatLon& p : rings_.front()) {
    bounds_.south = std::min(bounds_.south, p.lat);
    bounds_.north = std::max(bounds_.north, p.lat);
    bounds_.west = std::min(bounds_.west, p.lon);
    bounds_.east = std::max(bounds_.east, p.lon);
  }
  buildBands();
}

uint32_t Polygon::bandOf(double lat, uint32_t bands) const {
  // Monotone in lat (a subtraction and a division by a positive constant,
  // then a clamp), so a latitude between two others lands between their
  // bands: an edge is found from every latitude it spans.
  const double x = (lat - bounds_.south) / bandHeight_;
  if (!(x > 0)) return 0;
  if (x >= static_cast<double>(bands)) return bands - 1;
  return static_cast<uint32_t>(x);
}

void Polygon::buildBands() {
  size_t edges = 0;
  for (const Ring& ring : rings_) edges += ring.size() - 1;
  const double span = bounds_.north - bounds_.south;
  if (edges < kBandedFromEdges || !(span > 0)) return;
  // About one band per two edges of the outer ring: a point meets a few.
  const auto bandsOf = [](const Ring& ring) {
    return static_cast<uint32_t>(std::clamp<size_t>((ring.size() - 1) / 2, 1, 16'384));
  };
  const uint32_t count = bandsOf(rings_.front());  // the same bands for every ring
  bandHeight_ = span / count;
  bands_.resize(rings_.size());
  for (size_t r = 0; r < rings_.size(); ++r) {
    const Ring& ring = rings_[r];
    Bands& b = bands_[r];
    b.start.assign(count + 1, 0);
    const auto rangeOf = [&](size_t i) {
      return std::pair{bandOf(std::min(ring[i].lat, ring[i + 1].lat), count),
                       bandOf(std::max(ring[i].lat, ring[i + 1].lat), count)};
    };
    for (size_t i = 0; i + 1 < ring.size(); ++i) {
      const auto [lo, hi] = rangeOf(i);
      for (uint32_t k = lo; k <= hi; ++k) ++b.start[k + 1];
    }
    for (uint32_t k = 0; k < count; ++k) b.start[k + 1] += b.start[k];
    b.edges.resize(b.start[count]);
    std::vector<uint32_t> fill(b.start.begin(), b.start.end() - 1);
    for (size_t i = 0; i + 1 < ring.size(); ++i) {  // in ring order
      const auto [lo, hi] = rangeOf(i);
      for (uint32_t k = lo; k <= hi; ++k) b.edges[fill[k]++] = static_cast<uint32_t>(i);
    }
  }
}

bool Polygon::containsByScan(LatLon p) const {
  if (rings_.empty()) return false;
  if (!(bounds_.south <= p.lat && p.lat <= bounds_.north && bounds_.west <= p.lon &&
        p.lon <= bounds_.east)) {
    return false;
  }
  switch (ringSide(rings_.front(), p)) {
    case Side::kOutside:
      return false;
    case Side::kBoundary:
      return true;
    case Side::kInside:
      break;
  }
  for (size_t h = 1; h < rings_.size(); ++h) {
    if (ringSide(rings_[h], p) == Side::kInside) return false;
  }
  return true;
}

bool Polygon::contains(LatLon p) const {
  if (bands_.empty()) return containsByScan(p);
  if (!(bounds_.south <= p.lat && p.lat <= bounds_.north && bounds_.west <= p.lon &&
        p.lon <= bounds_.east)) {
    return false;
  }
  const auto sideOf = [&](size_t r) {
    const Bands& b = bands_[r];
    const uint32_t k = bandOf(p.lat, static_cast<uint32_t>(b.start.size() - 1));
    return ringSideOver(rings_[r], p, b.edges.data() + b.start[k], b.edges.data() + b.start[k + 1]);
  };
  switch (sideOf(0)) {
    case Side::kOutside:
      return false;
    case Side::kBoundary:
      return true;
    case Side::kInside:
      break;
  }
  for (size_t h = 1; h < rings_.size(); ++h) {
    if (sideOf(h) == Side::kInside) return false;
  }
  return true;
}

MultiPolygon::MultiPolygon(Polygon polygon) {
  parts_.push_back(std::move(polygon));
}

MultiPolygon::MultiPolygon(std::vector<Polygon> parts) : parts_(std::move(parts)) {}

bool MultiPolygon::contains(LatLon p) const {
  return firstPartContaining(p) < parts_.size();
}

size_t MultiPolygon::firstPartContaining(LatLon p) const {
  for (size_t i = 0; i < parts_.size(); ++i) {
    if (parts_[i].contains(p)) return i;
  }
  return parts_.size();
}

size_t MultiPolygon::positions() const {
  size_t n = 0;
  for (const Polygon& part : parts_) {
    for (const auto& ring : part.rings()) n += ring.size();
  }
  return n;
}

}  // namespace locus::geo
