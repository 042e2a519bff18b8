// Holding an answer against the brute-force reference hit by hit,
// reporting the first difference. REQUIRE_SAME_ANSWER is for Catch2 tests;
// the rest needs no test framework (the bench uses it).
#pragma once

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "locus/common/query.h"

namespace locus::testkit {

inline std::string describe(const Hit& h) {
  std::ostringstream s;
  s.precision(17);
  s << "{" << h.id << " lat=" << h.lat << " lon=" << h.lon << " ts=" << h.tsMs
    << " d=" << h.distanceM << "}";
  return s.str();
}

inline bool sameDistance(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

// Why `actual` does not list the devices of `expected` in the same order at
// the same positions and distances (bit for bit), or "" when it does.
// Times are not compared: a caller that knows only positions can use it.
inline std::string placesDiffer(const std::vector<Hit>& actual, const std::vector<Hit>& expected) {
  std::ostringstream s;
  if (actual.size() != expected.size()) {
    s << "hits " << actual.size() << " != expected " << expected.size();
    return s.str();
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    const Hit& a = actual[i];
    const Hit& e = expected[i];
    if (a.id != e.id || a.lat != e.lat || a.lon != e.lon ||
        !sameDistance(a.distanceM, e.distanceM)) {
      s << "hit " << i << ": " << describe(a) << " != expected " << describe(e);
      return s.str();
    }
  }
  return "";
}

// True when both answers list the same devices, in the same order, with the
// same positions, times and distances (bit for bit), the same count, and
// the same counts per grid cell.
inline bool sameAnswer(const QueryResult& actual, const QueryResult& expected, std::string* why) {
  std::ostringstream s;
  if (actual.count != expected.count) {
    s << "count " << actual.count << " != expected " << expected.count;
  } else if (actual.hits.size() != expected.hits.size()) {
    s << "hits " << actual.hits.size() << " != expected " << expected.hits.size();
  } else if (actual.cells.size() != expected.cells.size()) {
    s << "cells " << actual.cells.size() << " != expected " << expected.cells.size();
  }
  for (size_t i = 0; s.tellp() == 0 && i < actual.cells.size(); ++i) {
    if (actual.cells[i] != expected.cells[i]) {
      s << "cell " << i << ": " << actual.cells[i] << " != expected " << expected.cells[i];
    }
  }
  for (size_t i = 0; s.tellp() == 0 && i < actual.hits.size(); ++i) {
    const Hit& a = actual.hits[i];
    const Hit& e = expected.hits[i];
    if (a.id != e.id || a.lat != e.lat || a.lon != e.lon || a.tsMs != e.tsMs ||
        !sameDistance(a.distanceM, e.distanceM)) {
      s << "hit " << i << ": " << describe(a) << " != expected " << describe(e);
    }
  }
  *why = s.str();
  return why->empty();
}

}  // namespace locus::testkit

#define REQUIRE_SAME_ANSWER(actual, expected)                                 \
  do {                                                                        \
    std::string why_;                                                         \
    const bool same_ = ::locus::testkit::sameAnswer(actual, expected, &why_); \
    INFO(why_);                                                               \
    REQUIRE(same_);                                                           \
  } while (false)
