// Tests for locus/common/geo.h: distances, E7 quantization, boxes, circle
// covers and polygons. Expected values come from independent formulas
// written here (in long double), not from the functions under test.
#include "locus/common/geo.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "locus/testkit/country.h"

namespace {

using locus::geo::Box;
using locus::geo::BoxSet;
using locus::geo::circleCover;
using locus::geo::DistanceFrom;
using locus::geo::fromE7;
using locus::geo::haversineM;
using locus::geo::kEarthRadiusM;
using locus::geo::kPi;
using locus::geo::LatLon;
using locus::geo::Polygon;
using locus::geo::quantize;
using locus::geo::splitAtAntimeridian;
using locus::geo::toE7;

constexpr long double kPiL = 3.141592653589793238462643383279502884L;
constexpr long double kRadL = kPiL / 180.0L;

// Great-circle distance by the Vincenty formula for a sphere (well
// conditioned at every distance), in long double: an implementation
// independent of the haversine under test.
double vincentySphereM(LatLon a, LatLon b) {
  const long double p1 = a.lat * kRadL, p2 = b.lat * kRadL;
  const long double dl = (static_cast<long double>(b.lon) - a.lon) * kRadL;
  const long double x = std::cos(p2) * std::sin(dl);
  const long double y = std::cos(p1) * std::sin(p2) - std::sin(p1) * std::cos(p2) * std::cos(dl);
  const long double z = std::sin(p1) * std::sin(p2) + std::cos(p1) * std::cos(p2) * std::cos(dl);
  return static_cast<double>(std::atan2(std::sqrt(x * x + y * y), z) *
                             static_cast<long double>(kEarthRadiusM));
}

// Spherical law of cosines in long double (a second independent formula;
// fine away from very small distances).
double lawOfCosinesM(LatLon a, LatLon b) {
  const long double p1 = a.lat * kRadL, p2 = b.lat * kRadL;
  const long double dl = (static_cast<long double>(b.lon) - a.lon) * kRadL;
  long double c = std::sin(p1) * std::sin(p2) + std::cos(p1) * std::cos(p2) * std::cos(dl);
  if (c > 1) c = 1;
  if (c < -1) c = -1;
  return static_cast<double>(std::acos(c) * static_cast<long double>(kEarthRadiusM));
}

// The point `distanceM` from `from` along initial bearing `bearingDeg`, with
// lon normalized to [-180, 180].
LatLon destination(LatLon from, double bearingDeg, double distanceM) {
  const long double d = distanceM / static_cast<long double>(kEarthRadiusM);
  const long double th = bearingDeg * kRadL;
  const long double p1 = from.lat * kRadL, l1 = from.lon * kRadL;
  long double s = std::sin(p1) * std::cos(d) + std::cos(p1) * std::sin(d) * std::cos(th);
  if (s > 1) s = 1;
  if (s < -1) s = -1;
  const long double p2 = std::asin(s);
  const long double l2 =
      l1 + std::atan2(std::sin(th) * std::sin(d) * std::cos(p1), std::cos(d) - std::sin(p1) * s);
  long double lonDeg = std::remainder(l2 / kRadL, 360.0L);  // [-180, 180]
  double lat = static_cast<double>(p2 / kRadL);
  double lon = static_cast<double>(lonDeg);
  if (lat > 90) lat = 90;
  if (lat < -90) lat = -90;
  if (lon > 180) lon = 180;
  if (lon < -180) lon = -180;
  return {lat, lon};
}

// GeoJSON order: (lon, lat) pairs.
Polygon::Ring ring(std::initializer_list<std::pair<double, double>> lonLat) {
  Polygon::Ring r;
  for (const auto& [lon, lat] : lonLat) r.push_back(LatLon{lat, lon});
  return r;
}

std::string str(LatLon p) {
  std::ostringstream os;
  os.precision(17);
  os << "(lat " << p.lat << ", lon " << p.lon << ")";
  return os.str();
}

std::string str(const BoxSet& set) {
  std::ostringstream os;
  os.precision(17);
  for (const Box& b : set) {
    os << "[S " << b.south << " W " << b.west << " N " << b.north << " E " << b.east << "] ";
  }
  return os.str();
}

bool coverContains(const BoxSet& set, LatLon p) {
  for (const Box& b : set) {
    if (b.contains(p)) return true;
  }
  return false;
}

}  // namespace

// ------------------------------------------------------------------ distance

TEST_CASE("haversine matches independent formulas for known city pairs", "[geo][distance]") {
  const LatLon paris{48.8566, 2.3522};
  const LatLon london{51.5074, -0.1278};
  const double expected = vincentySphereM(paris, london);
  CHECK(expected == Approx(lawOfCosinesM(paris, london)).epsilon(1e-9));
  // Sanity of the reference itself: Paris–London is about 343.5 km.
  CHECK(expected == Approx(343.5e3).margin(1e3));
  CHECK(haversineM(paris, london) == Approx(expected).epsilon(1e-6));
  CHECK(haversineM(london, paris) == Approx(expected).epsilon(1e-6));

  const LatLon shanghai{31.2304, 121.4737};
  const LatLon sanFrancisco{37.7749, -122.4194};  // crosses the antimeridian
  CHECK(haversineM(shanghai, sanFrancisco) ==
        Approx(vincentySphereM(shanghai, sanFrancisco)).epsilon(1e-6));

  const LatLon sydney{-33.8688, 151.2093};
  const LatLon santiago{-33.4489, -70.6693};
  CHECK(haversineM(sydney, santiago) == Approx(vincentySphereM(sydney, santiago)).epsilon(1e-6));
}

