#include "points.h"

#include <fmt/format.h>

#include <algorithm>
#include <istream>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "locus/common/json.h"

namespace locus::cli {
namespace {

constexpr int kPartialExit = 2;

// The point of one NDJSON line, or why it is not one.
Result<geo::LatLon> readPoint(const std::string& line) {
  const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return badRequest("not JSON");
  if (!j.is_object() || !j.contains("lat") || !j.contains("lon") || !j["lat"].is_number() ||
      !j["lon"].is_number())
    return badRequest(R"(not a point: give {"lat":..,"lon":..})");
  return geo::LatLon{j["lat"].get<double>(), j["lon"].get<double>()};
}

// Why the query cannot be asked at `p`, or nothing.
std::optional<std::string> checkPoint(const PointsQuery& q, geo::LatLon p) {
  if (q.nearest) return validate(NearestMany{.points = {p}, .each = q.each});
  return validate(WithinMany{.points = {p}, .radiusM = q.radiusM, .each = q.eachArea});
}

// Points per call: as many as one call may carry for this query.
size_t batchSize(const PointsQuery& q) {
  const uint64_t each = q.nearest ? q.each.k : (q.eachArea.countOnly ? 0 : q.eachArea.limit);
  return std::clamp<size_t>(each == 0 ? kMaxBatchPoints : kMaxResults / each, 1, kMaxBatchPoints);
}

}  // namespace

int askPoints(std::istream& in, client::QueryClient& server, const PointsQuery& query,
              std::ostream& out, std::ostream& err) {
  const size_t perCall = batchSize(query);
  std::vector<geo::LatLon> points;
  size_t firstLine = 0;  // of the batch
  bool partial = false;
  // Asks the batch; false (with the error said) when the call was refused.
  const auto ask = [&]() -> bool {
    if (points.empty()) return true;
    Result<std::vector<client::Answer>> answers =
        query.nearest ? server.nearestMany(NearestMany{.points = points, .each = query.each})
                      : server.withinMany(WithinMany{
                            .points = points, .radiusM = query.radiusM, .each = query.eachArea});
    if (!answers) {
      err << errorJson(
                 fmt::format("the points from line {}: {}", firstLine, answers.error().message))
                 .dump()
          << "\n";
      return false;
    }
    for (const auto& a : *answers) {
      out << toJson(a.result, a.shards, a.tookUs).dump() << "\n";
      partial = partial || a.partial;
    }
    points.clear();
    return true;
  };
  std::string line;
  for (size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto point = readPoint(line);
    std::optional<std::string> problem;
    if (!point) {
      problem = point.error().message;
    } else if (auto e = checkPoint(query, *point)) {
      constexpr std::string_view kThisPoint = "point 0: ";  // that is, this line
      problem = e->starts_with(kThisPoint) ? e->substr(kThisPoint.size()) : *e;
    }
    if (problem) {
      if (!ask()) return 1;  // what came before is answered first
      err << errorJson(fmt::format("line {}: {}", number, *problem)).dump() << "\n";
      return 1;
    }
    if (points.empty()) firstLine = number;
    points.push_back(*point);
    if (points.size() == perCall && !ask()) return 1;
  }
  if (!ask()) return 1;
  if (partial) {
    err << nlohmann::json{{"warning",
                           "partial answers: some units did not answer in time; devices they hold "
                           "are missing"}}
               .dump()
        << "\n";
    return query.requireComplete ? kPartialExit : 0;
  }
  return 0;
}

}  // namespace locus::cli
