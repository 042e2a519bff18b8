// A brute-force model of the stored positions: the reference that index and
// cluster answers are held against. Every query is a full scan with the
// functions of locus/common/geo.h, ordered as the SPEC orders answers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "locus/common/geo.h"
#include "locus/common/query.h"
#include "locus/common/report.h"

namespace locus::testkit {

class BruteForce {
 public:
  explicit BruteForce(int64_t ttlMs = 0) : ttlMs_(ttlMs) {}

  // Same rule as the index (supersedes): the newest tsMs wins, an equal
  // tsMs the greater position.
  void apply(const Report& r) {
    auto [it, inserted] = where_.try_emplace(std::string(r.id), devices_.size());
    if (inserted) devices_.emplace_back();
    Hit& h = devices_[it->second];
    if (!inserted && !supersedes(r.tsMs, geo::toE7(r.lat), geo::toE7(r.lon), h.tsMs,
                                 geo::toE7(h.lat), geo::toE7(h.lon)))
      return;
    h.id = std::string(r.id);
    h.lat = geo::quantize(r.lat);
    h.lon = geo::quantize(r.lon);
    h.tsMs = r.tsMs;
    h.speedMps = r.speedMps;
    h.headingDeg = r.headingDeg;
    h.accuracyM = r.accuracyM;
  }
  void remove(const std::string& id) {
    auto it = where_.find(id);
    if (it == where_.end()) return;
    const size_t at = it->second;
    where_.erase(it);
    if (at + 1 != devices_.size()) {
      devices_[at] = std::move(devices_.back());
      where_[devices_[at].id] = at;
    }
    devices_.pop_back();
  }
  size_t size() const { return devices_.size(); }
  // Every stored device, in no particular order.
  const std::vector<Hit>& devices() const { return devices_; }
  const Hit& at(const std::string& id) const { return devices_[where_.at(id)]; }

  std::optional<Hit> get(const std::string& id, int64_t nowMs) const {
    auto it = where_.find(id);
    if (it == where_.end() || devices_[it->second].tsMs < minTsAt(0, nowMs)) return std::nullopt;
    return devices_[it->second];
  }

  QueryResult nearest(const NearestQuery& q, int64_t nowMs) const {
    std::vector<Match> matches;
    const int64_t minTs = minTsAt(q.maxAgeS, nowMs);
    const geo::DistanceFrom from(q.center);  // == geo::haversineM(q.center, p)
    for (const Hit& h : devices_) {
      if (h.tsMs < minTs || h.id.rfind(q.idPrefix, 0) != 0) continue;
      const double d = from.metres({h.lat, h.lon});
      if (q.maxDistanceM > 0 && d > q.maxDistanceM) continue;
      matches.push_back({d, &h});
    }
    QueryResult out = answer(matches, q.k, /*byDistance=*/true);
    out.count = out.hits.size();
    return out;
  }

  QueryResult within(const AreaQuery& q, int64_t nowMs) const {
    std::vector<Match> matches;
    const int64_t minTs = minTsAt(q.maxAgeS, nowMs);
    const auto* circle = std::get_if<Circle>(&q.area);
    const geo::DistanceFrom from(circle ? circle->center : geo::LatLon{});
    for (const Hit& h : devices_) {
      if (h.tsMs < minTs || h.id.rfind(q.idPrefix, 0) != 0) continue;
      const geo::LatLon p{h.lat, h.lon};
      double d = std::numeric_limits<double>::quiet_NaN();
      if (circle) {
        d = from.metres(p);
        if (d > circle->radiusM) continue;
      } else if (const auto* box = std::get_if<geo::Box>(&q.area)) {
        if (!box->contains(p)) continue;
      } else if (!std::get<geo::MultiPolygon>(q.area).contains(p)) {
        continue;
      }
      matches.push_back({d, &h});
    }
    const size_t keep = q.countOnly ? 0 : q.limit == 0 ? matches.size() : q.limit;
    QueryResult out = answer(matches, keep, circle != nullptr);
    out.count = matches.size();
    if (q.grid.on()) {
      out.cells.assign(q.grid.cells(), 0);
      for (const auto& m : matches) {
        ++out.cells[gridCellOf(std::get<geo::Box>(q.area), q.grid, {m.hit->lat, m.hit->lon})];
      }
    }
    return out;
  }

 private:
  int64_t minTsAt(double maxAgeS, int64_t nowMs) const {
    int64_t m = minTsForAge(maxAgeS, nowMs);
    if (ttlMs_ > 0) m = std::max(m, nowMs - ttlMs_);
    return m;
  }
  struct Match {
    double distanceM;  // NaN without a centre
    const Hit* hit;
  };

  // The first `keep` matches in answer order, as hits.
  static QueryResult answer(std::vector<Match>& matches, size_t keep, bool byDistance) {
    const auto less = [byDistance](const Match& a, const Match& b) {
      if (byDistance && a.distanceM != b.distanceM) return a.distanceM < b.distanceM;
      return a.hit->id < b.hit->id;
    };
    keep = std::min(keep, matches.size());
    std::partial_sort(matches.begin(), matches.begin() + static_cast<std::ptrdiff_t>(keep),
                      matches.end(), less);
    QueryResult out;
    for (size_t i = 0; i < keep; ++i) {
      out.hits.push_back(*matches[i].hit);
      out.hits.back().distanceM = matches[i].distanceM;
    }
    return out;
  }

  int64_t ttlMs_;
  std::vector<Hit> devices_;
  std::unordered_map<std::string, size_t> where_;  // id → index in devices_
};

}  // namespace locus::testkit