TEST_CASE("haversine of exact arcs on the sphere", "[geo][distance]") {
  const double oneDegreeM = kEarthRadiusM * kPi / 180;  // ~111,195 m
  CHECK(oneDegreeM == Approx(111195.08).margin(0.01));
  CHECK(haversineM({0, 0}, {1, 0}) == Approx(oneDegreeM).epsilon(1e-12));
  CHECK(haversineM({0, 0}, {0, 1}) == Approx(oneDegreeM).epsilon(1e-12));
  CHECK(haversineM({45, 7}, {46, 7}) == Approx(oneDegreeM).epsilon(1e-12));
  CHECK(haversineM({0, 0}, {90, 0}) == Approx(kPi / 2 * kEarthRadiusM).epsilon(1e-12));
  CHECK(haversineM({0, 0}, {0, 90}) == Approx(kPi / 2 * kEarthRadiusM).epsilon(1e-12));
}

TEST_CASE("haversine of a point to itself is zero", "[geo][distance]") {
  for (LatLon p : {LatLon{0, 0}, LatLon{31.23, 121.47}, LatLon{-89.5, -179.9}, LatLon{90, 0},
                   LatLon{-90, 180}, LatLon{12.3456789, -180}}) {
    INFO(str(p));
    CHECK(haversineM(p, p) == 0.0);
  }
}

TEST_CASE("haversine of antipodal points is half the circumference", "[geo][distance]") {
  const double half = kPi * kEarthRadiusM;
  CHECK(locus::geo::kHalfCircumferenceM == Approx(half).epsilon(1e-15));
  // asin near 1 loses about half the digits: 1e-7 relative is ~2 m.
  CHECK(haversineM({0, 0}, {0, 180}) == Approx(half).epsilon(1e-7));
  CHECK(haversineM({0, 0}, {0, -180}) == Approx(half).epsilon(1e-7));
  CHECK(haversineM({90, 0}, {-90, 0}) == Approx(half).epsilon(1e-7));
  CHECK(haversineM({10, 20}, {-10, -160}) == Approx(half).epsilon(1e-7));
  CHECK(haversineM({-45.5, 100.25}, {45.5, -79.75}) == Approx(half).epsilon(1e-7));
}

TEST_CASE("haversine across the antimeridian takes the short way", "[geo][distance]") {
  const double oneDegreeM = kEarthRadiusM * kPi / 180;
  CHECK(haversineM({0, 179.9}, {0, -179.9}) == Approx(0.2 * oneDegreeM).epsilon(1e-9));
  CHECK(haversineM({0, -179.9}, {0, 179.9}) == Approx(0.2 * oneDegreeM).epsilon(1e-9));
  CHECK(haversineM({0, 180}, {0, -180}) == Approx(0).margin(1e-6));
  const LatLon a{60, 179.5}, b{60.5, -179.5};
  CHECK(haversineM(a, b) == Approx(vincentySphereM(a, b)).epsilon(1e-9));
  CHECK(haversineM(a, b) < 100e3);
}

TEST_CASE("haversine at the poles ignores longitude", "[geo][distance]") {
  const double oneDegreeM = kEarthRadiusM * kPi / 180;
  CHECK(haversineM({90, 0}, {90, 123}) == Approx(0).margin(1e-6));
  CHECK(haversineM({90, -180}, {90, 180}) == Approx(0).margin(1e-6));
  CHECK(haversineM({-90, 45}, {-90, -135}) == Approx(0).margin(1e-6));
  CHECK(haversineM({90, 0}, {89, 77}) == Approx(oneDegreeM).epsilon(1e-9));
  CHECK(haversineM({-90, 10}, {-89, -170}) == Approx(oneDegreeM).epsilon(1e-9));
  // Over the pole: lon 0 and lon 180 at lat 89 are 2 degrees apart.
  CHECK(haversineM({89, 0}, {89, 180}) == Approx(2 * oneDegreeM).epsilon(1e-9));
}

TEST_CASE("haversine agrees with Vincenty on random pairs", "[geo][distance]") {
  std::mt19937_64 rng(12345);
  std::uniform_real_distribution<double> u01(0, 1);
  auto randomPoint = [&] {
    return LatLon{std::asin(2 * u01(rng) - 1) * 180 / kPi, 360 * u01(rng) - 180};
  };
  for (int i = 0; i < 20000; ++i) {
    const LatLon a = randomPoint();
    // Half the pairs are close together, where errors are relatively largest.
    const LatLon b =
        i % 2 ? randomPoint() : destination(a, 360 * u01(rng), std::pow(10.0, 7 * u01(rng)));
    const double expected = vincentySphereM(a, b);
    const double got = haversineM(a, b);
    INFO(str(a) << " " << str(b));
    REQUIRE(got == Approx(expected).epsilon(1e-7).margin(1e-6));
    REQUIRE(haversineM(b, a) == Approx(got).epsilon(1e-12).margin(1e-9));
  }
}

