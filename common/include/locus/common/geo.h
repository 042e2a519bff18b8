// Geo math on a sphere: distances, the lon/lat boxes that cover a circle,
// antimeridian-crossing boxes and GeoJSON polygons and multipolygons.
//
// Everything here is in WGS84 degrees and metres on a sphere of radius
// kEarthRadiusM. These functions are the definition of Locus's answers: the
// index and the tests' brute-force scans both call them, so a result is
// "exact" when it equals what these functions say for every stored point.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace locus::geo {

inline constexpr double kEarthRadiusM = 6371008.8;
inline constexpr double kPi = 3.14159265358979323846;
inline constexpr double kHalfCircumferenceM = kPi * kEarthRadiusM;

struct LatLon {
  double lat = 0;  // degrees, [-90, 90]
  double lon = 0;  // degrees, [-180, 180]
  friend bool operator==(const LatLon&, const LatLon&) = default;
};

// True when lat and lon are finite and within [-90, 90] x [-180, 180].
bool isValidLatLon(double lat, double lon);

// Locus stores coordinates as integers of 1e-7 degree (about 1.1 cm), like
// the E7 coordinates of many GPS formats. toE7 rounds to the nearest step;
// fromE7 is the one way back, so every stored coordinate has one double.
inline int32_t toE7(double degrees) {
  return static_cast<int32_t>(std::llround(degrees * 1e7));
}
inline double fromE7(int32_t e7) {
  return static_cast<double>(e7) / 1e7;
}
// The coordinate Locus will store and report for `degrees`.
inline double quantize(double degrees) {
  return fromE7(toE7(degrees));
}

// Great-circle distances from one fixed point. The haversine term `a` is
// monotone in distance and cheaper to compute, so callers may filter on it
// and convert only the survivors; metresFromA(a(p)) == metres(p) exactly.
class DistanceFrom {
 public:
  explicit DistanceFrom(LatLon origin);
  LatLon origin() const { return origin_; }
  // Haversine term in [0, 1]: sin²(Δφ/2) + cos φ1 cos φ2 sin²(Δλ/2).
  double a(LatLon p) const;
  // A lower bound of a(p) from arithmetic alone (no trig): within a relative
  // 1e-12 of never exceeding a(p), and within ~x⁴ of it for angles x, so a
  // filter can reject far candidates before paying for a(p).
  double aLowerBound(LatLon p) const;
  static double metresFromA(double a);
  double metres(LatLon p) const { return metresFromA(a(p)); }
  // The haversine term of a distance (inverse of metresFromA up to rounding).
  static double aFromMetres(double metres);

 private:
  LatLon origin_;
  double latRad_;
  double cosLat_;
  double absSinLat_;
};

// Haversine great-circle distance in metres.
inline double haversineM(LatLon a, LatLon b) {
  return DistanceFrom(a).metres(b);
}

// A lon/lat box. west > east means the box crosses the antimeridian and
// covers [west, 180] ∪ [-180, east]. Longitudes ±180 name the same meridian:
// a point on it is inside a box whose edge is at either +180 or -180.
struct Box {
  double south = 0;
  double west = 0;
  double north = 0;
  double east = 0;
  bool crossesAntimeridian() const { return west > east; }
  bool contains(LatLon p) const;
  friend bool operator==(const Box&, const Box&) = default;
};

// Up to two boxes that do not cross the antimeridian (west <= east).
struct BoxSet {
  std::array<Box, 2> boxes{};
  int size = 0;
  const Box* begin() const { return boxes.data(); }
  const Box* end() const { return boxes.data() + size; }
};

// The box split at the antimeridian into boxes with west <= east.
BoxSet splitAtAntimeridian(const Box& box);

// Boxes covering every point within radiusM (great-circle) of center: a
// conservative cover, correct when the circle contains a pole (the box spans
// all longitudes) or crosses the antimeridian (two boxes).
BoxSet circleCover(LatLon center, double radiusM);

// A polygon whose edges are straight lines in lon/lat (RFC 7946): the first
// ring is the outer boundary, the others are holes. A point on a boundary
// (outer or hole) counts as inside.
class Polygon {
 public:
  using Ring = std::vector<LatLon>;

  // Checks the GeoJSON rules: at least one ring, every ring closed
  // (first == last) with >= 4 positions, all coordinates valid.
  static std::optional<std::string> validate(const std::vector<Ring>& rings);
  // Precondition: validate(rings) returned no error.
  explicit Polygon(std::vector<Ring> rings);

  // Inside, or on the boundary. With many edges it looks only at the edges
  // whose latitude range holds p (kept per latitude band): the same edges,
  // in the same order, that decide the answer of a full scan, so the
  // answer is the same to the bit, at a cost that follows the edges near
  // p's latitude rather than all of them.
  bool contains(LatLon p) const;
  // The same answer by a scan of every edge (for tests and benchmarks).
  bool containsByScan(LatLon p) const;
  const Box& bounds() const { return bounds_; }  // of the outer ring; never crosses
  const std::vector<Ring>& rings() const { return rings_; }

  // Rings with fewer edges are scanned whole.
  static constexpr size_t kBandedFromEdges = 32;

 private:
  // A ring's edges by latitude band: band b holds every edge i (ring[i] to
  // ring[i+1]) whose closed latitude range meets it, in ring order.
  struct Bands {
    std::vector<uint32_t> start;  // per band, into edges; one more than the bands
    std::vector<uint32_t> edges;
  };
  uint32_t bandOf(double lat, uint32_t bands) const;
  void buildBands();

  std::vector<Ring> rings_;
  Box bounds_;
  double bandHeight_ = 0;     // degrees of latitude per band (0: no bands)
  std::vector<Bands> bands_;  // by ring; empty: every ring is scanned whole
};

// The union of polygons (a GeoJSON MultiPolygon, or every polygon of a
// FeatureCollection): a point is inside when some part contains it. The
// parts may overlap or touch; a point in two parts is still one point. An
// area across the antimeridian is two parts, one on each side, as RFC 7946
// splits it.
class MultiPolygon {
 public:
  // A single polygon is a union of one.
  MultiPolygon(Polygon polygon);  // NOLINT(google-explicit-constructor)
  // Precondition: parts is not empty.
  explicit MultiPolygon(std::vector<Polygon> parts);

  bool contains(LatLon p) const;
  // The first part that contains p, or parts().size() when none does: a
  // search over the parts' bounds counts p in that part only.
  size_t firstPartContaining(LatLon p) const;
  const std::vector<Polygon>& parts() const { return parts_; }
  // Vertices over every ring of every part.
  size_t positions() const;

 private:
  std::vector<Polygon> parts_;
};

// The SPEC's city workload: devices uniform in this box (about 3,100 km²),
// each update moving a device by up to about 50 m. Shared by `locus local`,
// the benchmarks and the probe so they all simulate the same city.
inline constexpr Box kCityBox{31.0, 121.2, 31.5, 121.8};

}  // namespace locus::geo