TEST_CASE("DistanceFrom: the haversine term converts to and from metres", "[geo][distance]") {
  const DistanceFrom from({31.2, 121.5});
  CHECK(from.origin() == LatLon{31.2, 121.5});
  CHECK(from.a({31.2, 121.5}) == 0.0);
  CHECK(DistanceFrom::metresFromA(0) == 0.0);
  CHECK(DistanceFrom::metresFromA(1) == Approx(kPi * kEarthRadiusM).epsilon(1e-15));
  CHECK(DistanceFrom::aFromMetres(0) == 0.0);
  CHECK(DistanceFrom::aFromMetres(kPi * kEarthRadiusM) == 1.0);
  CHECK(DistanceFrom::aFromMetres(3e7) == 1.0);                 // beyond the antipode
  CHECK(from.a({-31.2, -58.5}) == Approx(1.0).epsilon(1e-12));  // antipode

  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
  double prevA = -1, prevM = -1;
  for (double m : {0.0, 0.01, 1.0, 1e3, 1e6, 1e7, 2e7}) {
    const double a = DistanceFrom::aFromMetres(m);
    CHECK(a > prevA);  // strictly monotone
    CHECK(DistanceFrom::metresFromA(a) == Approx(m).epsilon(1e-9));
    prevA = a;
  }
  for (int i = 0; i < 1000; ++i) {
    const LatLon p{lat(rng), lon(rng)};
    const double a = from.a(p);
    REQUIRE(a >= 0.0);
    REQUIRE(a <= 1.0);
    REQUIRE(from.metres(p) == DistanceFrom::metresFromA(a));  // exactly, as documented
    REQUIRE(from.metres(p) == haversineM(from.origin(), p));
    (void)prevM;
  }
}

TEST_CASE("isValidLatLon", "[geo]") {
  CHECK(locus::geo::isValidLatLon(0, 0));
  CHECK(locus::geo::isValidLatLon(90, 180));
  CHECK(locus::geo::isValidLatLon(-90, -180));
  CHECK_FALSE(locus::geo::isValidLatLon(90.0000001, 0));
  CHECK_FALSE(locus::geo::isValidLatLon(-91, 0));
  CHECK_FALSE(locus::geo::isValidLatLon(0, 180.0000001));
  CHECK_FALSE(locus::geo::isValidLatLon(0, -181));
  CHECK_FALSE(locus::geo::isValidLatLon(std::nan(""), 0));
  CHECK_FALSE(locus::geo::isValidLatLon(0, std::nan("")));
  CHECK_FALSE(locus::geo::isValidLatLon(std::numeric_limits<double>::infinity(), 0));
  CHECK_FALSE(locus::geo::isValidLatLon(0, -std::numeric_limits<double>::infinity()));
}

// ------------------------------------------------------------------------ E7

TEST_CASE("toE7 rounds to the nearest 1e-7 degree", "[geo][e7]") {
  CHECK(toE7(0) == 0);
  CHECK(toE7(121.4737) == 1214737000);
  CHECK(toE7(-33.8688) == -338688000);
  CHECK(toE7(180) == 1800000000);
  CHECK(toE7(-180) == -1800000000);
  CHECK(toE7(90) == 900000000);
  CHECK(toE7(1.00000004) == 10000000);
  CHECK(toE7(1.00000006) == 10000001);
  CHECK(toE7(-1.00000004) == -10000000);
  CHECK(toE7(-1.00000006) == -10000001);
  CHECK(fromE7(1214737000) == 121.4737);
  CHECK(fromE7(-1800000000) == -180.0);
  CHECK(fromE7(1) == 1e-7);
}

TEST_CASE("E7 round trips and quantize is idempotent", "[geo][e7]") {
  std::mt19937_64 rng(99);
  std::uniform_int_distribution<int32_t> e7(-1800000000, 1800000000);
  std::uniform_real_distribution<double> deg(-180, 180);
  for (int i = 0; i < 100000; ++i) {
    const int32_t e = e7(rng);
    REQUIRE(toE7(fromE7(e)) == e);
    const double d = deg(rng);
    const double q = quantize(d);
    REQUIRE(std::abs(q - d) <= 0.5e-7 + 1e-12);
    REQUIRE(quantize(q) == q);
    REQUIRE(q == fromE7(toE7(d)));
  }
  CHECK(quantize(180) == 180.0);
  CHECK(quantize(-90) == -90.0);
}

// ----------------------------------------------------------------------- box

TEST_CASE("Box::contains for an ordinary box includes its edges", "[geo][box]") {
  const Box box{31.0, 121.2, 31.5, 121.8};
  CHECK_FALSE(box.crossesAntimeridian());
  CHECK(box.contains({31.2, 121.5}));
  CHECK(box.contains({31.0, 121.2}));  // corner
  CHECK(box.contains({31.5, 121.8}));  // corner
  CHECK(box.contains({31.25, 121.8}));
  CHECK_FALSE(box.contains({30.9999999, 121.5}));
  CHECK_FALSE(box.contains({31.5000001, 121.5}));
  CHECK_FALSE(box.contains({31.2, 121.1999999}));
  CHECK_FALSE(box.contains({31.2, 121.8000001}));
  CHECK_FALSE(box.contains({31.2, -121.5}));
}

TEST_CASE("Box::contains when west > east crosses the antimeridian", "[geo][box]") {
  const Box box{-10, 170, 10, -170};
  CHECK(box.crossesAntimeridian());
  CHECK(box.contains({0, 175}));
  CHECK(box.contains({0, -175}));
  CHECK(box.contains({0, 180}));
  CHECK(box.contains({0, -180}));
  CHECK(box.contains({0, 170}));
  CHECK(box.contains({0, -170}));
  CHECK(box.contains({10, 179}));
  CHECK_FALSE(box.contains({0, 0}));
  CHECK_FALSE(box.contains({0, 169.9}));
  CHECK_FALSE(box.contains({0, -169.9}));
  CHECK_FALSE(box.contains({10.1, 179}));
  CHECK_FALSE(box.contains({-10.1, -179}));
}

TEST_CASE("Box::contains treats lon -180 and +180 as one meridian", "[geo][box]") {
  const Box eastEdge{-5, 170, 5, 180};
  CHECK(eastEdge.contains({0, 180}));
  CHECK(eastEdge.contains({0, -180}));
  CHECK_FALSE(eastEdge.contains({0, -179.9}));

  const Box westEdge{-5, -180, 5, -170};
  CHECK(westEdge.contains({0, -180}));
  CHECK(westEdge.contains({0, 180}));
  CHECK_FALSE(westEdge.contains({0, 179.9}));

  // Crossing boxes with an edge exactly on the meridian.
  const Box fromMeridian{-5, 180, 5, -170};
  CHECK(fromMeridian.crossesAntimeridian());
  CHECK(fromMeridian.contains({0, 180}));
  CHECK(fromMeridian.contains({0, -180}));
  CHECK(fromMeridian.contains({0, -175}));
  CHECK_FALSE(fromMeridian.contains({0, 179}));

  const Box world{-90, -180, 90, 180};
  CHECK(world.contains({90, 0}));
  CHECK(world.contains({-90, 180}));
  CHECK(world.contains({0, -180}));

  // A point on ±180 is not inside a box far from the meridian.
  const Box away{-5, -10, 5, 10};
  CHECK_FALSE(away.contains({0, 180}));
  CHECK_FALSE(away.contains({0, -180}));
}

TEST_CASE("splitAtAntimeridian", "[geo][box]") {
  SECTION("a box that does not cross stays whole") {
    const Box box{1, 2, 3, 4};
    const BoxSet set = splitAtAntimeridian(box);
    REQUIRE(set.size == 1);
    CHECK(set.boxes[0] == box);
  }
  SECTION("a crossing box splits into two at ±180") {
    const Box box{-10, 170, 10, -170};
    const BoxSet set = splitAtAntimeridian(box);
    REQUIRE(set.size == 2);
    CHECK(set.boxes[0] == Box{-10, 170, 10, 180});
    CHECK(set.boxes[1] == Box{-10, -180, 10, -170});
    for (const Box& b : set) CHECK_FALSE(b.crossesAntimeridian());
  }
  SECTION("the halves contain exactly what the crossing box contains") {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> lat(-90, 90), lon(-180, 180);
    for (int i = 0; i < 200; ++i) {
      double s = lat(rng), n = lat(rng), w = lon(rng), e = lon(rng);
      if (s > n) std::swap(s, n);
      const Box box{s, w, n, e};
      const BoxSet set = splitAtAntimeridian(box);
      REQUIRE(set.size == (w > e ? 2 : 1));
      for (int j = 0; j < 200; ++j) {
        LatLon p{lat(rng), lon(rng)};
        if (j % 10 == 0) p.lon = j % 20 == 0 ? 180 : -180;
        if (j % 10 == 1) p.lon = w;
        if (j % 10 == 2) p.lon = e;
        INFO(str(p) << " in " << str(set));
        REQUIRE(coverContains(set, p) == box.contains(p));
      }
    }
  }
}

// -------------------------------------------------------------- circle cover

TEST_CASE("circleCover: an ordinary small circle is one box around it", "[geo][cover]") {
  const LatLon c{31.25, 121.5};
  const BoxSet set = circleCover(c, 1000);
  REQUIRE(set.size == 1);
  const Box& b = set.boxes[0];
  const double dLat = 1000 / kEarthRadiusM * 180 / kPi;
  CHECK(b.south == Approx(c.lat - dLat).margin(1e-5));
  CHECK(b.north == Approx(c.lat + dLat).margin(1e-5));
  CHECK(b.south < c.lat - dLat);
  CHECK(b.north > c.lat + dLat);
  // Not wildly conservative: the box's corners are outside the circle.
  CHECK(haversineM(c, {b.north, b.east}) > 1000);
  CHECK(haversineM(c, {b.south, b.west}) > 1000);
  CHECK(b.west < c.lon);
  CHECK(b.east > c.lon);
  CHECK(b.east - b.west < 0.03);
}

TEST_CASE("circleCover: a circle containing a pole spans all longitudes", "[geo][cover]") {
  for (LatLon c : {LatLon{89.5, 10}, LatLon{90, 0}, LatLon{-89.9, -170}, LatLon{-90, 180}}) {
    INFO(str(c));
    const BoxSet set = circleCover(c, 200e3);
    REQUIRE(set.size == 1);
    CHECK(set.boxes[0].west == -180);
    CHECK(set.boxes[0].east == 180);
    if (c.lat > 0) {
      CHECK(set.boxes[0].north == 90);
      CHECK(set.boxes[0].south < c.lat - 1.5);
    } else {
      CHECK(set.boxes[0].south == -90);
      CHECK(set.boxes[0].north > c.lat + 1.5);
    }
  }
  // A huge radius covers the world.
  const BoxSet world = circleCover({0, 0}, 2.1e7);
  REQUIRE(world.size == 1);
  CHECK(world.boxes[0] == Box{-90, -180, 90, 180});
}

TEST_CASE("circleCover: a circle crossing the antimeridian yields two boxes", "[geo][cover]") {
  for (LatLon c : {LatLon{0, 179.99}, LatLon{-40, -179.95}, LatLon{65, 180}, LatLon{10, -180}}) {
    INFO(str(c));
    const BoxSet set = circleCover(c, 10e3);
    REQUIRE(set.size == 2);
    for (const Box& b : set) CHECK_FALSE(b.crossesAntimeridian());
    // One box ends at +180, the other starts at -180.
    const bool firstEast = set.boxes[0].east == 180;
    const Box& east = firstEast ? set.boxes[0] : set.boxes[1];
    const Box& west = firstEast ? set.boxes[1] : set.boxes[0];
    CHECK(east.east == 180);
    CHECK(east.west > 179);
    CHECK(west.west == -180);
    CHECK(west.east < -179);
    CHECK(coverContains(set, {c.lat, 179.999}));
    CHECK(coverContains(set, {c.lat, -179.999}));
    CHECK_FALSE(coverContains(set, {c.lat, 0}));
  }
}

TEST_CASE("circleCover contains every point within the radius (property)", "[geo][cover]") {
  std::mt19937_64 rng(20240601);
  std::uniform_real_distribution<double> u01(0, 1);
  auto uniformSphere = [&] {
    return LatLon{std::asin(2 * u01(rng) - 1) * 180 / kPi, 360 * u01(rng) - 180};
  };
  auto randomCenter = [&](int i) -> LatLon {
    switch (i % 6) {
      case 0:
        return uniformSphere();
      case 1: {  // near a pole, |lat| > 89, sometimes exactly on it
        double lat = 89 + u01(rng);
        if (i % 12 == 1) lat = 90;
        if (i % 24 == 7) lat = 90 - 1e-9;
        return {u01(rng) < 0.5 ? lat : -lat, 360 * u01(rng) - 180};
      }
      case 2: {  // near the antimeridian, sometimes exactly on it
        double lon = 180 - u01(rng) * (i % 4 == 2 ? 1e-4 : 1.0);
        if (i % 18 == 2) lon = 180;
        return {180 * u01(rng) - 90, u01(rng) < 0.5 ? lon : -lon};
      }
      case 3: {  // near both
        const double lat = 88 + 2 * u01(rng);
        const double lon = 180 - u01(rng);
        return {u01(rng) < 0.5 ? lat : -lat, u01(rng) < 0.5 ? lon : -lon};
      }
      case 4:  // the city workload
        return {31.0 + 0.5 * u01(rng), 121.2 + 0.6 * u01(rng)};
      default:
        return {170 * u01(rng) - 85, 360 * u01(rng) - 180};
    }
  };
  // Radii from 1 m to 20,000 km, log-uniform, plus a few fixed ones.
  auto randomRadius = [&](int i) {
    static const double fixed[] = {1, 10, 500, 1e5, 2e7, 1.0005e7};
    if (i % 10 == 9) return fixed[(i / 10) % 6];
    return std::pow(10.0, 7.3 * u01(rng));
  };

  int checked = 0, inside = 0, failures = 0;
  for (int i = 0; i < 600; ++i) {
    const LatLon c = randomCenter(i);
    const double r = std::min(randomRadius(i), 2e7);
    const BoxSet set = circleCover(c, r);
    REQUIRE(set.size >= 1);
    REQUIRE(set.size <= 2);
    for (const Box& b : set) {
      REQUIRE_FALSE(b.crossesAntimeridian());
      REQUIRE(b.south <= b.north);
      REQUIRE(b.south >= -90);
      REQUIRE(b.north <= 90);
      REQUIRE(b.west >= -180);
      REQUIRE(b.east <= 180);
    }
    // The centre is always covered.
    REQUIRE(coverContains(set, c));

    auto check = [&](LatLon p) {
      ++checked;
      if (!(haversineM(c, p) <= r)) return;
      ++inside;
      if (coverContains(set, p)) return;
      ++failures;
      if (failures <= 5) {
        std::ostringstream os;
        os.precision(17);
        os << "centre " << str(c) << " r " << r << " m: " << str(p) << " at " << haversineM(c, p)
           << " m is not in cover " << str(set);
        FAIL_CHECK(os.str());
      }
    };
    for (int j = 0; j < 250; ++j) {
      LatLon p;
      switch (j % 5) {
        case 0:  // on or just around the circle
          p = destination(c, 360 * u01(rng), r * (0.999 + 0.0011 * u01(rng)));
          break;
        case 1:  // anywhere inside
          p = destination(c, 360 * u01(rng), r * u01(rng));
          break;
        case 2:  // exactly at the boundary along a cardinal bearing
          p = destination(c, 90.0 * (j % 4), r * (1 - 1e-15 * (j % 3)));
          break;
        case 3:
          p = uniformSphere();
          break;
        default: {  // boundary region near the extreme longitudes
          const double bearing = (j % 2 ? 90 : 270) + 30 * (u01(rng) - 0.5);
          p = destination(c, bearing, r * (0.9995 + 0.0006 * u01(rng)));
          break;
        }
      }
      check(p);
      // The same place named by the other side of the meridian.
      if (p.lon == 180) check({p.lat, -180});
      if (p.lon == -180) check({p.lat, 180});
      if (std::abs(p.lon) > 179.999) check({p.lat, p.lon > 0 ? 180.0 : -180.0});
      // Poles at any longitude.
      if (j % 50 == 0) {
        check({90, 360 * u01(rng) - 180});
        check({-90, 360 * u01(rng) - 180});
      }
    }
  }
  CHECK(failures == 0);
  // The generator really produced points inside the circles.
  CHECK(inside > checked / 3);
}

// -------------------------------------------------------------------- polygon

TEST_CASE("Polygon::validate refuses what GeoJSON refuses", "[geo][polygon]") {
  const auto square = ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}});
  CHECK_FALSE(Polygon::validate({square}).has_value());
  CHECK_FALSE(Polygon::validate({square, ring({{4, 4}, {6, 4}, {6, 6}, {4, 4}})}).has_value());

  SECTION("no rings") {
    const auto e = Polygon::validate({});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("at least one ring"));
  }
  SECTION("fewer than 4 positions") {
    const auto e = Polygon::validate({ring({{0, 0}, {10, 0}, {0, 0}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("3 positions"));
    CHECK_THAT(*e, Catch::Contains("at least 4"));
    CHECK(Polygon::validate({Polygon::Ring{}}).has_value());
  }
  SECTION("unclosed ring") {
    const auto e = Polygon::validate({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("not closed"));
    CHECK_THAT(*e, Catch::Contains("outer ring"));
  }
  SECTION("a bad hole names the hole") {
    const auto e = Polygon::validate({square, ring({{4, 4}, {6, 4}, {6, 6}, {4, 6}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("hole 1"));
    CHECK_THAT(*e, Catch::Contains("not closed"));
  }
  SECTION("out of range coordinates") {
    auto e = Polygon::validate({ring({{0, 0}, {10, 0}, {10, 91}, {0, 0}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("out of range"));
    e = Polygon::validate({ring({{0, 0}, {181, 0}, {10, 10}, {0, 0}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("out of range"));
    e = Polygon::validate({ring({{-200, 0}, {10, 0}, {10, 10}, {-200, 0}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("out of range"));
    e = Polygon::validate({ring({{0, 0}, {std::nan(""), 0}, {10, 10}, {0, 0}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("out of range"));
    e = Polygon::validate({square, ring({{4, 4}, {6, -95}, {6, 6}, {4, 4}})});
    REQUIRE(e.has_value());
    CHECK_THAT(*e, Catch::Contains("hole 1"));
  }
}

TEST_CASE("Polygon::contains for a square", "[geo][polygon]") {
  const Polygon sq({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}})});
  CHECK(sq.bounds() == Box{0, 0, 10, 10});
  CHECK(sq.contains({5, 5}));
  CHECK(sq.contains({0.0001, 9.9999}));
  CHECK(sq.contains({0, 0}));    // vertex
  CHECK(sq.contains({10, 10}));  // vertex
  CHECK(sq.contains({0, 5}));    // edge
  CHECK(sq.contains({5, 10}));   // edge
  CHECK_FALSE(sq.contains({-0.0001, 5}));
  CHECK_FALSE(sq.contains({5, 10.0001}));
  CHECK_FALSE(sq.contains({11, 5}));
  CHECK_FALSE(sq.contains({5, -1}));
  // Winding does not matter.
  const Polygon cw({ring({{0, 0}, {0, 10}, {10, 10}, {10, 0}, {0, 0}})});
  CHECK(cw.contains({5, 5}));
  CHECK(cw.contains({0, 5}));
  CHECK_FALSE(cw.contains({5, 11}));
}

TEST_CASE("Polygon::contains honours holes and boundaries count as inside", "[geo][polygon]") {
  const Polygon p({ring({{0, 0}, {10, 0}, {10, 10}, {0, 10}, {0, 0}}),
                   ring({{4, 4}, {4, 6}, {6, 6}, {6, 4}, {4, 4}})});
  CHECK(p.contains({2, 2}));
  CHECK(p.contains({5, 3}));
  CHECK(p.contains({8, 5}));
  CHECK_FALSE(p.contains({5, 5}));        // in the hole
  CHECK_FALSE(p.contains({4.5, 5.5}));    // in the hole
  CHECK(p.contains({5, 4}));              // on the hole's boundary (lat 5, lon 4)
  CHECK(p.contains({4, 5}));              // on the hole's boundary
  CHECK(p.contains({6, 6}));              // a hole vertex
  CHECK(p.contains({4, 4}));              // a hole vertex
  CHECK(p.contains({0, 5}));              // on the outer boundary
  CHECK(p.contains({10, 10}));            // an outer vertex
  CHECK_FALSE(p.contains({5, 10.5}));     // outside
  CHECK_FALSE(p.contains({5.0, 5.999}));  // just inside the hole
  CHECK(p.contains({5.0, 6.001}));        // just outside the hole
  CHECK(p.bounds() == Box{0, 0, 10, 10});
}

TEST_CASE("Polygon::contains for a concave U shape", "[geo][polygon]") {
  // A U open to the north: arms lon [0,3] and [7,10], base lat [0,3].
  const Polygon u(
      {ring({{0, 0}, {10, 0}, {10, 10}, {7, 10}, {7, 3}, {3, 3}, {3, 10}, {0, 10}, {0, 0}})});
  CHECK(u.contains({2, 5}));    // base
  CHECK(u.contains({9, 1}));    // left arm
  CHECK(u.contains({9, 8.5}));  // right arm
  CHECK_FALSE(u.contains({5, 5}));
  CHECK_FALSE(u.contains({9, 5}));  // between the arms, near the top
  CHECK(u.contains({5, 7}));        // on the notch's east edge
  CHECK(u.contains({3, 5}));        // on the notch's floor
  // Rays through vertices and along horizontal edges.
  CHECK(u.contains({3, 2}));         // lat of the notch floor, in the left arm
  CHECK(u.contains({3, 8}));         // same lat, in the right arm
  CHECK_FALSE(u.contains({3, -1}));  // same lat, west of the U
  CHECK_FALSE(u.contains({3, 11}));  // same lat, east of the U
  CHECK_FALSE(u.contains({10, 5}));  // the open top of the notch is not an edge
  CHECK(u.contains({10, 1.5}));      // top of the left arm
  CHECK_FALSE(u.contains({10, -0.5}));
  CHECK_FALSE(u.contains({10, 11}));
  CHECK(u.contains({0, 5}));  // bottom edge
}

TEST_CASE("Polygon::contains: points on slanted edges", "[geo][polygon]") {
  const Polygon tri({ring({{0, 0}, {10, 0}, {0, 10}, {0, 0}})});
  CHECK(tri.contains({5, 5}));  // on the hypotenuse
  CHECK(tri.contains({2.5, 7.5}));
  CHECK(tri.contains({1, 1}));
  CHECK_FALSE(tri.contains({5, 5.0001}));
  CHECK_FALSE(tri.contains({6, 6}));
}

namespace {

// W. R. Franklin's PNPOLY (even-odd over all rings), an independent
// implementation of "inside an outer ring and not inside a hole" for points
// off every boundary.
bool pnpoly(const std::vector<Polygon::Ring>& rings, LatLon p) {
  bool inside = false;
  for (const auto& r : rings) {
    for (size_t i = 0, j = r.size() - 1; i < r.size(); j = i++) {
      const double xi = r[i].lon, yi = r[i].lat, xj = r[j].lon, yj = r[j].lat;
      if (((yi > p.lat) != (yj > p.lat)) && (p.lon < (xj - xi) * (p.lat - yi) / (yj - yi) + xi)) {
        inside = !inside;
      }
    }
  }
  return inside;
}

double segmentDistance(LatLon p, LatLon a, LatLon b) {
  const double dx = b.lon - a.lon, dy = b.lat - a.lat;
  const double len2 = dx * dx + dy * dy;
  double t = len2 == 0 ? 0 : ((p.lon - a.lon) * dx + (p.lat - a.lat) * dy) / len2;
  t = std::max(0.0, std::min(1.0, t));
  const double ex = a.lon + t * dx - p.lon, ey = a.lat + t * dy - p.lat;
  return std::sqrt(ex * ex + ey * ey);
}

double boundaryDistance(const std::vector<Polygon::Ring>& rings, LatLon p) {
  double best = std::numeric_limits<double>::infinity();
  for (const auto& r : rings) {
    for (size_t i = 0; i + 1 < r.size(); ++i)
      best = std::min(best, segmentDistance(p, r[i], r[i + 1]));
  }
  return best;
}

// A star-shaped (usually concave) closed ring around `c`.
Polygon::Ring starRing(std::mt19937_64& rng, LatLon c, double minR, double maxR, int n,
                       bool clockwise) {
  std::uniform_real_distribution<double> u01(0, 1);
  Polygon::Ring r;
  const double phase = 2 * kPi * u01(rng);
  for (int i = 0; i < n; ++i) {
    const double th = phase + (clockwise ? -1 : 1) * 2 * kPi * (i + 0.4 * (u01(rng) - 0.5)) / n;
    const double rad = minR + (maxR - minR) * u01(rng);
    r.push_back({c.lat + rad * std::sin(th), c.lon + rad * std::cos(th)});
  }
  r.push_back(r.front());
  return r;
}

}  // namespace

TEST_CASE("Polygon::contains agrees with an independent even-odd test", "[geo][polygon]") {
  std::mt19937_64 rng(4242);
  std::uniform_real_distribution<double> u01(0, 1);
  int inside = 0, outside = 0, inHoles = 0;
  for (int poly = 0; poly < 150; ++poly) {
    const LatLon c{120 * u01(rng) - 60, 320 * u01(rng) - 160};
    const double size = 0.01 + 15 * u01(rng);
    std::vector<Polygon::Ring> rings;
    rings.push_back(starRing(rng, c, 0.5 * size, size, 6 + poly % 30, poly % 2 == 0));
    const bool withHole = poly % 3 != 0;
    if (withHole)
      rings.push_back(starRing(rng, c, 0.05 * size, 0.2 * size, 5 + poly % 7, poly % 4 < 2));
    REQUIRE_FALSE(Polygon::validate(rings).has_value());
    const Polygon polygon(rings);
    for (int i = 0; i < 400; ++i) {
      const LatLon p{c.lat + 2.2 * size * (u01(rng) - 0.5), c.lon + 2.2 * size * (u01(rng) - 0.5)};
      if (boundaryDistance(rings, p) < 1e-9 * size) continue;
      const bool expected = pnpoly(rings, p);
      INFO("polygon " << poly << " point " << str(p));
      REQUIRE(polygon.contains(p) == expected);
      if (expected) {
        ++inside;
      } else {
        ++outside;
        if (withHole && pnpoly({rings[0]}, p)) ++inHoles;
      }
    }
    // Vertices are on the boundary, so inside.
    for (const auto& r : rings) {
      for (const LatLon& v : r) REQUIRE(polygon.contains(v));
    }
  }
  CHECK(inside > 1000);
  CHECK(outside > 1000);
  CHECK(inHoles > 100);
}

namespace locus::geo {
namespace {

TEST_CASE("Polygon::contains of a polygon with many edges answers as a full scan, to the bit",
          "[geo][polygon]") {
  const Polygon country = testkit::bigCountry();
  const auto& rings = country.rings();
  REQUIRE(rings[0].size() > Polygon::kBandedFromEdges);
  std::mt19937_64 rng(99);
  const Box b = country.bounds();
  std::uniform_real_distribution<double> lat(b.south - 1, b.north + 1), lon(b.west - 1, b.east + 1);
  std::vector<LatLon> points;
  for (int i = 0; i < 50'000; ++i) points.push_back({lat(rng), lon(rng)});
  for (const auto& ring : rings) {
    for (size_t i = 0; i + 1 < ring.size(); ++i) {
      const LatLon a = ring[i], c = ring[i + 1];
      points.push_back(a);                                           // a vertex
      points.push_back({(a.lat + c.lat) / 2, (a.lon + c.lon) / 2});  // near an edge
      points.push_back({a.lat, a.lon + 0.01});  // on a vertex's latitude: the half-open rule
      points.push_back({a.lat, a.lon - 0.01});
      if (i % 97 == 0) points.push_back({std::nextafter(a.lat, 90.0), a.lon});
    }
  }
  // The band edges themselves and the bounds.
  for (int k = 0; k <= 100; ++k) {
    const double l = b.south + (b.north - b.south) * k / 100;
    for (double x : {b.west, (b.west + b.east) / 2, b.east}) points.push_back({l, x});
  }
  size_t inside = 0;
  for (const LatLon& p : points) {
    INFO(str(p));
    const bool banded = country.contains(p);
    REQUIRE(banded == country.containsByScan(p));
    inside += banded ? 1 : 0;
  }
  CHECK(inside > 10'000);
  CHECK(inside < points.size() - 10'000);
}

TEST_CASE("DistanceFrom::aLowerBound never exceeds a and is tight nearby", "[geo][distance]") {
  std::mt19937_64 rng(99);
  std::uniform_real_distribution<double> unit(-1, 1);
  int tight = 0, close = 0;
  for (int i = 0; i < 200'000; ++i) {
    const LatLon o{std::asin(unit(rng)) * 180 / kPi, 180 * unit(rng)};
    // Half the pairs near each other (as in a query), half anywhere.
    const double spread = (i % 2 == 0) ? 0.05 : 180;
    LatLon p{std::clamp(o.lat + spread * unit(rng), -90.0, 90.0), o.lon + spread * unit(rng)};
    if (p.lon > 180) p.lon -= 360;
    if (p.lon < -180) p.lon += 360;
    const DistanceFrom from(o);
    const double a = from.a(p);
    const double bound = from.aLowerBound(p);
    INFO("o=" << o.lat << "," << o.lon << " p=" << p.lat << "," << p.lon << " a=" << a
              << " bound=" << bound);
    REQUIRE(bound >= 0);
    REQUIRE(bound <= a);
    if (i % 2 == 0 && std::abs(o.lat) < 80) {
      ++close;
      if (bound >= a * (1 - 1e-3)) ++tight;
    }
  }
  // Useful as a filter: near pairs are bounded within 0.1%.
  REQUIRE(tight == close);
}

}  // namespace
}  // namespace locus::geo
